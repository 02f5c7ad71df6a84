package testenv

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/meta"
	"github.com/strata-io/strata/node"
	plog "github.com/strata-io/strata/node/log"
	"github.com/strata-io/strata/tier"
)

// Options adjust an in-process cluster.
type Options struct {
	// AutoCreateTopics turns on auto.create.topics.enable at the gateway.
	AutoCreateTopics bool
	// LogDefaults are the broker's log settings (default: node/log's).
	LogDefaults *plog.Config
	// NATSMaxPayload is the NATS server's max payload (default 8 MiB).
	NATSMaxPayload int32
	// Tier is the nodes' object store (default: none).
	Tier tier.Store
	// GatewayTier makes the gateways read uploaded segments from Tier
	// themselves, as `strata gateway --tier-url` does (default: the
	// nodes read them).
	GatewayTier bool
	// MaintainInterval is how often nodes roll, retain and upload
	// (default 1s).
	MaintainInterval time.Duration
	// TierOrphanGrace and TierReconcileInterval: see node.Config.
	TierOrphanGrace       time.Duration
	TierReconcileInterval time.Duration
	// DiskUsage, when set, is what nodes believe of their data disk
	// (tests fill a disk without filling one).
	DiskUsage func() (used, total uint64, err error)
	// ShareIdle: see node.Config (zero: 10 min).
	ShareIdle time.Duration
	// ReplicaLagMax: see node.Config (default here 1s, Kafka's 30s is
	// too slow for tests).
	ReplicaLagMax time.Duration
	// Logger, when set, receives the nodes' logs (default: none).
	Logger *slog.Logger
	// Cuttable routes each node's NATS connection through a loopback
	// proxy, so Disconnect can cut it. Off by default: the extra hop
	// costs throughput in benchmarks.
	Cuttable bool
	// DeploymentTimeouts keeps Raft's, the heartbeats' and the replica
	// lag's timeouts at what strata node uses, instead of the second or
	// so tests shorten them to: for workloads that load the machine and
	// must not see a controller change (a test cluster's 100 ms Raft
	// lease lapses under such load).
	DeploymentTimeouts bool
	// TxnIDExpiration: transactional.id.expiration.ms (zero: 7 days).
	TxnIDExpiration time.Duration
	// GroupConsumerHeartbeat: group.consumer.heartbeat.interval.ms
	// (zero: 5 s).
	GroupConsumerHeartbeat time.Duration
	// CleanerIOBytesPerSecond paces the log cleaner's reads (zero:
	// unlimited), as --log-cleaner-io-max-bytes-per-second.
	CleanerIOBytesPerSecond float64
	// LocalPath has the gateway ask the nodes directly, as strata dev
	// does, instead of over NATS. For benchmarks: a node stopped and
	// started again is not asked.
	LocalPath bool
	// Streams has each node listen for direct connections and the
	// gateway send them Kafka requests that way (internal/stream), as
	// strata node does by default; off, everything crosses NATS.
	Streams bool
	// StreamAdvertised, by node id, is the stream address a node's
	// heartbeats name instead of its own (a proxy in front of it).
	StreamAdvertised map[int32]string
	// Registry, when set, gets every node's and the gateway's metrics.
	Registry *prometheus.Registry
	// Gateway, when set, adjusts the gateway's configuration before it
	// starts.
	Gateway func(*gateway.Config)
}

// Cluster is a Strata cluster running inside the test process.
type Cluster struct {
	t       testing.TB
	nats    *embeddedNATS
	Nodes   map[int32]*node.Process
	Gateway *gateway.Gateway
	conns   []*nats.Conn
	// configs start each node again with its disk and Raft address.
	configs map[int32]node.ProcessConfig
	// proxies carry each node's NATS connection, to cut it (Cuttable).
	proxies  map[int32]*proxy
	cuttable bool
	// gatewayTier is the store gateways read (Options.GatewayTier).
	gatewayTier tier.Store
}

