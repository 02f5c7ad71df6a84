package node

import (
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/strata-io/strata/group"
	"github.com/strata-io/strata/meta"
	plog "github.com/strata-io/strata/node/log"
	"github.com/strata-io/strata/tier"
)

// ProcessConfig configures a whole `strata node` process: its metadata
// member and its partition server.
type ProcessConfig struct {
	ID              int32
	Cluster         string
	DataDir         string // meta/ and partitions/ live here
	RaftAddr        string
	Rack            string
	Version         string
	Conn            *nats.Conn
	BootstrapExpect int
	LogDefaults     plog.Config
	// TopicDefaults are broker-level topic configs (by topic config name)
	// over LogDefaults, validated by the caller with
	// meta.ValidateTopicConfigs.
	TopicDefaults map[string]string
	// Tier is where closed segments of tiered topics go (nil: nowhere).
	Tier tier.Store
	// TierCacheBytes bounds the remote read cache (default 1 GiB).
	TierCacheBytes int64
	// TierOrphanGrace and TierReconcileInterval: see Config.
	TierOrphanGrace       time.Duration
	TierReconcileInterval time.Duration
	// DiskHighWatermark and DiskUsage: see Config.
	DiskHighWatermark float64
	DiskUsage         func() (used, total uint64, err error)
	// ReplicaLagMax: see Config.
	ReplicaLagMax time.Duration
	// MaintainInterval: see Config.
	MaintainInterval time.Duration
	Logger           *slog.Logger
	// HeartbeatInterval and SessionTimeout: see meta.MemberConfig.
	HeartbeatInterval time.Duration
	SessionTimeout    time.Duration
	// TuneRaft, if set, adjusts Raft timing (tests shorten it).
	TuneRaft func(*meta.ServerConfig)
}

// Process is a running node: metadata member, partition server and the
// consumer-group service (which coordinates while this node is the
// controller).
type Process struct {
	Member *meta.Member
	Node   *Node
	Groups *group.Service

	closeOnce sync.Once
	closeErr  error
}

// StartProcess opens the metadata member, then starts serving partitions.
func StartProcess(cfg ProcessConfig) (*Process, error) {
	sc := meta.ServerConfig{NodeID: cfg.ID, DataDir: filepath.Join(cfg.DataDir, "meta"), RaftAddr: cfg.RaftAddr, Logger: cfg.Logger}
	if cfg.TuneRaft != nil {
		cfg.TuneRaft(&sc)
	}
	m, err := meta.OpenMember(meta.MemberConfig{
		ServerConfig: sc, Cluster: cfg.Cluster, Conn: cfg.Conn, Rack: cfg.Rack, Version: cfg.Version, TopicDefaults: cfg.TopicDefaults,
		BootstrapExpect: cfg.BootstrapExpect, HeartbeatInterval: cfg.HeartbeatInterval, SessionTimeout: cfg.SessionTimeout,
	})
	if err != nil {
		return nil, err
	}
	n, err := Start(Config{ID: cfg.ID, Cluster: cfg.Cluster, DataDir: filepath.Join(cfg.DataDir, "partitions"),
		Conn: cfg.Conn, Meta: m, LogDefaults: cfg.LogDefaults, TopicDefaults: cfg.TopicDefaults,
		Tier: cfg.Tier, TierCacheBytes: cfg.TierCacheBytes,
		TierOrphanGrace: cfg.TierOrphanGrace, TierReconcileInterval: cfg.TierReconcileInterval,
		DiskHighWatermark: cfg.DiskHighWatermark, DiskUsage: cfg.DiskUsage,
		ReplicaLagMax: cfg.ReplicaLagMax, MaintainInterval: cfg.MaintainInterval, Logger: cfg.Logger})
	if err != nil {
		m.Close()
		return nil, err
	}
	g, err := group.Start(m, cfg.Conn, cfg.Cluster, cfg.ID, cfg.Logger)
	if err != nil {
		n.Close()
		m.Close()
		return nil, err
	}
	return &Process{Member: m, Node: n, Groups: g}, nil
}

// Close stops serving partitions, then leaves the metadata group. Safe to
// call more than once.
func (p *Process) Close() error {
	p.closeOnce.Do(func() {
		p.Groups.Close()
		p.closeErr = errors.Join(p.Node.Close(), p.Member.Close())
	})
	return p.closeErr
}
