package cli

import (
	"slices"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// hoistFlags moves the flags given after a command's arguments in front
// of them: urfave/cli stops reading flags at the first argument, while
// people who know kafka-topics.sh and rpk write `topic create orders -p 3`.
// It finds the command named by args (after the program name), then
// splits what follows into flags, each with its value unless it is a
// boolean flag or carries its value after "=", and arguments, keeping
// the order within each. Everything after "--" stays an argument. Args
// that name no command are returned as they are.
func hoistFlags(cmds []*ucli.Command, args []string) []string {
	if len(args) < 2 {
		return args
	}
	i := 1
	var cmd *ucli.Command
	for i < len(args) {
		next := findCommand(cmds, args[i])
		if next == nil {
			break
		}
		cmd, cmds = next, next.Subcommands
		i++
	}
	if cmd == nil || len(cmd.Subcommands) > 0 {
		return args
	}
	out := slices.Clone(args[:i])
	var rest []string
	for ; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			rest = append(rest, args[i:]...)
			i = len(args)
		case len(a) > 1 && strings.HasPrefix(a, "-"):
			out = append(out, a)
			if takesValue(cmd, a) && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
		default:
			rest = append(rest, a)
		}
	}
	return append(out, rest...)
}

func findCommand(cmds []*ucli.Command, name string) *ucli.Command {
	for _, c := range cmds {
		if c.Name == name || slices.Contains(c.Aliases, name) {
			return c
		}
	}
	return nil
}

// takesValue reports whether flag (as given: -p, --partitions) is one of
// cmd's flags that takes a value in the next argument. Unknown flags
// (-h, a typo) take none: urfave/cli reports them.
func takesValue(cmd *ucli.Command, flag string) bool {
	name := strings.TrimLeft(flag, "-")
	if strings.Contains(name, "=") {
		return false
	}
	for _, f := range cmd.Flags {
		if !slices.Contains(f.Names(), name) {
			continue
		}
		_, isBool := f.(*ucli.BoolFlag)
		return !isBool
	}
	return false
}
