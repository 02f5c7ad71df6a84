package cli

import (
	"slices"
	"testing"

	ucli "github.com/urfave/cli/v2"
)

func TestHoistFlags(t *testing.T) {
	cmds := []*ucli.Command{{Name: "topic", Subcommands: []*ucli.Command{{Name: "create", Aliases: []string{"c"}, Flags: []ucli.Flag{
		&ucli.IntFlag{Name: "partitions", Aliases: []string{"p"}},
		&ucli.StringSliceFlag{Name: "config", Aliases: []string{"c"}},
		&ucli.BoolFlag{Name: "dry-run"},
	}}}}}
	for _, c := range []struct{ in, want []string }{
		// kafka-topics / rpk order: flags after the name.
		{[]string{"strata", "topic", "create", "orders", "-p", "3", "-c", "a=1"}, []string{"strata", "topic", "create", "-p", "3", "-c", "a=1", "orders"}},
		// Flags first already: unchanged.
		{[]string{"strata", "topic", "create", "-p", "3", "orders"}, []string{"strata", "topic", "create", "-p", "3", "orders"}},
		// Mixed, a boolean, a value after "=", an alias, several names.
		{[]string{"strata", "topic", "c", "a", "--dry-run", "b", "--partitions=2", "-c", "x=1"}, []string{"strata", "topic", "c", "--dry-run", "--partitions=2", "-c", "x=1", "a", "b"}},
		// A value that looks like a flag stays the flag's.
		{[]string{"strata", "topic", "create", "t", "-c", "-weird"}, []string{"strata", "topic", "create", "-c", "-weird", "t"}},
		// After "--", everything is an argument.
		{[]string{"strata", "topic", "create", "-p", "1", "--", "-t", "-p"}, []string{"strata", "topic", "create", "-p", "1", "--", "-t", "-p"}},
		// An unknown flag takes no value; urfave/cli reports it.
		{[]string{"strata", "topic", "create", "t", "--nope", "x"}, []string{"strata", "topic", "create", "--nope", "t", "x"}},
		// Not a leaf command, or no command: unchanged.
		{[]string{"strata", "topic", "x", "-p", "1"}, []string{"strata", "topic", "x", "-p", "1"}},
		{[]string{"strata", "--help"}, []string{"strata", "--help"}},
		{[]string{"strata"}, []string{"strata"}},
	} {
		if got := hoistFlags(cmds, c.in); !slices.Equal(got, c.want) {
			t.Errorf("hoistFlags(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
