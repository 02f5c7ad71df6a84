package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	ucli "github.com/urfave/cli/v2"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/meta"
	"github.com/strata-io/strata/node"
	plog "github.com/strata-io/strata/node/log"
	"github.com/strata-io/strata/tier"
)

func devCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "dev",
		Usage: "run embedded NATS, one node and one gateway in one process",
		Description: "A single-process cluster for development: Kafka clients connect to --kafka-addr.\n" +
			"Data lives in --data-dir; a restart on the same directory serves everything acknowledged.",
		Flags: append([]ucli.Flag{
			&ucli.StringFlag{Name: "data-dir", Value: "./strata-data", EnvVars: envVars("data-dir"), Usage: "where partition logs and metadata live"},
			&ucli.StringFlag{Name: "kafka-addr", Value: "127.0.0.1:9092", EnvVars: envVars("kafka-addr"), Usage: "Kafka listener address"},
			&ucli.StringFlag{Name: "admin-addr", Value: "127.0.0.1:9644", EnvVars: envVars("admin-addr"), Usage: "HTTP admin address (/healthz, /readyz); empty to disable"},
			diskHighWatermarkFlag, txnMaxTimeoutFlag, txnIDExpirationFlag, cleanerBackoffFlag, cleanerDedupeFlag, cleanerIOFlag,
			groupConsumerSessionFlag, groupConsumerHeartbeatFlag,
			&ucli.StringFlag{Name: "raft-addr", Value: "127.0.0.1:9646", EnvVars: envVars("raft-addr"), Usage: "metadata Raft address (loopback; keep it stable across restarts)"},
			numPartitionsFlag(), debugFlag, tierFetchRateFlag, partitionMetricsFlag, bootstrapUserFlag,
			&ucli.BoolFlag{Name: "secure", EnvVars: envVars("secure"),
				Usage: "SASL/SCRAM on --kafka-addr (SASL_PLAINTEXT) and ACLs, with a super user admin whose generated password is printed once (or --bootstrap-user's)"},
		}, append(append(append(tierFlags("object store for closed segments of topics with remote.storage.enable=true (default file://<data-dir>/tier)"),
			brokerDefaultFlags()...), listenerFlags()...), append(listenerSecurityFlags(), adminSecurityFlags()...)...)...),
		Action: func(c *ucli.Context) error {
			defaults, err := topicDefaults(c)
			if err != nil {
				return fmt.Errorf("dev: %w", err)
			}
			tierURL := c.String("tier-url")
			if tierURL == "" {
				abs, err := filepath.Abs(filepath.Join(c.String("data-dir"), "tier"))
				if err != nil {
					return fmt.Errorf("dev: %w", err)
				}
				tierURL = "file://" + abs
			}
			if c.Int64("tier-fetch-max-bytes-per-second") < 0 {
				return errors.New("dev: --tier-fetch-max-bytes-per-second must be 0 (unbounded) or more")
			}
			listener, err := readListenerFlags(c)
			if err != nil {
				return fmt.Errorf("dev: %w", err)
			}
			sec, err := readDevSecurity(c)
			if err != nil {
				return fmt.Errorf("dev: %w", err)
			}
			adminSec, err := readAdminSecurity(c)
			if err != nil {
				return fmt.Errorf("dev: %w", err)
			}
			txnMaxTimeout, txnIDExpiration, err := txnLimits(c)
			if err != nil {
				return fmt.Errorf("dev: %w", err)
			}
			groupSession, groupHeartbeat, err := groupConsumerTimings(c)
			if err != nil {
				return fmt.Errorf("dev: %w", err)
			}
			cleaner, err := cleanerSettings(c)
			if err != nil {
				return fmt.Errorf("dev: %w", err)
			}
			store, err := openTier(c, tierURL)
			if err != nil {
				return fmt.Errorf("dev: %w", err)
			}
			ctx, cancel := signalContext(c.Context)
			defer cancel()
			return runDev(ctx, devConfig{
				dataDir: c.String("data-dir"), kafkaAddr: c.String("kafka-addr"), adminAddr: c.String("admin-addr"),
				raftAddr: c.String("raft-addr"), tier: store, tierCacheBytes: c.Int64("tier-cache-bytes"),
				tierFetchRate: c.Int64("tier-fetch-max-bytes-per-second"), tierOrphanGrace: c.Duration("tier-orphan-grace"),
				tierReconcileInterval: c.Duration("tier-reconcile-interval"), diskHighWatermark: c.Float64("disk-high-watermark"), topicDefaults: defaults,
				numPartitions: int32(c.Int("num-partitions")), logger: newLogger(c), noPartitionMetrics: !c.Bool("partition-metrics"),
				tierPrices: tierPrices(c), listener: listener, security: sec, adminSec: adminSec,
				txnMaxTimeout: txnMaxTimeout, txnIDExpiration: txnIDExpiration, cleaner: cleaner,
				groupSession: groupSession, groupHeartbeat: groupHeartbeat,
			}, nil)
		},
	}
}

