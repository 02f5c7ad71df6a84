package cli

import (
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	ucli "github.com/urfave/cli/v2"
)

// brokersFlag is every client command's --brokers.
var brokersFlag = &ucli.StringFlag{Name: "brokers", Aliases: []string{"b"}, Value: "127.0.0.1:9092", EnvVars: envVars("brokers"),
	Usage: "Kafka bootstrap servers, comma-separated"}

// newKafkaClient connects to the cluster as a Kafka client.
func newKafkaClient(c *ucli.Context, opts ...kgo.Opt) (*kgo.Client, error) {
	seeds := strings.Split(c.String("brokers"), ",")
	sec, err := clientSecurity(c)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.ClientID("strata-cli")}, sec...), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("cannot create a client for %s: %w", c.String("brokers"), err)
	}
	return cl, nil
}

func newAdmin(c *ucli.Context) (*kadm.Client, func(), error) {
	cl, err := newKafkaClient(c)
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl.Close, nil
}

// parseKV parses k=v pairs.
func parseKV(pairs []string) (map[string]*string, error) {
	out := map[string]*string{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", p)
		}
		out[k] = &v
	}
	return out, nil
}
