package cli

import (
	"fmt"
	"io"
	"os"

	ucli "github.com/urfave/cli/v2"
)

// Run runs the strata command line and returns the process exit code:
// 0, or 1 after printing a one-line error to stderr.
func Run(args []string) int {
	return run(args, os.Stdout, os.Stderr)
}

func run(args []string, stdout, stderr io.Writer) int {
	return runWith(args, os.Stdin, stdout, stderr)
}

func runWith(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := &ucli.App{
		Name:      "strata",
		Usage:     "a Kafka-compatible commit log that keeps history in object storage",
		Reader:    stdin,
		Writer:    stdout,
		ErrWriter: stderr,
		// Errors are printed once, here, as one line.
		ExitErrHandler: func(*ucli.Context, error) {},
		Commands: []*ucli.Command{
			devCommand(),
			nodeCommand(),
			gatewayCommand(),
			topicCommand(),
			produceCommand(),
			consumeCommand(),
			groupCommand(),
			benchCommand(),
			logCommand(),
			tierCommand(),
			clusterCommand(),
			topCommand(),
			userCommand(),
			aclCommand(),
			txnCommand(),
		},
	}
	addFlagsBeside(app.Commands, brokersFlag, clientSecurityFlags)
	addFlagsBeside(app.Commands, adminURLFlag, adminClientFlags)
	if err := app.Run(hoistFlags(app.Commands, args)); err != nil {
		fmt.Fprintf(stderr, "strata: %v\n", oneLine(err))
		return 1
	}
	return 0
}

// oneLine keeps an error message to its first line.
func oneLine(err error) string {
	msg := err.Error()
	for i, c := range msg {
		if c == '\n' {
			return msg[:i]
		}
	}
	return msg
}

// envVars names the environment variable every flag also reads.
func envVars(flag string) []string {
	name := make([]byte, 0, len(flag)+7)
	name = append(name, "STRATA_"...)
	for _, c := range []byte(flag) {
		switch {
		case c == '-':
			c = '_'
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		}
		name = append(name, c)
	}
	return []string{string(name)}
}
