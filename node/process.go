package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-io/strata/group"
	"github.com/strata-io/strata/internal/stream"
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
	// ReplicaLagMax and ShareIdle: see Config.
	ReplicaLagMax time.Duration
	ShareIdle     time.Duration
	// TxnMaxTimeout and TxnIDExpiration: transaction.max.timeout.ms and
	// transactional.id.expiration.ms (zero: Kafka's 15 minutes and 7
	// days).
	TxnMaxTimeout, TxnIDExpiration time.Duration
	// GroupConsumerSessionTimeout and GroupConsumerHeartbeatInterval:
	// see group.Options.
	GroupConsumerSessionTimeout, GroupConsumerHeartbeatInterval time.Duration
	// MaintainInterval and Cleaner: see Config.
	MaintainInterval time.Duration
	Cleaner          CleanerSettings
	Logger           *slog.Logger
	// HeartbeatInterval and SessionTimeout: see meta.MemberConfig.
	HeartbeatInterval time.Duration
	SessionTimeout    time.Duration
	// TuneRaft, if set, adjusts Raft timing (tests shorten it).
	TuneRaft func(*meta.ServerConfig)
	// StreamAddr, when set, is where the node listens for gateways'
	// direct connections (internal/stream); its heartbeats name the
	// address it got (an unspecified host is replaced by RaftAddr's), or
	// StreamAdvertised when set (an address translated on the way: a
	// container's published port, a proxy).
	StreamAddr       string
	StreamAdvertised string
	// Registry and NoPartitionMetrics: see Config.
	Registry           prometheus.Registerer
	NoPartitionMetrics bool
	// RaftTLS, when set, makes the metadata Raft transport mutual TLS.
	RaftTLS *meta.RaftTLS
	// BootstrapUser and BootstrapPassword, when set, create the first
	// SASL/SCRAM user of the cluster unless it exists: a secured cluster
	// never has to be open to be set up. OnBootstrapUser, when set, is
	// told whether this process created it.
	BootstrapUser, BootstrapPassword string
	OnBootstrapUser                  func(created bool)
}

// Process is a running node: metadata member, partition server and the
// consumer-group service (which coordinates while this node is the
// controller).
type Process struct {
	Member *meta.Member
	Node   *Node
	Groups *group.Service
	Stream *stream.Server // nil without ProcessConfig.StreamAddr

	// registered are the collectors this process registered, each with
	// the registerer it went through.
	registered []registration

	closeOnce sync.Once
	closeErr  error
	stop      chan struct{} // closed by Close
}