type devConfig struct {
	dataDir, kafkaAddr, adminAddr, raftAddr string
	tier                                    tier.Store
	tierCacheBytes, tierFetchRate           int64
	tierOrphanGrace, tierReconcileInterval  time.Duration
	diskHighWatermark                       float64
	txnMaxTimeout, txnIDExpiration          time.Duration
	groupSession, groupHeartbeat            time.Duration
	cleaner                                 node.CleanerSettings
	topicDefaults                           map[string]string
	numPartitions                           int32
	logger                                  *slog.Logger
	noPartitionMetrics                      bool
	tierPrices                              tier.Prices
	listener                                listenerSettings
	security                                devSecurity
	adminSec                                adminSecurity
}

// devSecurity is strata dev's listeners and first user.
type devSecurity struct {
	listeners              []gateway.Listener // nil: PLAINTEXT on kafkaAddr
	reauth                 time.Duration
	bootUser, bootPassword string
	generated              bool // bootPassword was made here: print it once
	authz                  authz
}

// secureListeners is strata dev --secure's listener: SASL_PLAINTEXT on
// the Kafka address.
func secureListeners(kafkaAddr string) []gateway.Listener {
	return []gateway.Listener{{Name: gateway.SASLPlaintext, Addr: kafkaAddr, Protocol: gateway.SASLPlaintext}}
}

// readDevSecurity reads strata dev's security flags. --secure without
// --listeners puts SASL_PLAINTEXT on --kafka-addr; without
// --bootstrap-user it makes user admin a random password.
func readDevSecurity(c *ucli.Context) (devSecurity, error) {
	var s devSecurity
	var err error
	if s.bootUser, s.bootPassword, err = readBootstrapUser(c); err != nil {
		return s, err
	}
	if s.reauth, err = reauthMax(c); err != nil {
		return s, err
	}
	if c.String("listeners") != "" {
		if s.listeners, err = readListeners(c, "", ""); err != nil {
			return s, err
		}
	} else if c.Bool("secure") {
		s.listeners = secureListeners(c.String("kafka-addr"))
	}
	if c.Bool("secure") && s.bootUser == "" {
		s.bootUser, s.bootPassword, s.generated = "admin", randomPassword(), true
	}
	if s.authz, err = readAuthz(c); err != nil {
		return s, err
	}
	if c.Bool("secure") {
		s.authz.on = true
		s.authz.super = append(s.authz.super, "User:"+s.bootUser)
	}
	return s, nil
}

