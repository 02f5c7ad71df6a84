package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	ucli "github.com/urfave/cli/v2"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/internal/rpc"
	"github.com/strata-io/strata/node"
	plog "github.com/strata-io/strata/node/log"
)

var natsFlag = &ucli.StringFlag{Name: "nats", Value: nats.DefaultURL, EnvVars: envVars("nats"), Usage: "NATS server URL(s)"}

// natsWaitFlag bounds how long a starting process waits for NATS.
var natsWaitFlag = &ucli.DurationFlag{Name: "nats-connect-timeout", Value: time.Minute, EnvVars: envVars("nats-connect-timeout"),
	Usage: "how long a starting process keeps trying to reach NATS before it exits (once connected, it reconnects forever)"}

// natsAuthFlags are how a node or gateway logs in to NATS and trusts it.
func natsAuthFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "nats-user", EnvVars: envVars("nats-user"), Usage: "NATS user (see deploy/nats/strata.conf)"},
		&ucli.StringFlag{Name: "nats-password", EnvVars: envVars("nats-password"), Usage: "NATS password (better from STRATA_NATS_PASSWORD)"},
		&ucli.StringFlag{Name: "nats-nkey-seed", EnvVars: envVars("nats-nkey-seed"), Usage: "file holding the NATS nkey seed to log in with"},
		&ucli.StringFlag{Name: "nats-creds", EnvVars: envVars("nats-creds"), Usage: "NATS user credentials file (JWT and seed, from nsc)"},
		&ucli.StringFlag{Name: "nats-tls-ca", EnvVars: envVars("nats-tls-ca"), Usage: "PEM CA certificates that sign the NATS server's (turns TLS on)"},
		&ucli.StringFlag{Name: "nats-tls-cert", EnvVars: envVars("nats-tls-cert"), Usage: "PEM client certificate for NATS (with --nats-tls-key)"},
		&ucli.StringFlag{Name: "nats-tls-key", EnvVars: envVars("nats-tls-key"), Usage: "PEM private key of --nats-tls-cert"},
	}
}

// natsInboxPrefix is where Strata's processes take their replies: not
// the _INBOX.> every NATS client shares, so a NATS account shared with
// other applications can keep them off Strata's replies by permissions
// (deploy/nats/strata.conf).
const natsInboxPrefix = "_INBOX_strata"

// natsOptions are the login and trust the flags ask for.
func natsOptions(c *ucli.Context, name string) ([]nats.Option, error) {
	opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond),
		nats.CustomInboxPrefix(natsInboxPrefix)}
	user, pass := c.String("nats-user"), c.String("nats-password")
	if (user == "") != (pass == "") {
		return nil, errors.New("--nats-user and --nats-password go together")
	}
	if user != "" {
		opts = append(opts, nats.UserInfo(user, pass))
	}
	if seed := c.String("nats-nkey-seed"); seed != "" {
		o, err := nats.NkeyOptionFromSeed(seed)
		if err != nil {
			return nil, fmt.Errorf("--nats-nkey-seed: %w", err)
		}
		opts = append(opts, o)
	}
	if creds := c.String("nats-creds"); creds != "" {
		if _, err := os.Stat(creds); err != nil {
			return nil, fmt.Errorf("--nats-creds: %w", err)
		}
		opts = append(opts, nats.UserCredentials(creds))
	}
	if ca := c.String("nats-tls-ca"); ca != "" {
		opts = append(opts, nats.RootCAs(ca))
	}
	if cert, key := c.String("nats-tls-cert"), c.String("nats-tls-key"); cert != "" || key != "" {
		if cert == "" || key == "" {
			return nil, errors.New("--nats-tls-cert and --nats-tls-key go together")
		}
		opts = append(opts, nats.ClientCert(cert, key))
	}
	return opts, nil
}

func connectNATS(c *ucli.Context, name string, logger *slog.Logger) (*nats.Conn, error) {
	opts, err := natsOptions(c, name)
	if err != nil {
		return nil, err
	}
	return rpc.Connect(c.Context, c.String("nats"), c.Duration("nats-connect-timeout"), logger, opts...)
}

// numPartitionsFlag is num.partitions: partitions of a topic created
// without a count (auto-created ones too).
func numPartitionsFlag() ucli.Flag {
	return &ucli.IntFlag{Name: "num-partitions", Value: 1, EnvVars: envVars("num-partitions"), Usage: "partitions of a topic created without a count, auto-created ones too (num.partitions)"}
}

