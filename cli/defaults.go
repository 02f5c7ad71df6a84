package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ucli "github.com/urfave/cli/v2"

	"github.com/strata-io/strata/meta"
	"github.com/strata-io/strata/tier"
)

// brokerDefaults maps Kafka's broker settings (as flags, dots to dashes)
// to the topic configs they default: `--log-retention-ms` is
// log.retention.ms, the default of a topic's retention.ms.
var brokerDefaults = []struct{ flag, topicKey, usage string }{
	{"log-retention-ms", "retention.ms", "default retention.ms: how long records are kept (-1: forever)"},
	{"log-retention-bytes", "retention.bytes", "default retention.bytes per partition (-1: no limit)"},
	{"log-segment-bytes", "segment.bytes", "default segment.bytes: roll a segment at this size"},
	{"log-roll-ms", "segment.ms", "default segment.ms: roll a segment at this age"},
	{"message-max-bytes", "max.message.bytes", "default max.message.bytes: the largest record batch accepted"},
	{"log-flush-interval-messages", "flush.messages", "default flush.messages: fsync after this many (1: every append)"},
	{"log-flush-interval-ms", "flush.ms", "default flush.ms: fsync at least this often"},
	{"log-message-timestamp-type", "message.timestamp.type", "default message.timestamp.type: CreateTime or LogAppendTime"},
	{"log-index-interval-bytes", "index.interval.bytes", "default index.interval.bytes: bytes between offset index entries"},
	{"min-insync-replicas", "min.insync.replicas", "default min.insync.replicas for acks=all"},
	{"log-local-retention-ms", "local.retention.ms", "default local.retention.ms for tiered topics (-2: retention.ms)"},
	{"log-local-retention-bytes", "local.retention.bytes", "default local.retention.bytes for tiered topics (-2: retention.bytes)"},
}

// tierFlags name the object store closed segments of tiered topics go to.
func tierFlags(urlUsage string) []ucli.Flag {
	return append(tierStoreFlags(urlUsage),
		&ucli.Int64Flag{Name: "tier-cache-bytes", Value: 1 << 30, EnvVars: envVars("tier-cache-bytes"),
			Usage: "disk space for cached chunks of uploaded segments being read (under <data-dir>/.tier-cache)"},
		&ucli.DurationFlag{Name: "tier-orphan-grace", Value: time.Hour, EnvVars: envVars("tier-orphan-grace"),
			Usage: "age at which an object no manifest references (a killed upload, a failed delete) is removed; must well exceed a segment upload"},
		&ucli.DurationFlag{Name: "tier-reconcile-interval", Value: 10 * time.Minute, EnvVars: envVars("tier-reconcile-interval"),
			Usage: "how often the metadata leader looks for such objects"},
	)
}

// tierStoreFlags name the object store and its credentials.
func tierStoreFlags(urlUsage string) []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "tier-url", EnvVars: envVars("tier-url"), Usage: urlUsage},
		&ucli.StringFlag{Name: "tier-access-key", EnvVars: append(envVars("tier-access-key"), "AWS_ACCESS_KEY_ID"), Usage: "S3 access key"},
		&ucli.StringFlag{Name: "tier-secret-key", EnvVars: append(envVars("tier-secret-key"), "AWS_SECRET_ACCESS_KEY"), Usage: "S3 secret key"},
		&ucli.Float64Flag{Name: "tier-price-put", Value: tier.S3StandardPrices.Put, EnvVars: envVars("tier-price-put"),
			Usage: "dollars per 1,000 PUT requests, for the cost estimate strata_tier_store_cost_dollars_total (default: S3 Standard)"},
		&ucli.Float64Flag{Name: "tier-price-get", Value: tier.S3StandardPrices.Get, EnvVars: envVars("tier-price-get"),
			Usage: "dollars per 1,000 GET requests"},
		&ucli.Float64Flag{Name: "tier-price-list", Value: tier.S3StandardPrices.List, EnvVars: envVars("tier-price-list"),
			Usage: "dollars per 1,000 LIST requests"},
		&ucli.Float64Flag{Name: "tier-price-delete", Value: tier.S3StandardPrices.Delete, EnvVars: envVars("tier-price-delete"),
			Usage: "dollars per 1,000 DELETE requests"},
	}
}