// runDev runs the single-process cluster until ctx ends; ready, if set, is
// told the Kafka address once clients are accepted.
func runDev(ctx context.Context, cfg devConfig, ready func(kafkaAddr string)) error {
	logger := cfg.logger
	start := time.Now()
	admin, err := startAdmin(cfg.adminAddr, cfg.adminSec, logger)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer admin.close()
	if cfg.tier != nil {
		cfg.tier = tier.Instrument(cfg.tier, tier.NewStoreMetrics(admin.registry, cfg.tierPrices))
	}
	// NATS runs inside the process and listens on no port: node and
	// gateway connect in-process.
	ns, err := server.NewServer(&server.Options{DontListen: true, MaxPayload: 8 << 20, NoLog: true, NoSigs: true})
	if err != nil {
		return fmt.Errorf("dev: nats: %w", err)
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(5 * time.Second) {
		return fmt.Errorf("dev: embedded nats did not start")
	}
	connect := func() (*nats.Conn, error) { return nats.Connect("", nats.InProcessServer(ns)) }
	nodeConn, err := connect()
	if err != nil {
		return fmt.Errorf("dev: nats: %w", err)
	}
	defer nodeConn.Close()
	proc, err := node.StartProcess(node.ProcessConfig{
		ID: 1, Cluster: "dev", DataDir: cfg.dataDir, RaftAddr: cfg.raftAddr, Conn: nodeConn,
		BootstrapExpect: 1, LogDefaults: plog.DefaultConfig(), TopicDefaults: cfg.topicDefaults, Tier: cfg.tier,
		TierCacheBytes: cfg.tierCacheBytes, TierOrphanGrace: cfg.tierOrphanGrace,
		TierReconcileInterval: cfg.tierReconcileInterval, DiskHighWatermark: cfg.diskHighWatermark, Logger: logger,
		HeartbeatInterval: 500 * time.Millisecond, SessionTimeout: 3 * time.Second,
		TxnMaxTimeout: cfg.txnMaxTimeout, TxnIDExpiration: cfg.txnIDExpiration, Cleaner: cfg.cleaner,
		GroupConsumerSessionTimeout: cfg.groupSession, GroupConsumerHeartbeatInterval: cfg.groupHeartbeat,
		Registry: admin.registry, NoPartitionMetrics: cfg.noPartitionMetrics,
		BootstrapUser: cfg.security.bootUser, BootstrapPassword: cfg.security.bootPassword,
		OnBootstrapUser: func(created bool) { announceBootstrapUser(logger, cfg.security, created) },
	})
	if err != nil {
		return fmt.Errorf("dev: node: %w", err)
	}
	defer func() {
		if err := proc.Close(); err != nil {
			logger.Error("node shutdown", "error", err)
		}
	}()
	if err := waitController(ctx, nodeConn, "dev"); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	gwConn, err := connect()
	if err != nil {
		return fmt.Errorf("dev: nats: %w", err)
	}
	defer gwConn.Close()
	// The gateway reads uploaded segments from the store itself, as a
	// cluster's gateways do.
	gcfg := gateway.Config{Cluster: "dev", Conn: gwConn, ID: 0, Addr: cfg.kafkaAddr,
		AutoCreateTopics: true, DefaultPartitions: cfg.numPartitions, Tier: cfg.tier,
		Local:        map[int32]gateway.LocalNode{1: proc.Node}, // the node is in this process
		TierCacheDir: filepath.Join(cfg.dataDir, ".gateway-tier-cache"), TierCacheBytes: cfg.tierCacheBytes,
		TierFetchMaxBytesPerSecond: cfg.tierFetchRate, Registry: admin.registry, Logger: logger}
	cfg.listener.apply(&gcfg)
	gcfg.Listeners, gcfg.ReauthMax = cfg.security.listeners, cfg.security.reauth
	cfg.security.authz.apply(&gcfg)
	gw, err := gateway.Start(gcfg)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer gw.Close()
	closeConsole, err := admin.mountGateway(gw, logger)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer closeConsole()
	admin.readyWhen(func() error {
		if err := proc.Node.Ready(); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return gw.Ready(ctx)
	})
	logger.Info("strata dev ready: Kafka clients may connect", "kafka_addr", gw.Addr(), "data_dir", cfg.dataDir,
		"started_in", time.Since(start).Round(time.Millisecond).String())
	if ready != nil {
		ready(gw.Addr())
	}
	<-ctx.Done()
	logger.Info("shutting down")
	return nil
}

// waitController waits until the metadata group answers reads.
func waitController(ctx context.Context, nc *nats.Conn, cluster string) error {
	client := meta.NewClient(nc, cluster)
	deadline := time.Now().Add(30 * time.Second)
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := client.Read(rctx, meta.ReadRequest{Kind: "nodes"})
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("no metadata controller: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