// StartProcess opens the metadata member, then starts serving partitions.
func StartProcess(cfg ProcessConfig) (*Process, error) {
	if cfg.BootstrapUser != "" && cfg.BootstrapPassword == "" {
		return nil, errors.New("node: the bootstrap user needs a password")
	}
	sc := meta.ServerConfig{NodeID: cfg.ID, DataDir: filepath.Join(cfg.DataDir, "meta"), RaftAddr: cfg.RaftAddr, RaftTLS: cfg.RaftTLS, Logger: cfg.Logger}
	if cfg.TuneRaft != nil {
		cfg.TuneRaft(&sc)
	}
	var ss *stream.Server
	var streamAddr string
	streamToken := stream.NewToken()
	if cfg.StreamAddr != "" {
		var err error
		if ss, err = stream.Listen(cfg.StreamAddr, streamToken, cfg.Logger); err != nil {
			return nil, wrapErr("stream", err)
		}
		streamAddr = advertised(ss.Addr(), cfg.RaftAddr)
		if cfg.StreamAdvertised != "" {
			streamAddr = cfg.StreamAdvertised
		}
	}
	m, err := meta.OpenMember(meta.MemberConfig{
		ServerConfig: sc, Cluster: cfg.Cluster, Conn: cfg.Conn, Rack: cfg.Rack, Version: cfg.Version, TopicDefaults: cfg.TopicDefaults,
		BootstrapExpect: cfg.BootstrapExpect, HeartbeatInterval: cfg.HeartbeatInterval, SessionTimeout: cfg.SessionTimeout,
		StreamAddr: streamAddr, StreamToken: streamToken,
	})
	if err != nil {
		if ss != nil {
			ss.Close()
		}
		return nil, wrapErr("metadata", err)
	}
	n, err := Start(Config{ID: cfg.ID, Cluster: cfg.Cluster, DataDir: filepath.Join(cfg.DataDir, "partitions"),
		Conn: cfg.Conn, Meta: m, LogDefaults: cfg.LogDefaults, TopicDefaults: cfg.TopicDefaults,
		Tier: cfg.Tier, TierCacheBytes: cfg.TierCacheBytes,
		TierOrphanGrace: cfg.TierOrphanGrace, TierReconcileInterval: cfg.TierReconcileInterval,
		DiskHighWatermark: cfg.DiskHighWatermark, DiskUsage: cfg.DiskUsage,
		ReplicaLagMax: cfg.ReplicaLagMax, ShareIdle: cfg.ShareIdle, MaintainInterval: cfg.MaintainInterval, Cleaner: cfg.Cleaner, Logger: cfg.Logger,
		Registry: cfg.Registry, NoPartitionMetrics: cfg.NoPartitionMetrics})
	if err != nil {
		if ss != nil {
			ss.Close()
		}
		m.Close()
		return nil, wrapErr("partitions", err)
	}
	g, err := group.Start(m, cfg.Conn, cfg.Cluster, cfg.ID, cfg.Logger, group.Options{TxnMaxTimeout: cfg.TxnMaxTimeout, TxnIDExpiration: cfg.TxnIDExpiration,
		ConsumerSessionTimeout: cfg.GroupConsumerSessionTimeout, ConsumerHeartbeatInterval: cfg.GroupConsumerHeartbeatInterval})
	if err != nil {
		if ss != nil {
			ss.Close()
		}
		n.Close()
		m.Close()
		return nil, wrapErr("groups", err)
	}
	if ss != nil {
		ss.SetHandler(n.ServeKafka, n.Responded)
	}
	p := &Process{Member: m, Node: n, Groups: g, Stream: ss, stop: make(chan struct{})}
	if cfg.BootstrapUser != "" {
		logger := cfg.Logger
		if logger == nil {
			logger = slog.New(slog.DiscardHandler)
		}
		go bootstrapUser(m, cfg.BootstrapUser, cfg.BootstrapPassword, p.stop, cfg.OnBootstrapUser, logger.Warn)
	}
	if cfg.Registry != nil {
		// The node label, as on the node's own metrics, tells members
		// apart in a registry several share (strata dev, tests).
		wrapped := prometheus.WrapRegistererWith(prometheus.Labels{"node": strconv.Itoa(int(cfg.ID))}, cfg.Registry)
		for _, c := range m.Collectors() {
			p.register(wrapped, c)
		}
		p.register(cfg.Registry, newRaftCollector(p, cfg.ID))
		p.register(cfg.Registry, g.Collector())
	}
	return p, nil
}

// advertised is the address gateways dial for a listener bound to addr:
// an unspecified host (0.0.0.0, ::) becomes the host of peer, the
// address other nodes already reach this one at.
func advertised(addr, peer string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
		return addr
	}
	if ph, _, err := net.SplitHostPort(peer); err == nil && ph != "" {
		return net.JoinHostPort(ph, port)
	}
	return addr
}

// Close stops serving partitions, then leaves the metadata group. Safe to
// call more than once.
func (p *Process) Close() error {
	p.closeOnce.Do(func() {
		close(p.stop)
		for _, r := range p.registered {
			r.on.Unregister(r.c)
		}
		if p.Stream != nil {
			p.Stream.Close() // gateways fall back to NATS, where no node answers
		}
		p.Groups.Close()
		p.closeErr = errors.Join(wrapErr("partitions", p.Node.Close()), wrapErr("metadata", p.Member.Close()))
	})
	return p.closeErr
}

// wrapErr names what failed to start or close, so that a bare error (an
// EOF) says where it came from.
func wrapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

type registration struct {
	on prometheus.Registerer
	c  prometheus.Collector
}

// register registers c on r, to be unregistered by Close; a collector
// that cannot be registered (a clash) goes without.
func (p *Process) register(r prometheus.Registerer, c prometheus.Collector) {
	if err := r.Register(c); err == nil {
		p.registered = append(p.registered, registration{r, c})
	}
}