// InProcess starts embedded NATS, n nodes (the first n as voters) and one
// gateway on loopback, and stops them when the test ends. It returns once
// a controller leads and every node is registered.
func InProcess(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	if opts.NATSMaxPayload <= 0 {
		opts.NATSMaxPayload = 8 << 20
	}
	if opts.Logger == nil {
		opts.Logger = envLogger(t) // closed after the cluster stops
	}
	ns := startNATS(t, opts.NATSMaxPayload)
	// Directories first: cleanups run last-registered first, so the
	// processes must be stopped (c.close) before their directories go.
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = t.TempDir()
	}
	c := &Cluster{t: t, nats: ns, Nodes: map[int32]*node.Process{}, configs: map[int32]node.ProcessConfig{}, proxies: map[int32]*proxy{},
		cuttable: opts.Cuttable}
	t.Cleanup(c.close)
	logDefaults := plog.DefaultConfig()
	if opts.LogDefaults != nil {
		logDefaults = *opts.LogDefaults
	}
	for id := int32(1); id <= int32(n); id++ {
		cfg := testNodeConfig(id, n, dirs[id-1], freePort(t), opts.MaintainInterval, opts.Logger)
		cfg.TxnIDExpiration, cfg.ShareIdle = opts.TxnIDExpiration, opts.ShareIdle
		cfg.GroupConsumerHeartbeatInterval = opts.GroupConsumerHeartbeat
		cfg.Cleaner.IOBytesPerSecond = opts.CleanerIOBytesPerSecond
		if opts.DeploymentTimeouts {
			cfg.TuneRaft, cfg.HeartbeatInterval, cfg.SessionTimeout, cfg.ReplicaLagMax = nil, 0, 0, 0
		}
		cfg.LogDefaults, cfg.Tier, cfg.DiskUsage = logDefaults, opts.Tier, opts.DiskUsage
		if opts.ReplicaLagMax > 0 {
			cfg.ReplicaLagMax = opts.ReplicaLagMax
		}
		cfg.TierOrphanGrace, cfg.TierReconcileInterval = opts.TierOrphanGrace, opts.TierReconcileInterval
		if opts.Streams {
			cfg.StreamAddr, cfg.StreamAdvertised = "127.0.0.1:0", opts.StreamAdvertised[id]
		}
		if opts.Registry != nil {
			cfg.Registry = opts.Registry
		}
		c.configs[id] = cfg
		c.StartNode(id)
	}
	if opts.GatewayTier {
		c.gatewayTier = opts.Tier
	}
	var local map[int32]gateway.LocalNode
	if opts.LocalPath {
		local = map[int32]gateway.LocalNode{}
		for id, p := range c.Nodes {
			local[id] = p.Node
		}
	}
	gcfg := gateway.Config{Cluster: "test", Conn: c.connect(), ID: 0, Addr: "127.0.0.1:0", AutoCreateTopics: opts.AutoCreateTopics,
		Tier: c.gatewayTier, Local: local, Registry: registerer(opts.Registry)}
	if opts.Gateway != nil {
		opts.Gateway(&gcfg)
	}
	g, err := gateway.Start(gcfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Gateway = g
	c.waitReady(n)
	if opts.Streams {
		WaitStreams(t, g, n)
	}
	return c
}

// WaitStreams waits until gateway g knows the stream addresses of n
// nodes (from their heartbeats).
func WaitStreams(t testing.TB, g *gateway.Gateway, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); g.Streams() < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the gateway knows the streams of %d nodes of %d", g.Streams(), n)
		}
	}
}

// testNodeConfig is node id's configuration in a test cluster of n:
// Raft, heartbeats and replica lag shortened so that failures are found
// in about a second.
func testNodeConfig(id int32, n int, dir, raftAddr string, maintain time.Duration, logger *slog.Logger) node.ProcessConfig {
	return node.ProcessConfig{
		ID: id, Cluster: "test", DataDir: dir, RaftAddr: raftAddr, BootstrapExpect: n,
		LogDefaults: plog.DefaultConfig(), MaintainInterval: maintain, ReplicaLagMax: time.Second, Logger: logger,
		Cleaner:           node.CleanerSettings{Interval: 200 * time.Millisecond},
		HeartbeatInterval: 100 * time.Millisecond, SessionTimeout: time.Second,
		TuneRaft: func(sc *meta.ServerConfig) {
			sc.HeartbeatTimeout, sc.ElectionTimeout = 200*time.Millisecond, 200*time.Millisecond
			sc.LeaderLeaseTimeout, sc.CommitTimeout = 100*time.Millisecond, 5*time.Millisecond
		},
	}
}

// StartNode starts node id (again: with the disk and Raft address it had).
func (c *Cluster) StartNode(id int32) {
	c.t.Helper()
	if c.Nodes[id] != nil {
		return
	}
	cfg := c.configs[id]
	natsURL := c.nats.clientURL()
	if c.cuttable {
		px := c.proxies[id]
		if px == nil {
			u, err := url.Parse(natsURL)
			if err != nil {
				c.t.Fatal(err)
			}
			px = startProxy(c.t, u.Host)
			c.proxies[id] = px
		}
		natsURL = "nats://" + px.addr()
	}
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		c.t.Fatal(err)
	}
	c.conns = append(c.conns, nc)
	cfg.Conn = nc
	p, err := node.StartProcess(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.Nodes[id] = p
}