// partitionMetricsFlag switches the per-partition series of /metrics.
var partitionMetricsFlag = &ucli.BoolFlag{Name: "partition-metrics", Value: true, EnvVars: envVars("partition-metrics"),
	Usage: "export per-partition series on /metrics (log end, high watermark, log start, size, segments, upload lag); false keeps only node-wide ones"}

// diskHighWatermarkFlag bounds the data disk's use.
var diskHighWatermarkFlag = &ucli.Float64Flag{Name: "disk-high-watermark", Value: 0.95, EnvVars: envVars("disk-high-watermark"),
	Usage: "fraction of the data disk in use above which produce is refused with a retriable error (no data is deleted to make room)"}

// The transaction coordinator's limits, as Kafka's broker configs.
var (
	txnMaxTimeoutFlag = &ucli.DurationFlag{Name: "transaction-max-timeout", Value: 15 * time.Minute, EnvVars: envVars("transaction-max-timeout"),
		Usage: "the longest transaction.timeout.ms a producer may ask for (transaction.max.timeout.ms)"}
	txnIDExpirationFlag = &ucli.DurationFlag{Name: "transactional-id-expiration", Value: 7 * 24 * time.Hour, EnvVars: envVars("transactional-id-expiration"),
		Usage: "a transactional id idle this long is forgotten (transactional.id.expiration.ms)"}
)

// The consumer protocol's (KIP-848) timings, as Kafka's broker configs.
var (
	groupConsumerSessionFlag = &ucli.DurationFlag{Name: "group-consumer-session-timeout", Value: 45 * time.Second, EnvVars: envVars("group-consumer-session-timeout"),
		Usage: "a consumer-protocol group member silent this long is removed (group.consumer.session.timeout.ms)"}
	groupConsumerHeartbeatFlag = &ucli.DurationFlag{Name: "group-consumer-heartbeat-interval", Value: 5 * time.Second, EnvVars: envVars("group-consumer-heartbeat-interval"),
		Usage: "how often consumer-protocol members heartbeat, and so how soon they hear of a rebalance (group.consumer.heartbeat.interval.ms)"}
)

// groupConsumerTimings reads them: the heartbeat must be positive and
// shorter than the session.
func groupConsumerTimings(c *ucli.Context) (session, heartbeat time.Duration, err error) {
	session, heartbeat = c.Duration("group-consumer-session-timeout"), c.Duration("group-consumer-heartbeat-interval")
	if heartbeat <= 0 || session <= heartbeat {
		err = fmt.Errorf("--group-consumer-heartbeat-interval %v and --group-consumer-session-timeout %v: want a positive interval shorter than the session", heartbeat, session)
	}
	return session, heartbeat, err
}

// The log cleaner's settings, as Kafka's broker configs.
var (
	cleanerBackoffFlag = &ucli.DurationFlag{Name: "log-cleaner-backoff", Value: node.DefaultCleanerInterval, EnvVars: envVars("log-cleaner-backoff"),
		Usage: "how often the cleaner looks for a compacted log to clean (log.cleaner.backoff.ms)"}
	cleanerDedupeFlag = &ucli.Int64Flag{Name: "log-cleaner-dedupe-buffer-size", Value: node.DefaultCleanerDedupeBytes, EnvVars: envVars("log-cleaner-dedupe-buffer-size"),
		Usage: "memory for the cleaner's key map, in bytes: the keys of one clean (log.cleaner.dedupe.buffer.size)"}
	cleanerIOFlag = &ucli.Float64Flag{Name: "log-cleaner-io-max-bytes-per-second", EnvVars: envVars("log-cleaner-io-max-bytes-per-second"),
		Usage: "pace the cleaner's reads to this many bytes a second; 0: unlimited (log.cleaner.io.max.bytes.per.second)"}
)

// cleanerSettings reads the cleaner flags.
func cleanerSettings(c *ucli.Context) (node.CleanerSettings, error) {
	s := node.CleanerSettings{Interval: c.Duration("log-cleaner-backoff"), DedupeBytes: int(c.Int64("log-cleaner-dedupe-buffer-size")),
		IOBytesPerSecond: c.Float64("log-cleaner-io-max-bytes-per-second")}
	switch {
	case s.Interval <= 0:
		return s, fmt.Errorf("--log-cleaner-backoff %v: want a positive duration", s.Interval)
	case s.DedupeBytes < 1<<20:
		return s, fmt.Errorf("--log-cleaner-dedupe-buffer-size %d: want at least 1 MiB", s.DedupeBytes)
	case s.IOBytesPerSecond < 0:
		return s, fmt.Errorf("--log-cleaner-io-max-bytes-per-second %v: want 0 (unlimited) or more", s.IOBytesPerSecond)
	}
	return s, nil
}

