package cli

import (
	"fmt"

	ucli "github.com/urfave/cli/v2"
)

func devCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "dev",
		Usage: "run embedded NATS, one node, one gateway and a local tier in one process",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "data-dir", Value: "./strata-data", EnvVars: envVars("data-dir"), Usage: "where partition logs and metadata live"},
			&ucli.StringFlag{Name: "kafka-addr", Value: "127.0.0.1:9092", EnvVars: envVars("kafka-addr"), Usage: "Kafka listener address"},
			&ucli.StringFlag{Name: "admin-addr", Value: "127.0.0.1:9644", EnvVars: envVars("admin-addr"), Usage: "HTTP admin address (/metrics, /healthz, /readyz)"},
			&ucli.StringFlag{Name: "tier-url", EnvVars: envVars("tier-url"), Usage: "object store for closed segments (default file://<data-dir>/tier)"},
		},
		Action: func(c *ucli.Context) error {
			return fmt.Errorf("dev: the Kafka gateway is %w; this binary has the storage engine only (try 'strata log dump --help')", errNotBuilt)
		},
	}
}
