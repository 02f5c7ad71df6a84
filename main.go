// Command strata runs Strata nodes and gateways and speaks Kafka as a client.
package main

import (
	"os"

	"github.com/strata-io/strata/cli"
)

func main() {
	os.Exit(cli.Run(os.Args))
}