// txnLimits reads the transaction flags, refusing values that are not
// positive.
func txnLimits(c *ucli.Context) (maxTimeout, idExpiration time.Duration, err error) {
	maxTimeout, idExpiration = c.Duration("transaction-max-timeout"), c.Duration("transactional-id-expiration")
	switch {
	case maxTimeout <= 0:
		err = fmt.Errorf("--transaction-max-timeout %v: want a positive duration", maxTimeout)
	case idExpiration <= 0:
		err = fmt.Errorf("--transactional-id-expiration %v: want a positive duration", idExpiration)
	}
	return maxTimeout, idExpiration, err
}

// streamListenAddr is where a node's stream listens: flag as given,
// none for "none", or by default raftAddr's host on any port.
func streamListenAddr(flag, raftAddr string) (string, error) {
	switch flag {
	case "none":
		return "", nil
	case "":
		host, _, err := net.SplitHostPort(raftAddr)
		if err != nil {
			return "", fmt.Errorf("--raft-addr %q: %w", raftAddr, err)
		}
		return net.JoinHostPort(host, "0"), nil
	}
	if _, _, err := net.SplitHostPort(flag); err != nil {
		return "", fmt.Errorf("--stream-addr %q: want host:port or \"none\"", flag)
	}
	return flag, nil
}

func nodeCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "node",
		Usage: "run a storage node: partition logs and a metadata Raft member",
		Flags: append([]ucli.Flag{
			&ucli.IntFlag{Name: "id", Required: true, EnvVars: envVars("id"), Usage: "node id (unique, >= 1)"},
			&ucli.StringFlag{Name: "data-dir", Required: true, EnvVars: envVars("data-dir"), Usage: "where partition logs and metadata live"},
			natsFlag, natsWaitFlag,
			&ucli.StringFlag{Name: "raft-addr", Required: true, EnvVars: envVars("raft-addr"), Usage: "metadata Raft address host:port (keep it stable across restarts)"},
			&ucli.StringFlag{Name: "stream-addr", EnvVars: envVars("stream-addr"),
				Usage: "where gateways send this node Kafka requests over a direct connection, beside NATS (default: --raft-addr's host, any port; \"none\" sends everything over NATS)"},
			&ucli.StringFlag{Name: "advertised-stream-addr", EnvVars: envVars("advertised-stream-addr"),
				Usage: "address gateways are told to dial for --stream-addr (default: the listener's; a published port or a proxy otherwise)"},
			&ucli.StringFlag{Name: "rack", EnvVars: envVars("rack"), Usage: "rack for rack-aware replica placement"},
			partitionMetricsFlag,
			&ucli.IntFlag{Name: "bootstrap-expect", Value: 1, EnvVars: envVars("bootstrap-expect"), Usage: "number of metadata voters; the first nodes seen become them"},
			bootstrapUserFlag,
			&ucli.StringFlag{Name: "admin-addr", EnvVars: envVars("admin-addr"), Usage: "HTTP admin address (/healthz, /readyz)"},
			diskHighWatermarkFlag, txnMaxTimeoutFlag, txnIDExpirationFlag, cleanerBackoffFlag, cleanerDedupeFlag, cleanerIOFlag,
			groupConsumerSessionFlag, groupConsumerHeartbeatFlag,
			&ucli.DurationFlag{Name: "replica-lag-time-max", Value: 30 * time.Second, EnvVars: envVars("replica-lag-time-max"),
				Usage: "a follower not caught up for this long leaves the ISR (replica.lag.time.max.ms)"},
			clusterFlag, debugFlag,
		}, append(append(tierFlags("object store for closed segments of topics with remote.storage.enable=true: s3://bucket/prefix?endpoint=host:port or file:///dir"),
			brokerDefaultFlags()...), append(append(natsAuthFlags(), adminSecurityFlags()...), raftTLSFlags()...)...)...),
		Action: func(c *ucli.Context) error {
			if c.Int("id") < 1 {
				return errors.New("node: --id must be at least 1")
			}
			streamAddr, err := streamListenAddr(c.String("stream-addr"), c.String("raft-addr"))
			if err != nil {
				return fmt.Errorf("node: %w", err)
			}
			txnMaxTimeout, txnIDExpiration, err := txnLimits(c)
			if err != nil {
				return fmt.Errorf("node: %w", err)
			}
			groupSession, groupHeartbeat, err := groupConsumerTimings(c)
			if err != nil {
				return fmt.Errorf("node: %w", err)
			}
			cleaner, err := cleanerSettings(c)
			if err != nil {
				return fmt.Errorf("node: %w", err)
			}
			if hw := c.Float64("disk-high-watermark"); hw <= 0 || hw > 1 {
				return fmt.Errorf("node: --disk-high-watermark %v: want a fraction in (0, 1]", hw)
			}
			defaults, err := topicDefaults(c)
			if err != nil {
				return fmt.Errorf("node: %w", err)
			}
			logger := newLogger(c)
			ctx, cancel := signalContext(c.Context)
			defer cancel()
			bootUser, bootPassword, err := readBootstrapUser(c)
			if err != nil {
				return fmt.Errorf("node: %w", err)
			}
			raftTLS, err := readRaftTLS(c)
			if err != nil {
				return fmt.Errorf("node: %w", err)
			}
			adminSec, err := readAdminSecurity(c)
			if err != nil {
				return fmt.Errorf("node: %w", err)
			}
			admin, err := startAdmin(c.String("admin-addr"), adminSec, logger)
			if err != nil {
				return fmt.Errorf("node: %w", err)
			}
			defer admin.close()
			store, err := openTier(c, c.String("tier-url"))
			if err != nil {
				return fmt.Errorf("node: %w", err)
			}
			store = instrumentTier(c, store, admin.registry)
			nc, err := connectNATS(c, fmt.Sprintf("strata-node-%d", c.Int("id")), logger)
			if err != nil {
				return fmt.Errorf("node: %w", err)
			}
			defer nc.Close()
			proc, err := node.StartProcess(node.ProcessConfig{
				ID: int32(c.Int("id")), Cluster: c.String("cluster"), DataDir: c.String("data-dir"),
				RaftAddr: c.String("raft-addr"), Rack: c.String("rack"), Conn: nc,
				BootstrapExpect: c.Int("bootstrap-expect"), LogDefaults: plog.DefaultConfig(), TopicDefaults: defaults, Tier: store,
				TierCacheBytes: c.Int64("tier-cache-bytes"), TierOrphanGrace: c.Duration("tier-orphan-grace"),
				TierReconcileInterval: c.Duration("tier-reconcile-interval"),
				DiskHighWatermark:     c.Float64("disk-high-watermark"), ReplicaLagMax: c.Duration("replica-lag-time-max"), Logger: logger,
				TxnMaxTimeout: txnMaxTimeout, TxnIDExpiration: txnIDExpiration, Cleaner: cleaner,
				GroupConsumerSessionTimeout: groupSession, GroupConsumerHeartbeatInterval: groupHeartbeat,
				StreamAddr: streamAddr, StreamAdvertised: c.String("advertised-stream-addr"),
				Registry: admin.registry, NoPartitionMetrics: !c.Bool("partition-metrics"),
				BootstrapUser: bootUser, BootstrapPassword: bootPassword, RaftTLS: raftTLS,
				OnBootstrapUser: func(created bool) {
					if created {
						logger.Info("bootstrap user created", "user", bootUser)
					}
				},
			})
			if err != nil {
				return fmt.Errorf("node: %w", err)
			}
			admin.readyWhen(proc.Node.Ready)
			streamAt := "none"
			if proc.Stream != nil {
				streamAt = proc.Stream.Addr()
			}
			logger.Info("strata node ready", "id", c.Int("id"), "raft_addr", proc.Member.Server().Addr(), "stream_addr", streamAt)
			<-ctx.Done()
			logger.Info("shutting down")
			return proc.Close()
		},
	}
}

func gatewayCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "gateway",
		Usage: "run a Kafka gateway: clients connect here; requests go to partition leaders over NATS",
		Flags: append([]ucli.Flag{
			natsFlag, natsWaitFlag,
			&ucli.StringFlag{Name: "kafka-addr", Value: ":9092", EnvVars: envVars("kafka-addr"), Usage: "Kafka listener address"},
			&ucli.StringFlag{Name: "advertised-addr", EnvVars: envVars("advertised-addr"), Usage: "address clients are told to connect to (default: the listener's)"},
			&ucli.StringFlag{Name: "admin-addr", Value: ":9644", EnvVars: envVars("admin-addr"), Usage: "HTTP admin address (/healthz, /readyz); empty to disable"},
			&ucli.IntFlag{Name: "id", Value: 0, EnvVars: envVars("id"), Usage: "broker id this gateway has in Metadata; give each gateway its own"},
			&ucli.BoolFlag{Name: "auto-create-topics", EnvVars: envVars("auto-create-topics"), Usage: "create unknown topics clients ask for (auto.create.topics.enable)"},
			numPartitionsFlag(),
			&ucli.IntFlag{Name: "default-replication-factor", Value: 1, EnvVars: envVars("default-replication-factor"), Usage: "replicas of a topic created without a replication factor (default.replication.factor)"},
			&ucli.BoolFlag{Name: "node-streams", Value: true, EnvVars: envVars("node-streams"),
				Usage: "send nodes Kafka requests over their direct stream connections where they offer one (false: all over NATS)"},
			clusterFlag, debugFlag,
		}, append(append(append(gatewayTierFlags(), listenerFlags()...), listenerSecurityFlags()...), append(natsAuthFlags(), adminSecurityFlags()...)...)...),
		Action: func(c *ucli.Context) error {
			logger := newLogger(c)
			ctx, cancel := signalContext(c.Context)
			defer cancel()
			if c.Int("tier-read-concurrency") < 1 || c.Int64("tier-read-max-bytes") < 1<<20 {
				return errors.New("gateway: --tier-read-concurrency must be at least 1 and --tier-read-max-bytes at least 1 MiB")
			}
			if c.Int64("tier-fetch-max-bytes-per-second") < 0 {
				return errors.New("gateway: --tier-fetch-max-bytes-per-second must be 0 (unbounded) or more")
			}
			listener, err := readListenerFlags(c)
			if err != nil {
				return fmt.Errorf("gateway: %w", err)
			}
			listeners, err := readListeners(c, c.String("kafka-addr"), c.String("advertised-addr"))
			if err != nil {
				return fmt.Errorf("gateway: %w", err)
			}
			reauth, err := reauthMax(c)
			if err != nil {
				return fmt.Errorf("gateway: %w", err)
			}
			authorization, err := readAuthz(c)
			if err != nil {
				return fmt.Errorf("gateway: %w", err)
			}
			adminSec, err := readAdminSecurity(c)
			if err != nil {
				return fmt.Errorf("gateway: %w", err)
			}
			admin, err := startAdmin(c.String("admin-addr"), adminSec, logger)
			if err != nil {
				return fmt.Errorf("gateway: %w", err)
			}
			defer admin.close()
			store, err := openTier(c, c.String("tier-url"))
			if err != nil {
				return fmt.Errorf("gateway: %w", err)
			}
			store = instrumentTier(c, store, admin.registry)
			nc, err := connectNATS(c, "strata-gateway", logger)
			if err != nil {
				return fmt.Errorf("gateway: %w", err)
			}
			defer nc.Close()
			gcfg := gateway.Config{Cluster: c.String("cluster"), Conn: nc, ID: int32(c.Int("id")),
				Listeners: listeners, ReauthMax: reauth,
				AutoCreateTopics: c.Bool("auto-create-topics"), DefaultPartitions: int32(c.Int("num-partitions")),
				DefaultReplicationFactor: int16(c.Int("default-replication-factor")),
				Tier:                     store, TierCacheDir: c.String("tier-cache-dir"), TierCacheBytes: c.Int64("tier-cache-bytes"),
				TierReadConcurrency: c.Int("tier-read-concurrency"), TierReadMaxBytes: c.Int64("tier-read-max-bytes"),
				TierFetchMaxBytesPerSecond: c.Int64("tier-fetch-max-bytes-per-second"), NoStreams: !c.Bool("node-streams"), Registry: admin.registry, Logger: logger}
			listener.apply(&gcfg)
			authorization.apply(&gcfg)
			gw, err := gateway.Start(gcfg)
			if err != nil {
				return fmt.Errorf("gateway: %w", err)
			}
			closeConsole, err := admin.mountGateway(gw, logger)
			if err != nil {
				return fmt.Errorf("gateway: %w", err)
			}
			defer closeConsole()
			admin.readyWhen(func() error {
				ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				return gw.Ready(ctx)
			})
			logger.Info("strata gateway ready: Kafka clients may connect", "kafka_addr", gw.Addr())
			<-ctx.Done()
			logger.Info("shutting down")
			return gw.Close()
		},
	}
}