// Disconnect cuts node id off NATS (its Raft connections stay): its
// heartbeats stop reaching the controller and nothing reaches it over
// NATS until Reconnect.
func (c *Cluster) Disconnect(id int32) { c.proxy(id).block() }

// Reconnect lets node id reach NATS again; its client reconnects.
func (c *Cluster) Reconnect(id int32) { c.proxy(id).unblock() }

// Stall holds back everything NATS sends node id (what it sends still
// goes: its heartbeats reach the controller) until Unstall: the node
// looks alive but receives nothing, as in a one-way partition.
func (c *Cluster) Stall(id int32)   { c.proxy(id).stall(true) }
func (c *Cluster) Unstall(id int32) { c.proxy(id).stall(false) }

func (c *Cluster) proxy(id int32) *proxy {
	c.t.Helper()
	if !c.cuttable {
		c.t.Fatal("testenv: Disconnect needs Options.Cuttable")
	}
	return c.proxies[id]
}

// DataDir is node id's data directory.
// DumpStacks writes every goroutine's stack into the test log: where a
// stalled in-process cluster waits.
func (c *Cluster) DumpStacks() {
	var b strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
	c.t.Logf("goroutines at the stall:\n%s", b.String())
}

func (c *Cluster) DataDir(id int32) string { return c.configs[id].DataDir }

// StopNode stops node id cleanly, keeping its disk.
func (c *Cluster) StopNode(id int32) {
	c.t.Helper()
	if p := c.Nodes[id]; p != nil {
		if err := p.Close(); err != nil {
			c.t.Errorf("stopping node %d: %v", id, err)
		}
		delete(c.Nodes, id)
	}
}

// StartGateway starts another gateway with broker id id on loopback,
// stopped when the test ends unless closed first.
func (c *Cluster) StartGateway(id int32) *gateway.Gateway {
	c.t.Helper()
	g, err := gateway.Start(gateway.Config{Cluster: "test", Conn: c.connect(), ID: id, Addr: "127.0.0.1:0", Tier: c.gatewayTier})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { g.Close() })
	return g
}

// RestartNATS shuts the NATS server down, waits down, and starts it again
// on the same address. Every process's connection reconnects by itself
// (the gateways' within their 2 s reconnect wait); requests in flight
// meanwhile fail, retriably.
func (c *Cluster) RestartNATS(down time.Duration) { c.nats.restart(c.t, down) }

func (c *Cluster) connect() *nats.Conn {
	url := c.nats.clientURL()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	if err != nil {
		c.t.Fatal(err)
	}
	c.conns = append(c.conns, nc)
	return nc
}

// waitReady waits for a controller with every node registered.
func (c *Cluster) waitReady(n int) {
	c.t.Helper()
	client := meta.NewClient(c.conns[0], "test")
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := client.Read(ctx, meta.ReadRequest{Kind: "nodes"})
		cancel()
		if err == nil && len(r.Nodes) == n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatal(fmt.Sprintf("cluster of %d nodes not ready within 20s", n))
}

// Addr is the Kafka bootstrap address.
func (c *Cluster) Addr() string { return c.Gateway.Addr() }

// Close stops the cluster before the test ends (it is stopped then
// anyway).
func (c *Cluster) Close() { c.close() }

// Conn is a new NATS connection to the cluster's server, closed with it.
func (c *Cluster) Conn() *nats.Conn { return c.connect() }

func (c *Cluster) close() {
	if c.Gateway != nil {
		c.Gateway.Close()
	}
	for _, p := range c.Nodes {
		p.Close()
	}
	for _, nc := range c.conns {
		nc.Close()
	}
	for _, px := range c.proxies {
		px.close()
	}
	c.nats.shutdown()
}

// registerer is reg as a prometheus.Registerer: nil stays nil.
func registerer(reg *prometheus.Registry) prometheus.Registerer {
	if reg == nil {
		return nil
	}
	return reg
}

// LogEnv, set to a directory, has in-process clusters log to a file
// there named after the test, at debug level: a failure's story, when
// the test alone cannot tell it.
const LogEnv = "STRATA_TEST_LOG"

func envLogger(t testing.TB) *slog.Logger {
	dir := os.Getenv(LogEnv)
	if dir == "" {
		return nil
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	f, err := os.CreateTemp(dir, name+"-*.log")
	if err != nil {
		t.Fatalf("testenv: %s: %v", LogEnv, err)
	}
	t.Cleanup(func() { f.Close() })
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
