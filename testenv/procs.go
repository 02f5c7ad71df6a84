package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/internal/rpc"
	"github.com/strata-io/strata/meta"
	"github.com/strata-io/strata/node"
	"github.com/strata-io/strata/tier"
)

// childEnv, in a child's environment, holds its childSpec as JSON: the
// test binary then runs a node or a gateway instead of its tests.
const childEnv = "STRATA_TESTENV_CHILD"

// RunChild runs this process as a Procs child (a node or a gateway) and
// exits, when it is one; otherwise it returns at once. A test package
// that uses Processes calls it first thing in TestMain.
func RunChild() {
	s := os.Getenv(childEnv)
	if s == "" {
		return
	}
	var spec childSpec
	if err := json.Unmarshal([]byte(s), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "testenv child: %v\n", err)
		os.Exit(2)
	}
	if err := spec.run(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv child %s %d: %v\n", spec.Role, spec.ID, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// childSpec is what a child runs.
type childSpec struct {
	Role string // "node" or "gateway"
	ID   int32
	NATS string
	// A node's: its disk, Raft address and the cluster's size; the tier
	// directory every node shares; how often it maintains its logs.
	DataDir, RaftAddr string
	N                 int
	TierDir           string
	// TierURL, when set, is the object store in place of TierDir (an
	// s3:// URL with its keys in it).
	TierURL  string
	Maintain time.Duration
	// Ctl is the directory of fault switches (files) a node watches.
	Ctl string
	// A gateway's Kafka address; a gateway given TierDir reads the tier
	// itself (its cache under DataDir).
	Addr string
	// NoStream: a node offers no stream, only NATS.
	NoStream bool
	// TierQuota: a tier gateway's remote fetch quota, bytes per second.
	TierQuota int64
	// An "eos" child's pipeline (EOSChecker): the gateways, its topics,
	// group and transactional id.
	Seeds               []string
	In, Out, Group, Txn string
}

// ChildLogLevelEnv set to "debug" has the children log at debug level
// (high watermark moves, replicated ranges): for replaying a fault run.
const ChildLogLevelEnv = "STRATA_TEST_LOG_LEVEL"

// run runs the child until SIGTERM, then stops it cleanly.
func (s childSpec) run() error {
	level := slog.LevelInfo
	if os.Getenv(ChildLogLevelEnv) == "debug" {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	if s.Role == "eos" {
		return runPipelineChild(s, stop, logger)
	}
	defer profileWindows(s)()
	// A child started while its proxy is cut or NATS restarts waits for
	// it, as strata node and strata gateway do.
	nc, err := rpc.Connect(context.Background(), s.NATS, time.Minute, logger, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		return err
	}
	defer nc.Close()
	var store *FaultStore
	switch {
	case s.TierURL != "":
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		st, err := tier.Open(ctx, s.TierURL, tier.Credentials{})
		cancel()
		if err != nil {
			return err
		}
		store = &FaultStore{Store: st}
	case s.TierDir != "":
		dir, err := tier.OpenDir(s.TierDir)
		if err != nil {
			return err
		}
		store = &FaultStore{Store: dir}
	}
	if s.Role == "gateway" {
		cfg := gateway.Config{Cluster: "test", Conn: nc, ID: s.ID, Addr: s.Addr, Logger: logger}
		if store != nil { // this gateway reads the tier itself
			go (&switches{dir: s.Ctl, id: -1, store: store}).watch()
			cfg.Tier, cfg.TierCacheDir = store, s.DataDir
			cfg.TierFetchMaxBytesPerSecond = s.TierQuota
		}
		g, err := gateway.Start(cfg)
		if err != nil {
			return err
		}
		logger.Info("testenv gateway ready", "addr", g.Addr())
		<-stop
		return g.Close()
	}
	sw := &switches{dir: s.Ctl, id: s.ID, store: store}
	go sw.watch()
	cfg := testNodeConfig(s.ID, s.N, s.DataDir, s.RaftAddr, s.Maintain, logger)
	cfg.Conn, cfg.Tier, cfg.DiskUsage = nc, store, sw.diskUsage
	if !s.NoStream {
		cfg.StreamAddr = "127.0.0.1:0" // gateways send Kafka requests directly, as strata node's default
	}
	p, err := node.StartProcess(cfg)
	if err != nil {
		return err
	}
	logger.Info("testenv node ready", "id", s.ID)
	<-stop
	return p.Close()
}

// switches are the fault switches a child watches: files in the Procs'
// control directory, which the test writes (a gateway, id -1, watches
// only the store's).
type switches struct {
	dir   string
	id    int32
	store *FaultStore
	mu    sync.Mutex
	full  bool
}

// watch polls the switch files every 20 ms.
func (w *switches) watch() {
	for {
		mode := int32(StoreUp)
		if b, err := os.ReadFile(filepath.Join(w.dir, "store")); err == nil {
			fmt.Sscan(string(b), &mode)
		}
		w.store.Set(mode)
		_, err := os.Stat(filepath.Join(w.dir, fmt.Sprintf("diskfull-%d", w.id)))
		w.mu.Lock()
		w.full = err == nil
		w.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
}

// diskUsage is what the node believes of its disk: 99% used while its
// disk-full switch is on, else 10%.
func (w *switches) diskUsage() (used, total uint64, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.full {
		return 99, 100, nil
	}
	return 10, 100, nil
}

// Procs is a Strata cluster whose nodes and gateways are child processes
// of the test binary (see RunChild), so that faults are the real ones: a
// node or gateway killed with SIGKILL mid-write, a node frozen with
// SIGSTOP. NATS runs in the test process, reached by each node through a
// proxy that can cut it; the nodes share a tier directory, and each has
// switches for its disk and the store. Each child's stderr is kept in a
// log file, which the cluster reads for panics and data races.
type Procs struct {
	t        testing.TB
	bin      string
	dir      string // logs/ and ctl/ live here
	ctl      string
	Tier     string // the nodes' shared tier directory
	nats     *embeddedNATS
	conn     *nats.Conn
	Meta     *meta.Client
	proxies  map[int32]*proxy
	nodes    map[int32]*proc
	gateways []*proc
}

// proc is one child, started again after each kill.
type proc struct {
	name   string
	spec   childSpec
	log    string
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has exited
	err    error         // cmd's exit, once done
	killed bool          // by Kill: a non-zero exit is expected
	paused bool
}

// ProcsOptions adjust a process cluster.
type ProcsOptions struct {
	// Gateways is how many gateways run (default 1).
	Gateways int
	// MaintainInterval: as Options.MaintainInterval (default 100 ms).
	MaintainInterval time.Duration
	// LogDir keeps the children's logs (default: a temporary directory).
	LogDir string
	// TierGateways is how many of the gateways (the first ones) read the
	// tier themselves; the others leave it to the nodes.
	TierGateways int
	// Direct connects nodes to NATS without a proxy (for benchmarks: the
	// extra hop costs throughput), so Disconnect and Stall cannot cut
	// them.
	Direct bool
	// NoStreams: nodes take Kafka requests over NATS only, as with
	// strata node --stream-addr none.
	NoStreams bool
	// TierURL, when set, is the nodes' (and tier gateways') object store
	// in place of the shared directory: an s3:// URL with its keys
	// (MinIO.URLWithKeys).
	TierURL string
}

// Processes starts NATS, n nodes and the gateways as child processes and
// stops them when the test ends, failing the test if any child panicked,
// raced or did not stop cleanly. The calling package's TestMain must call
// RunChild.
func Processes(t testing.TB, n int, opts ProcsOptions) *Procs {
	t.Helper()
	if opts.Gateways <= 0 {
		opts.Gateways = 1
	}
	if opts.MaintainInterval <= 0 {
		opts.MaintainInterval = 100 * time.Millisecond
	}
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ns := startNATS(t, 8<<20)
	dir := t.TempDir()
	if opts.LogDir != "" {
		dir = opts.LogDir
	}
	// Directories first: cleanups run last-registered first, so the
	// children must be stopped (c.close) before their directories go.
	dataDirs, gatewayDirs := make([]string, n), make([]string, opts.Gateways)
	for i := range dataDirs {
		dataDirs[i] = t.TempDir()
	}
	for i := range gatewayDirs {
		gatewayDirs[i] = t.TempDir()
	}
	c := &Procs{t: t, bin: bin, dir: dir, ctl: filepath.Join(dir, "ctl"), Tier: t.TempDir(), nats: ns,
		proxies: map[int32]*proxy{}, nodes: map[int32]*proc{}}
	for _, d := range []string{c.ctl, filepath.Join(dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(c.close)
	if c.conn, err = nats.Connect(ns.clientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	c.Meta = meta.NewClient(c.conn, "test")
	for id := int32(1); id <= int32(n); id++ {
		natsURL := ns.clientURL()
		if !opts.Direct {
			px := startProxy(t, ns.server().Addr().String())
			c.proxies[id] = px
			natsURL = "nats://" + px.addr()
		}
		c.nodes[id] = &proc{name: fmt.Sprintf("node %d", id), log: filepath.Join(dir, "logs", fmt.Sprintf("node-%d.log", id)),
			spec: childSpec{Role: "node", ID: id, NATS: natsURL, DataDir: dataDirs[id-1], RaftAddr: freePort(t),
				N: n, TierDir: c.Tier, TierURL: opts.TierURL, Maintain: opts.MaintainInterval, Ctl: c.ctl, NoStream: opts.NoStreams}}
		c.start(c.nodes[id])
	}
	for i := range opts.Gateways {
		g := &proc{name: fmt.Sprintf("gateway %d", i), log: filepath.Join(dir, "logs", fmt.Sprintf("gateway-%d.log", i)),
			spec: childSpec{Role: "gateway", ID: int32(i), NATS: ns.clientURL(), Addr: freePort(t), Ctl: c.ctl}}
		if i < opts.TierGateways {
			g.spec.TierDir, g.spec.TierURL, g.spec.DataDir = c.Tier, opts.TierURL, gatewayDirs[i]
		}
		c.gateways = append(c.gateways, g)
		c.start(g)
	}
	c.waitReady(n)
	return c
}

// start runs p's child, its stderr appended to its log.
func (c *Procs) start(p *proc) {
	c.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	spec, _ := json.Marshal(p.spec)
	cmd := exec.Command(c.bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	cmd.Stdout, cmd.Stderr = f, f
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		f.Close()
		c.t.Fatal(err)
	}
	p.cmd, p.done, p.err, p.killed, p.paused = cmd, make(chan struct{}), nil, false, false
	done := p.done
	go func() {
		err := cmd.Wait()
		f.Close()
		p.err = err
		close(done)
	}()
}

// waitReady waits for a controller with n nodes registered and for every
// gateway's Kafka port.
func (c *Procs) waitReady(n int) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := c.Meta.Read(ctx, meta.ReadRequest{Kind: "nodes"})
		cancel()
		if err == nil && len(r.Nodes) == n {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("cluster of %d nodes not ready within 60s (%v): %s", n, err, c.tails())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, g := range c.gateways {
		c.waitListening(g)
	}
}

// waitListening waits until gateway g accepts connections.
func (c *Procs) waitListening(g *proc) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", g.spec.Addr, time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s not listening within 30s: %v: %s", g.name, err, c.tails())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Addrs are the gateways' Kafka addresses (stable across restarts).
func (c *Procs) Addrs() []string {
	var out []string
	for _, g := range c.gateways {
		out = append(out, g.spec.Addr)
	}
	return out
}

// WaitHeartbeats waits until each of the n nodes has published a
// heartbeat that satisfies ok, and then for one more heartbeat of each,
// so the gateways, which hear the same messages, have taken them too.
func (c *Procs) WaitHeartbeats(n int, ok func(meta.Heartbeat) bool) {
	c.t.Helper()
	seen := make(chan int32, 64)
	sub, err := c.conn.Subscribe(meta.HeartbeatSubject("test"), func(m *nats.Msg) {
		var hb meta.Heartbeat
		if json.Unmarshal(m.Data, &hb) == nil && ok(hb) {
			select {
			case seen <- hb.ID:
			default:
			}
		}
	})
	if err != nil {
		c.t.Fatal(err)
	}
	defer sub.Unsubscribe()
	count := map[int32]int{}
	deadline := time.After(30 * time.Second)
	for done := 0; done < n; {
		select {
		case id := <-seen:
			if count[id]++; count[id] == 2 {
				done++
			}
		case <-deadline:
			c.t.Fatalf("nodes' heartbeats seen: %v", count)
		}
	}
}

// Kill sends node id SIGKILL, as a crash would, and waits for it to exit.
func (c *Procs) Kill(id int32) { c.kill(c.nodes[id]) }

// Start runs node id again with its disk, after Kill.
func (c *Procs) Start(id int32) { c.start(c.nodes[id]) }

// KillGateway sends gateway i SIGKILL; StartGateway runs it again on its
// address.
func (c *Procs) KillGateway(i int) { c.kill(c.gateways[i]) }

// SetTierQuota sets the remote fetch quota (bytes per second, 0: none)
// gateway i has from its next start.
func (c *Procs) SetTierQuota(i int, bytesPerSecond int64) {
	c.gateways[i].spec.TierQuota = bytesPerSecond
}
func (c *Procs) StartGateway(i int) {
	c.start(c.gateways[i])
	c.waitListening(c.gateways[i])
}

// NodePID and GatewayPID are a child's process id while it runs.
func (c *Procs) NodePID(id int32) int { return c.nodes[id].pid() }
func (c *Procs) GatewayPID(i int) int { return c.gateways[i].pid() }

func (p *proc) pid() int {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (c *Procs) kill(p *proc) {
	p.killed = true
	p.cmd.Process.Kill()
	<-p.done
}

// DumpStacks has every running child print all its goroutines' stacks
// to its log and exit (SIGQUIT, the Go runtime's dump): for a run that
// stalled, where they wait tells why.
func (c *Procs) DumpStacks() {
	running := c.signalRunning(syscall.SIGQUIT)
	for _, p := range running {
		p.killed = true // its exit status is the dump's, not a failure
	}
	for _, p := range running {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
	}
	c.t.Logf("every child dumped its goroutines into its log (%s)", filepath.Join(c.dir, "logs"))
}

// signalRunning sends sig to every child still running (thawing a
// paused one first) and returns them.
func (c *Procs) signalRunning(sig syscall.Signal) []*proc {
	var running []*proc
	for _, p := range c.all() {
		if p == nil || p.cmd == nil || p.cmd.Process == nil {
			continue
		}
		select {
		case <-p.done:
			continue
		default:
		}
		if p.paused {
			p.cmd.Process.Signal(syscall.SIGCONT)
		}
		p.cmd.Process.Signal(sig)
		running = append(running, p)
	}
	return running
}

// Pause freezes node id with SIGSTOP; Resume thaws it with SIGCONT.
func (c *Procs) Pause(id int32) {
	c.nodes[id].paused = true
	c.nodes[id].cmd.Process.Signal(syscall.SIGSTOP)
}
func (c *Procs) Resume(id int32) {
	c.nodes[id].cmd.Process.Signal(syscall.SIGCONT)
	c.nodes[id].paused = false
}

// Disconnect cuts node id off NATS (its Raft connections stay) until
// Reconnect.
func (c *Procs) Disconnect(id int32) { c.proxies[id].block() }
func (c *Procs) Reconnect(id int32)  { c.proxies[id].unblock() }

// Stall holds back everything NATS sends node id (its own sends still
// go) until Unstall: a one-way partition.
func (c *Procs) Stall(id int32)   { c.proxies[id].stall(true) }
func (c *Procs) Unstall(id int32) { c.proxies[id].stall(false) }

// SetStore puts every node's object store in mode (StoreUp, StoreDown
// or Store503).
func (c *Procs) SetStore(mode int32) { c.setSwitch("store", fmt.Sprint(mode), mode != StoreUp) }

// DiskFull makes node id see its disk 99% used (past the high-water
// mark: it refuses produce with a retriable error), or 10% again.
func (c *Procs) DiskFull(id int32, on bool) { c.setSwitch(fmt.Sprintf("diskfull-%d", id), "", on) }

// setSwitch writes (on) or removes (off) a switch file, then waits for
// the children's next poll.
func (c *Procs) setSwitch(name, content string, on bool) {
	c.t.Helper()
	path := filepath.Join(c.ctl, name)
	var err error
	if on {
		err = os.WriteFile(path, []byte(content), 0o644)
	} else if err = os.Remove(path); os.IsNotExist(err) {
		err = nil
	}
	if err != nil {
		c.t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
}

// RestartNATS shuts the NATS server down, waits down, and starts it again
// on the same address; every child reconnects by itself.
func (c *Procs) RestartNATS(down time.Duration) { c.nats.restart(c.t, down) }

// Controller is the id of the node that leads the metadata group, asked
// until one answers (a fault may leave none for a while) or 30 s pass.
func (c *Procs) Controller(ctx context.Context) (int32, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		r, err := c.Meta.Read(rctx, meta.ReadRequest{Kind: "cluster"})
		rcancel()
		if err == nil && r.Controller > 0 {
			return r.Controller, nil
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("no controller answered within 30s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Problems are the lines of the children's logs that show a panic, a
// fatal runtime error or a data race, each with the log it is in.
func (c *Procs) Problems() []string {
	var out []string
	for _, p := range c.all() {
		out = append(out, logProblems(p.name, p.log)...)
	}
	return out
}

// logProblems are the lines of the log at path that show a panic, a
// fatal runtime error or a data race.
func logProblems(name, path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") || strings.Contains(l, "WARNING: DATA RACE") {
			out = append(out, fmt.Sprintf("%s (%s): %s", name, path, l))
		}
	}
	return out
}

func (c *Procs) all() []*proc {
	out := append([]*proc(nil), c.gateways...)
	for id := int32(1); int(id) <= len(c.nodes); id++ {
		out = append(out, c.nodes[id])
	}
	return out
}

// tails is the last lines of every child's log, for a failure message.
func (c *Procs) tails() string {
	var b strings.Builder
	for _, p := range c.all() {
		data, _ := os.ReadFile(p.log)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		fmt.Fprintf(&b, "\n--- %s (%s):\n%s", p.name, p.log, strings.Join(lines[max(0, len(lines)-15):], "\n"))
	}
	return b.String()
}

// close stops every child with SIGTERM (thawing a paused one first) and
// fails the test if one did not stop cleanly within 20 s, or if any log
// shows a panic or a race.
func (c *Procs) close() {
	c.signalRunning(syscall.SIGTERM)
	for _, p := range c.all() {
		if p == nil || p.cmd == nil {
			continue
		}
		select {
		case <-p.done:
			if p.err != nil && !p.killed {
				c.t.Errorf("%s exited: %v", p.name, p.err)
			}
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
			c.t.Errorf("%s did not stop within 20s of SIGTERM", p.name)
		}
	}
	for _, l := range c.Problems() {
		c.t.Errorf("child log: %s", l)
	}
	if c.t.Failed() {
		c.t.Logf("children's logs end:%s", c.tails())
	}
	if c.conn != nil {
		c.conn.Close()
	}
	for _, px := range c.proxies {
		px.close()
	}
	c.nats.shutdown()
}
