// Package cli holds the `strata` commands (urfave/cli/v2): the server
// processes (dev, node, gateway) and the client commands (topic, produce,
// consume, group, cluster, tier, bench), which speak Kafka through franz-go
// so they work against any Kafka-compatible cluster.
//
// Errors are one line on stderr and exit code 1. Every flag also reads the
// environment variable STRATA_<FLAG>.
package cli