// tierPrices are the --tier-price-* flags.
func tierPrices(c *ucli.Context) tier.Prices {
	return tier.Prices{Put: c.Float64("tier-price-put"), Get: c.Float64("tier-price-get"),
		List: c.Float64("tier-price-list"), Delete: c.Float64("tier-price-delete")}
}

// instrumentTier counts store's requests on reg, their cost at the
// --tier-price-* flags; a nil store stays nil.
func instrumentTier(c *ucli.Context, store tier.Store, reg prometheus.Registerer) tier.Store {
	if store == nil {
		return nil
	}
	return tier.Instrument(store, tier.NewStoreMetrics(reg, tierPrices(c)))
}

// gatewayTierFlags are the gateway's: the nodes' store, read directly.
func gatewayTierFlags() []ucli.Flag {
	return append(tierStoreFlags("the object store the nodes upload to (their --tier-url): fetches of uploaded data are served from it by this gateway, not relayed through nodes"),
		&ucli.StringFlag{Name: "tier-cache-dir", EnvVars: envVars("tier-cache-dir"), Usage: "where cached chunks of uploaded segments go (default: a temporary directory)"},
		&ucli.Int64Flag{Name: "tier-cache-bytes", Value: 1 << 30, EnvVars: envVars("tier-cache-bytes"), Usage: "disk space for cached chunks of uploaded segments"},
		&ucli.IntFlag{Name: "tier-read-concurrency", Value: 8, EnvVars: envVars("tier-read-concurrency"),
			Usage: "remote reads served at once; more wait their turn (a bound like Kafka's remote fetch quota)"},
		&ucli.Int64Flag{Name: "tier-read-max-bytes", Value: 256 << 20, EnvVars: envVars("tier-read-max-bytes"),
			Usage: "memory the remote reads in progress may hold between them; more wait their turn"},
		tierFetchRateFlag,
	)
}

// tierFetchRateFlag bounds a gateway's reads from the store, as Kafka's
// remote.log.manager.fetch.max.bytes.per.second does a broker's.
var tierFetchRateFlag = &ucli.Int64Flag{Name: "tier-fetch-max-bytes-per-second", EnvVars: envVars("tier-fetch-max-bytes-per-second"),
	Usage: "bytes of uploaded history served per second, so replays leave CPU to produce (Kafka's remote.log.manager.fetch.max.bytes.per.second); a consumer over it is throttled, never failed; 0 is unbounded"}

// openTier opens the tier store the flags name; "" is none.
func openTier(c *ucli.Context, rawURL string) (tier.Store, error) {
	if rawURL == "" {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	return tier.Open(ctx, rawURL, tier.Credentials{AccessKey: c.String("tier-access-key"), SecretKey: c.String("tier-secret-key")})
}

// brokerDefaultFlags are the node's topic-default flags; unset ones keep
// Kafka's defaults.
func brokerDefaultFlags() []ucli.Flag {
	flags := make([]ucli.Flag, 0, len(brokerDefaults))
	for _, d := range brokerDefaults {
		flags = append(flags, &ucli.StringFlag{Name: d.flag, EnvVars: envVars(d.flag), Usage: d.usage, Category: "topic defaults"})
	}
	return flags
}

// topicDefaults reads the set topic-default flags, validated as topic
// configs are.
func topicDefaults(c *ucli.Context) (map[string]string, error) {
	m := map[string]string{}
	for _, d := range brokerDefaults {
		if !c.IsSet(d.flag) {
			continue
		}
		v := c.String(d.flag)
		if err := meta.ValidateTopicConfig(d.topicKey, v); err != nil {
			return nil, fmt.Errorf("--%s %q: %w", d.flag, v, err)
		}
		m[d.topicKey] = v
	}
	return m, nil
}
