package meta

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/strata-io/strata/internal/rpc"
)

// Subjects, relative to strata.<cluster>.
func subject(cluster, rest string) string { return "strata." + cluster + "." + rest }

const (
	subjHeartbeat = "node.heartbeat"
	subjApply     = "meta.apply"
	subjRead      = "meta.read"
	subjEvents    = "meta.events"
	queueMeta     = "meta"
)

// Heartbeat is what a node publishes on strata.<cluster>.node.heartbeat.
type Heartbeat struct {
	ID       int32  `json:"id"`
	RaftAddr string `json:"raft_addr"`
	Rack     string `json:"rack,omitempty"`
	Version  string `json:"version,omitempty"`
	// Member is set once the node belongs to a Raft group.
	Member bool `json:"member"`
	// Leader is the controller the node knows, or -1.
	Leader  int32  `json:"leader"`
	Applied uint64 `json:"applied"`
	// TopicDefaults are the topic configs this node's flags set, by topic
	// config name (retention.ms, ...): what a topic without its own value
	// gets on this node, as DescribeConfigs reports it.
	TopicDefaults map[string]string `json:"topic_defaults,omitempty"`
	// Deaf says the node has not heard its own heartbeats come back: it
	// sends on NATS but receives nothing (a one-way partition, a stalled
	// connection). Such a heartbeat does not count as the node being
	// alive: it could lead no partition, answer no request.
	Deaf bool `json:"deaf,omitempty"`
}

// HeartbeatSubject is where nodes publish their Heartbeat.
func HeartbeatSubject(cluster string) string { return subject(cluster, subjHeartbeat) }

// MemberConfig configures a metadata member on NATS.
type MemberConfig struct {
	ServerConfig
	Cluster string
	Conn    *nats.Conn
	Rack    string
	Version string
	// TopicDefaults go out in heartbeats (see Heartbeat).
	TopicDefaults map[string]string
	// BootstrapExpect is how many voters the group has: the first nodes
	// seen, by lowest id; later nodes join as non-voters.
	BootstrapExpect int
	// HeartbeatInterval is how often a node says it is alive
	// (broker.heartbeat.interval.ms, default 2s); SessionTimeout how long
	// without a heartbeat before the controller moves its partitions'
	// leadership (broker.session.timeout.ms, default 9s).
	HeartbeatInterval time.Duration
	SessionTimeout    time.Duration
	// OffsetBatchWindow is how long the controller gathers offset commits
	// into one proposal (default 2ms); OffsetBatchMax caps a batch
	// (default 4096 offsets).
	OffsetBatchWindow time.Duration
	OffsetBatchMax    int
}

// Member is a node's part in the metadata group: a Server, its
// heartbeats, and, while it leads, the controller. It answers proposals,
// consistent reads and publishes change events on NATS.
type Member struct {
	cfg       MemberConfig
	server    *Server
	nc        *nats.Conn
	logger    *slog.Logger
	subs      []*nats.Subscription
	offsets   *offsetBatcher
	closeOnce sync.Once
	closeErr  error
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	// handlers answers apply and read requests side by side, so proposals
	// wait for Raft together (and share batches).
	handlers *rpc.Pool

	// controlMu serializes controller passes with operator actions.
	controlMu sync.Mutex

	// ready is set once this leader has committed an entry of its own
	// term: only then is its commit index current for consistent reads.
	ready atomic.Bool

	// echo tracks this node's own heartbeats coming back (Heartbeat.Deaf).
	echo rpc.Echo

	mu struct {
		sync.Mutex
		seen        map[int32]seenNode
		leaderSince time.Time // zero when not leading
		// deafSince is when the controller stopped hearing a majority.
		deafSince  time.Time
		settledAt  time.Time // when the bootstrap candidate set last changed
		candidates []int32
		// removed holds nodes an operator removed, with when: their
		// heartbeats are ignored for a session timeout, so one in flight
		// does not bring them back. A node heard after that returns.
		removed map[int32]time.Time
	}
}

type seenNode struct {
	hb Heartbeat
	at time.Time
}

// OpenMember starts a member: opens its Server, subscribes, and starts the
// heartbeat and controller loops.
func OpenMember(cfg MemberConfig) (*Member, error) {
	if cfg.Conn == nil || cfg.Cluster == "" {
		return nil, errors.New("meta: member needs a NATS connection and a cluster name")
	}
	if cfg.BootstrapExpect < 1 {
		cfg.BootstrapExpect = 1
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 2 * time.Second
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 9 * time.Second
	}
	if cfg.OffsetBatchWindow <= 0 {
		cfg.OffsetBatchWindow = 2 * time.Millisecond
	}
	if cfg.OffsetBatchMax <= 0 {
		cfg.OffsetBatchMax = 4096
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Member{cfg: cfg, nc: cfg.Conn, logger: cfg.Logger.With("node", cfg.NodeID), handlers: rpc.NewPool(maxConcurrentRequests)}
	m.mu.seen = map[int32]seenNode{}
	m.mu.removed = map[int32]time.Time{}
	userOnApply := cfg.OnApply
	cfg.ServerConfig.OnApply = func(version uint64, cmds []Command) {
		m.publishEvents(version, cmds)
		if userOnApply != nil {
			userOnApply(version, cmds)
		}
	}
	var err error
	if m.server, err = OpenServer(cfg.ServerConfig); err != nil {
		return nil, err
	}
	m.offsets = newOffsetBatcher(m.server, cfg.OffsetBatchWindow, cfg.OffsetBatchMax)
	id := strconv.Itoa(int(cfg.NodeID))
	for _, s := range []struct {
		subj, queue string
		h           nats.MsgHandler
	}{
		{subject(cfg.Cluster, subjHeartbeat), "", m.onHeartbeat},
		{subject(cfg.Cluster, subjApply), queueMeta, m.handlers.Wrap(m.onApply)},
		// A command too big for one message comes to the controller's own
		// subject in chunks (Client.Propose).
		{subject(cfg.Cluster, subjApply+"."+id), "", rpc.Gather(m.logger, m.handlers.Wrap(m.onApply))},
		{subject(cfg.Cluster, subjRead), queueMeta, m.handlers.Wrap(m.onRead)},
		{subject(cfg.Cluster, subjRead+"."+id), "", m.handlers.Wrap(m.onRead)},
	} {
		sub, err := m.nc.QueueSubscribe(s.subj, s.queue, s.h)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("meta: subscribe %s: %w", s.subj, err)
		}
		m.subs = append(m.subs, sub)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.wg.Add(2)
	go m.heartbeatLoop(ctx)
	go m.controllerLoop(ctx)
	return m, nil
}

// maxConcurrentRequests bounds the apply and read requests a member
// answers at once; past it, NATS holds the rest (and its slow-consumer
// limit applies).
const maxConcurrentRequests = 4096

// Server is the member's Raft server.
func (m *Member) Server() *Server { return m.server }

// Close stops the loops, unsubscribes and closes the server. Safe to call
// more than once.
func (m *Member) Close() error {
	m.closeOnce.Do(func() { m.closeErr = m.close() })
	return m.closeErr
}

func (m *Member) close() error {
	if m.cancel != nil {
		m.cancel()
	}
	for _, s := range m.subs {
		s.Unsubscribe()
	}
	m.handlers.Close()
	m.wg.Wait()
	if m.offsets != nil {
		m.offsets.close()
	}
	return m.server.Close()
}

func (m *Member) heartbeat() Heartbeat {
	leader := int32(-1)
	if id, _, ok := m.server.Leader(); ok {
		leader = id
	}
	members, _ := m.server.Members()
	return Heartbeat{ID: m.cfg.NodeID, RaftAddr: m.server.Addr(), Rack: m.cfg.Rack, Version: m.cfg.Version,
		Member: len(members) > 0, Leader: leader, Applied: m.server.FSM().Applied(), TopicDefaults: m.cfg.TopicDefaults,
		Deaf: m.deaf(time.Now())}
}

// deaf reports whether this node's own heartbeats have stopped coming
// back for three intervals (at most half a session timeout).
func (m *Member) deaf(now time.Time) bool {
	return m.echo.Deaf(m.nc, now, min(3*m.cfg.HeartbeatInterval, m.cfg.SessionTimeout/2))
}

func (m *Member) heartbeatLoop(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.HeartbeatInterval)
	defer t.Stop()
	wasDeaf := false
	for {
		m.echo.Sent(time.Now())
		hb := m.heartbeat()
		if hb.Deaf != wasDeaf {
			if hb.Deaf {
				m.logger.Warn("this node's heartbeats no longer come back: it hears nothing on NATS, so it tells the controller not to count it alive")
			} else {
				m.logger.Info("this node hears NATS again")
			}
			wasDeaf = hb.Deaf
		}
		if b, err := json.Marshal(hb); err == nil {
			m.nc.Publish(subject(m.cfg.Cluster, subjHeartbeat), b)
		}
		if !hb.Member {
			m.maybeBootstrap()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Member) onHeartbeat(msg *nats.Msg) {
	var hb Heartbeat
	if err := json.Unmarshal(msg.Data, &hb); err != nil {
		m.logger.Warn("malformed heartbeat", "error", err)
		return
	}
	if hb.ID == m.cfg.NodeID {
		m.echo.Heard(time.Now())
	} else if hb.Deaf {
		return // it is there, but hears nothing: not alive
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if at, ok := m.mu.removed[hb.ID]; ok {
		if time.Since(at) < m.cfg.SessionTimeout {
			return
		}
		delete(m.mu.removed, hb.ID)
	}
	m.mu.seen[hb.ID] = seenNode{hb: hb, at: time.Now()}
}

// HearsHeartbeats reports whether this member heard a heartbeat (its own,
// echoed by NATS, included) within the session timeout: false means it
// is cut off NATS, and must not judge others by their silence.
func (m *Member) HearsHeartbeats() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.mu.seen {
		if time.Since(s.at) < m.cfg.SessionTimeout {
			return true
		}
	}
	return false
}

// maybeBootstrap starts the group once BootstrapExpect nodes with no group
// have been seen and the set has held still for two heartbeats. Only the
// lowest id bootstraps, with the lowest BootstrapExpect ids as voters; a
// node that sees any heartbeat from a group member waits to be added.
func (m *Member) maybeBootstrap() {
	m.mu.Lock()
	var ids []int32
	for id, s := range m.mu.seen {
		if s.hb.Member {
			m.mu.Unlock()
			return // a group exists: its leader adds us
		}
		if time.Since(s.at) < m.cfg.SessionTimeout {
			ids = append(ids, id)
		}
	}
	if !slices.Contains(ids, m.cfg.NodeID) {
		ids = append(ids, m.cfg.NodeID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, m.mu.candidates) {
		m.mu.candidates, m.mu.settledAt = ids, time.Now()
	}
	settled := time.Since(m.mu.settledAt) >= 2*m.cfg.HeartbeatInterval || m.cfg.BootstrapExpect == 1
	voters := map[int32]string{}
	if len(ids) >= m.cfg.BootstrapExpect {
		for _, id := range ids[:m.cfg.BootstrapExpect] {
			if id == m.cfg.NodeID {
				voters[id] = m.server.Addr()
			} else {
				voters[id] = m.mu.seen[id].hb.RaftAddr
			}
		}
	}
	m.mu.Unlock()
	if len(voters) < m.cfg.BootstrapExpect || ids[0] != m.cfg.NodeID || !settled {
		return
	}
	m.logger.Info("bootstrapping the metadata group", "voters", len(voters))
	if err := m.server.Bootstrap(voters); err != nil {
		m.logger.Warn("bootstrap", "error", err)
	}
}

// alive reports whether a node has been heard from within the session
// timeout. A new controller gives every member a full session timeout
// from when it took over before judging it.
func (m *Member) aliveFunc(now time.Time, members map[int32]MemberInfo) func(int32) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	grace := now.Sub(m.mu.leaderSince) < m.cfg.SessionTimeout
	live := map[int32]bool{m.cfg.NodeID: true}
	for id, s := range m.mu.seen {
		if now.Sub(s.at) < m.cfg.SessionTimeout {
			live[id] = true
		}
	}
	if grace {
		for id := range members {
			live[id] = true
		}
	}
	return func(id int32) bool { return live[id] }
}

func (m *Member) controllerLoop(ctx context.Context) {
	defer m.wg.Done()
	tick := max(m.cfg.HeartbeatInterval/4, 20*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !m.server.IsLeader() {
			if m.ready.Swap(false) {
				m.logger.Info("no longer the controller")
			}
			m.mu.Lock()
			m.mu.leaderSince = time.Time{}
			m.mu.Unlock()
			continue
		}
		if !m.ready.Load() {
			// Commit an entry of this term so the commit index, and so
			// consistent reads, are current.
			if err := m.server.Raft().Barrier(5 * time.Second).Error(); err != nil {
				continue
			}
			m.mu.Lock()
			m.mu.leaderSince = time.Now()
			m.mu.Unlock()
			m.ready.Store(true)
			m.logger.Info("became the controller", "version", m.server.FSM().Applied())
		}
		m.controlMu.Lock()
		err := m.control(ctx)
		m.controlMu.Unlock()
		if err != nil && ctx.Err() == nil {
			m.logger.Warn("controller pass", "error", err)
		}
	}
}

// control is one controller pass: add members, register nodes, elect.
func (m *Member) control(ctx context.Context) error {
	now := time.Now()
	members, err := m.server.Members()
	if err != nil {
		return err
	}
	voters := 0
	for _, mi := range members {
		if mi.Voter {
			voters++
		}
	}
	m.mu.Lock()
	var heard []Heartbeat
	for _, s := range m.mu.seen {
		if now.Sub(s.at) < m.cfg.SessionTimeout {
			heard = append(heard, s.hb)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(heard, func(a, b Heartbeat) int { return int(a.ID - b.ID) })
	for _, hb := range heard {
		mi, ok := members[hb.ID]
		switch {
		case hb.RaftAddr == "":
		case !ok:
			voter := voters < m.cfg.BootstrapExpect
			m.logger.Info("adding node to the metadata group", "id", hb.ID, "voter", voter)
			if err := m.server.AddMember(hb.ID, hb.RaftAddr, voter); err != nil {
				return err
			}
			members[hb.ID] = MemberInfo{Voter: voter, Addr: hb.RaftAddr}
			if voter {
				voters++
			}
		case mi.Addr != hb.RaftAddr:
			// A node restarted on a new address: Raft must reach it there.
			m.logger.Info("metadata member moved", "id", hb.ID, "from", mi.Addr, "to", hb.RaftAddr)
			if err := m.server.AddMember(hb.ID, hb.RaftAddr, mi.Voter); err != nil {
				return err
			}
			members[hb.ID] = MemberInfo{Voter: mi.Voter, Addr: hb.RaftAddr}
		}
	}
	v := m.server.FSM().View()
	nodes, err := v.Nodes()
	if err != nil {
		v.Close()
		return err
	}
	topics, err := v.Topics()
	if err != nil {
		v.Close()
		return err
	}
	parts, err := v.AllPartitions()
	var moves []Reassignment
	if err == nil {
		moves, err = v.Reassignments()
	}
	v.Close()
	if err != nil {
		return err
	}
	known := map[int32]Node{}
	for _, n := range nodes {
		known[n.ID] = n
	}
	self := m.heartbeat()
	for _, hb := range append(heard, self) {
		want := Node{ID: hb.ID, RaftAddr: hb.RaftAddr, Rack: hb.Rack}
		if known[hb.ID] != want {
			if _, err := m.server.Propose(ctx, &RegisterNode{Node: want}); err != nil {
				return err
			}
			known[hb.ID] = want
		}
	}
	unclean := map[string]bool{}
	for _, t := range topics {
		unclean[t.Name] = t.Configs["unclean.leader.election.enable"] == "true"
	}
	alive := m.aliveFunc(now, members)
	if !m.hearsMajority(now, members, alive) {
		return nil
	}
	for _, p := range parts {
		change, ok := ElectLeader(p, alive, unclean[p.Topic])
		if !ok {
			continue
		}
		res, err := m.server.Propose(ctx, &change)
		if err != nil {
			return err
		}
		if res.Err != nil {
			m.logger.Warn("election rejected", "topic", p.Topic, "partition", p.Partition, "error", res.Err)
			continue
		}
		m.logger.Info("partition leadership changed", "topic", p.Topic, "partition", p.Partition,
			"leader", res.Partition.Leader, "leader_epoch", res.Partition.LeaderEpoch, "isr", res.Partition.ISR)
	}
	return m.completeMoves(ctx, parts, moves)
}

// completeMoves ends each reassignment whose target replicas have all
// caught up (joined the ISR).
func (m *Member) completeMoves(ctx context.Context, parts []Partition, moves []Reassignment) error {
	for _, r := range moves {
		i := slices.IndexFunc(parts, func(p Partition) bool { return p.Topic == r.Topic && p.Partition == r.Partition })
		if i < 0 || !subset(r.Target, parts[i].ISR) {
			continue
		}
		res, err := m.server.Propose(ctx, &CompleteReassignment{Topic: r.Topic, Partition: r.Partition, PartitionEpoch: parts[i].PartitionEpoch})
		if err != nil {
			return err
		}
		if res.Err != nil {
			m.logger.Debug("reassignment not completed yet", "topic", r.Topic, "partition", r.Partition, "error", res.Err)
			continue
		}
		m.logger.Info("partition moved", "topic", r.Topic, "partition", r.Partition, "from", r.Original, "to", r.Target,
			"leader", res.Partition.Leader)
	}
	return nil
}

// hearsMajority reports whether the controller hears heartbeats from a
// majority of the group's members. One that does not is most likely cut
// off NATS itself (Raft, on its own connections, still elects it): it
// must not move every partition onto itself. It changes nothing, and
// after a session timeout of this hands the controller role to another
// voter, which hears the others.
func (m *Member) hearsMajority(now time.Time, members map[int32]MemberInfo, alive func(int32) bool) bool {
	heard := 0
	for id := range members {
		if alive(id) {
			heard++
		}
	}
	m.mu.Lock()
	handOver := false
	switch {
	case 2*heard > len(members):
		m.mu.deafSince = time.Time{}
		m.mu.Unlock()
		return true
	case m.mu.deafSince.IsZero():
		m.mu.deafSince = now
		m.logger.Warn("the controller hears heartbeats from too few members to judge them; changing nothing",
			"heard", heard, "members", len(members))
	case now.Sub(m.mu.deafSince) > m.cfg.SessionTimeout:
		m.mu.deafSince = now
		handOver = true
	}
	m.mu.Unlock()
	if handOver {
		m.logger.Warn("handing the controller role to another member: this one is cut off from the others' heartbeats")
		if err := m.server.Raft().LeadershipTransfer().Error(); err != nil {
			m.logger.Warn("controller hand-over", "error", err)
		}
	}
	return false
}

// LiveNodes returns the nodes heard from within the session timeout, with
// their racks, for assignment.
func (m *Member) LiveNodes() []Node {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []Node{{ID: m.cfg.NodeID, RaftAddr: m.server.Addr(), Rack: m.cfg.Rack}}
	for id, s := range m.mu.seen {
		if id != m.cfg.NodeID && now.Sub(s.at) < m.cfg.SessionTimeout {
			out = append(out, Node{ID: id, RaftAddr: s.hb.RaftAddr, Rack: s.hb.Rack})
		}
	}
	slices.SortFunc(out, func(a, b Node) int { return int(a.ID - b.ID) })
	return out
}

// RemoveNode takes a node out of the group and the state, as an operator
// does for a node that will not come back. Leader only.
func (m *Member) RemoveNode(ctx context.Context, id int32) error {
	m.controlMu.Lock()
	defer m.controlMu.Unlock()
	m.mu.Lock()
	m.mu.removed[id] = time.Now()
	delete(m.mu.seen, id)
	m.mu.Unlock()
	if err := m.server.RemoveMember(id); err != nil {
		return err
	}
	res, err := m.server.Propose(ctx, &RemoveNode{ID: id})
	if err != nil {
		return err
	}
	return res.Err
}

// Propose applies a command: on this member if it leads, else through the
// leader over NATS, as a Client would. Offset commits go through the
// batcher. A CreateTopic or CreatePartitions without an
// assignment gets one here, from the live nodes: only the controller knows
// which nodes are alive.
func (m *Member) Propose(ctx context.Context, cmd Command) (*ApplyResult, error) {
	if c, ok := cmd.(*CommitOffsets); ok {
		return &ApplyResult{}, m.offsets.commit(ctx, c.Offsets)
	}
	if !m.server.IsLeader() {
		c := NewClient(m.nc, m.cfg.Cluster)
		if id, _, ok := m.server.Leader(); ok {
			c.Hint(id)
		}
		return c.Propose(ctx, cmd)
	}
	return m.proposeHere(ctx, cmd)
}

// proposeHere applies a command on this member, which must lead
// (ErrNotLeader otherwise): it never forwards, so a request forwarded
// here during a leader change cannot bounce back.
func (m *Member) proposeHere(ctx context.Context, cmd Command) (*ApplyResult, error) {
	switch c := cmd.(type) {
	case *CommitOffsets:
		return &ApplyResult{}, m.offsets.commit(ctx, c.Offsets)
	case *CreateTopic:
		if len(c.Assignment) == 0 {
			a, err := AssignReplicas(c.Topic.Name, m.LiveNodes(), 0, int(c.Topic.Partitions), int(c.Topic.ReplicationFactor), nil)
			if err != nil {
				return &ApplyResult{Err: err}, nil
			}
			filled := *c
			filled.Assignment = a
			if filled.Topic.ID == ([16]byte{}) {
				if _, err := rand.Read(filled.Topic.ID[:]); err != nil {
					return nil, err
				}
			}
			cmd = &filled
		}
	case *CreatePartitions:
		if len(c.Assignment) == 0 {
			filled, err := m.assignNewPartitions(c)
			if err != nil {
				return &ApplyResult{Err: err}, nil
			}
			cmd = filled
		}
	}
	return m.server.Propose(ctx, cmd)
}

// assignNewPartitions places the partitions a CreatePartitions adds, given
// only the new total, keeping the topic's balance.
func (m *Member) assignNewPartitions(c *CreatePartitions) (*CreatePartitions, error) {
	v := m.server.FSM().View()
	defer v.Close()
	t, ok, err := v.Topic(c.Topic)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, c.Topic)
	}
	if c.Total <= t.Partitions {
		return nil, fmt.Errorf("%w: topic %q has %d partitions; the new count %d must be larger", ErrInvalidRequest, c.Topic, t.Partitions, c.Total)
	}
	parts, err := v.Partitions(c.Topic)
	if err != nil {
		return nil, err
	}
	existing := make([][]int32, len(parts))
	for i, p := range parts {
		existing[i] = p.Replicas
	}
	a, err := AssignReplicas(c.Topic, m.LiveNodes(), int(t.Partitions), int(c.Total-t.Partitions), int(t.ReplicationFactor), existing)
	if err != nil {
		return nil, err
	}
	return &CreatePartitions{Topic: c.Topic, Total: c.Total, Assignment: a}, nil
}

// ConsistentView is a linearizable read on the controller.
func (m *Member) ConsistentView(ctx context.Context) (*View, error) {
	if !m.ready.Load() {
		return nil, m.notLeader()
	}
	return m.server.ConsistentView(ctx)
}

func (m *Member) notLeader() error {
	if id, _, ok := m.server.Leader(); ok && id != m.cfg.NodeID {
		return fmt.Errorf("%w: leader is node %d", ErrNotLeader, id)
	}
	return fmt.Errorf("%w: no leader elected", ErrNotLeader)
}

// forward sends a request to the leader's own subject when this member
// does not lead, and relays the answer. It reports false when it did not
// forward (this member leads, or was forwarded to already).
func (m *Member) forward(msg *nats.Msg, subj string) bool {
	if m.server.IsLeader() || msg.Header.Get("Strata-Forwarded") != "" {
		return false
	}
	id, _, ok := m.server.Leader()
	if !ok {
		m.reply(msg, applyReply{Error: "no controller elected", Code: errCode(ErrNotLeader)})
		return true
	}
	if !rpc.Fits(m.nc, len(msg.Data)) {
		// Sent in chunks to a controller that has since lost the lead:
		// the client finds the new one and sends it again.
		m.reply(msg, applyReply{Error: fmt.Sprintf("leader is node %d", id), Code: errCode(ErrNotLeader)})
		return true
	}
	fwd := nats.NewMsg(subject(m.cfg.Cluster, subj+"."+strconv.Itoa(int(id))))
	fwd.Data = msg.Data
	fwd.Header.Set("Strata-Forwarded", strconv.Itoa(int(m.cfg.NodeID)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	caller, err := callerFor(m.nc)
	var resp *nats.Msg
	if err == nil {
		resp, err = caller.Request(ctx, fwd)
	}
	if err != nil {
		m.reply(msg, applyReply{Error: err.Error(), Code: errCode(ErrNotLeader)})
		return true
	}
	m.respond(msg, resp.Data)
	return true
}

func (m *Member) reply(msg *nats.Msg, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		m.logger.Error("encode reply", "error", err)
		return
	}
	m.respond(msg, b)
}

// respond answers msg with b, in chunks when b is over the max payload.
func (m *Member) respond(msg *nats.Msg, b []byte) {
	r := nats.NewMsg(msg.Reply)
	r.Data = b
	if err := rpc.Respond(m.nc, msg, r); err != nil {
		m.logger.Warn("meta reply failed", "subject", msg.Subject, "bytes", len(b), "error", err)
	}
}

// applyReply is the answer on meta.apply.
type applyReply struct {
	Error     string     `json:"error,omitempty"`
	Code      string     `json:"code,omitempty"`
	Partition *Partition `json:"partition,omitempty"`
	Value     int64      `json:"value,omitempty"`
}

func (m *Member) onApply(msg *nats.Msg) {
	if m.forward(msg, subjApply) {
		return
	}
	cmd, err := DecodeCommand(msg.Data)
	if err != nil {
		m.reply(msg, applyReply{Error: err.Error(), Code: errCode(err)})
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := m.proposeHere(ctx, cmd)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		m.reply(msg, applyReply{Error: err.Error(), Code: errCode(err)})
		return
	}
	r := applyReply{Value: res.Value}
	if res.Partition.Topic != "" {
		r.Partition = &res.Partition
	}
	m.reply(msg, r)
}

// ReadRequest asks meta.read for part of the state.
type ReadRequest struct {
	// Kind is one of "topics" (topics and their partitions; Topic narrows
	// to one), "nodes", "offsets" (Group's committed offsets), "tier"
	// (Topic and Partition's manifest) and "cluster" (nodes, which of
	// them the controller hears, the controller, every partition).
	Kind      string `json:"kind"`
	Topic     string `json:"topic,omitempty"`
	Partition int32  `json:"partition,omitempty"`
	Group     string `json:"group,omitempty"`
}

// ReadResponse is the answer: the state at Version.
type ReadResponse struct {
	Version    uint64        `json:"version"`
	Topics     []Topic       `json:"topics,omitempty"`
	Partitions []Partition   `json:"partitions,omitempty"`
	Nodes      []Node        `json:"nodes,omitempty"`
	Offsets    []Offset      `json:"offsets,omitempty"`
	Tier       []TierSegment `json:"tier,omitempty"`
	// Reassignments answers "reassignments": the moves in progress.
	Reassignments []Reassignment `json:"reassignments,omitempty"`
	// Controller is the id of the controller that answered; Live
	// answers "cluster": the nodes it heard from within the session
	// timeout.
	Controller int32   `json:"controller,omitempty"`
	Live       []int32 `json:"live,omitempty"`
	Error      string  `json:"error,omitempty"`
	Code       string  `json:"code,omitempty"`
}

func (m *Member) onRead(msg *nats.Msg) {
	if m.forward(msg, subjRead) {
		return
	}
	var req ReadRequest
	if err := json.Unmarshal(msg.Data, &req); err != nil {
		m.reply(msg, ReadResponse{Error: err.Error(), Code: errCode(ErrInvalidRequest)})
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := m.ConsistentView(ctx)
	if err != nil {
		m.reply(msg, ReadResponse{Error: err.Error(), Code: errCode(err)})
		return
	}
	defer v.Close()
	resp, err := answerRead(v, req)
	if err != nil {
		m.reply(msg, ReadResponse{Error: err.Error(), Code: errCode(err)})
		return
	}
	resp.Controller = m.cfg.NodeID // reads are answered by the leader
	if req.Kind == "cluster" {
		for _, n := range m.LiveNodes() {
			resp.Live = append(resp.Live, n.ID)
		}
	}
	m.reply(msg, resp)
}

// answerRead reads what req asks for from a view.
func answerRead(v *View, req ReadRequest) (ReadResponse, error) {
	resp := ReadResponse{Version: v.Version()}
	var err error
	switch req.Kind {
	case "topics":
		if req.Topic != "" {
			t, ok, e := v.Topic(req.Topic)
			if e != nil {
				return resp, e
			}
			if ok {
				resp.Topics = []Topic{t}
				resp.Partitions, err = v.Partitions(req.Topic)
			}
		} else if resp.Topics, err = v.Topics(); err == nil {
			resp.Partitions, err = v.AllPartitions()
		}
	case "nodes":
		resp.Nodes, err = v.Nodes()
	case "reassignments":
		resp.Reassignments, err = v.Reassignments()
	case "cluster":
		if resp.Nodes, err = v.Nodes(); err == nil {
			resp.Partitions, err = v.AllPartitions()
		}
	case "offsets":
		resp.Offsets, err = v.GroupOffsets(req.Group)
	case "tier":
		resp.Tier, err = v.TierSegments(req.Topic, req.Partition)
	default:
		err = fmt.Errorf("%w: read kind %q", ErrInvalidRequest, req.Kind)
	}
	return resp, err
}

// Event is published on strata.<cluster>.meta.events after the state
// changes: the new version and what changed. Reset means the whole state
// was replaced (a snapshot restore): refetch everything. Consumers that
// see a version gap refetch too.
type Event struct {
	Version uint64 `json:"version"`
	// Controller is the member that published it: the leader.
	Controller int32    `json:"controller,omitempty"`
	Reset      bool     `json:"reset,omitempty"`
	Changes    []Change `json:"changes,omitempty"`
}

// Change names one changed record.
type Change struct {
	Kind      string `json:"kind"` // node, topic, partition, offsets, tier
	ID        int32  `json:"id,omitempty"`
	Topic     string `json:"topic,omitempty"`
	Partition int32  `json:"partition,omitempty"`
	Group     string `json:"group,omitempty"`
}

// publishEvents runs on the FSM goroutine after each batch; only the
// leader publishes, so each change is announced once.
func (m *Member) publishEvents(version uint64, cmds []Command) {
	if m.server == nil || !m.server.IsLeader() {
		return
	}
	ev := Event{Version: version, Controller: m.cfg.NodeID, Reset: cmds == nil}
	for _, c := range cmds {
		switch c := c.(type) {
		case *RegisterNode:
			ev.Changes = append(ev.Changes, Change{Kind: "node", ID: c.Node.ID})
		case *RemoveNode:
			ev.Changes = append(ev.Changes, Change{Kind: "node", ID: c.ID})
		case *CreateTopic:
			ev.Changes = append(ev.Changes, Change{Kind: "topic", Topic: c.Topic.Name})
		case *DeleteTopic:
			ev.Changes = append(ev.Changes, Change{Kind: "topic", Topic: c.Name})
		case *CreatePartitions:
			ev.Changes = append(ev.Changes, Change{Kind: "topic", Topic: c.Topic})
		case *AlterConfigs:
			ev.Changes = append(ev.Changes, Change{Kind: "topic", Topic: c.Topic})
		case *ChangeLeader:
			ev.Changes = append(ev.Changes, Change{Kind: "partition", Topic: c.Topic, Partition: c.Partition})
		case *AlterISR:
			ev.Changes = append(ev.Changes, Change{Kind: "partition", Topic: c.Topic, Partition: c.Partition})
		case *CommitOffsets, *DeleteOffsets:
			// Offsets are read on demand; announcing each commit would
			// only add traffic.
		case *AddTierSegment:
			ev.Changes = append(ev.Changes, Change{Kind: "tier", Topic: c.Segment.Topic, Partition: c.Segment.Partition})
		case *DeleteTierSegments:
			ev.Changes = append(ev.Changes, Change{Kind: "tier", Topic: c.Topic, Partition: c.Partition})
		case *AlterReassignment:
			ev.Changes = append(ev.Changes, Change{Kind: "partition", Topic: c.Topic, Partition: c.Partition})
		case *CompleteReassignment:
			ev.Changes = append(ev.Changes, Change{Kind: "partition", Topic: c.Topic, Partition: c.Partition})
		}
	}
	if !ev.Reset && len(ev.Changes) == 0 {
		return
	}
	if b, err := json.Marshal(ev); err == nil {
		m.nc.Publish(subject(m.cfg.Cluster, subjEvents), b)
	}
}

// Error codes carried over NATS, so a client gets the same sentinel back.
var errCodes = []struct {
	code string
	err  error
}{
	{"topic_exists", ErrTopicExists},
	{"unknown_topic", ErrUnknownTopic},
	{"invalid_config", ErrInvalidConfig},
	{"invalid_request", ErrInvalidRequest},
	{"stale_epoch", ErrStaleEpoch},
	{"unknown_command", ErrUnknownCommand},
	{"not_enough_nodes", ErrNotEnoughNodes},
	{"not_leader", ErrNotLeader},
	{"invalid_replicas", ErrInvalidReplicas},
	{"no_reassignment", ErrNoReassignment},
}

func errCode(err error) string {
	for _, c := range errCodes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return ""
}

// codeErr turns a code and message from the wire back into an error that
// wraps the sentinel.
func codeErr(code, msg string) error {
	for _, c := range errCodes {
		if c.code == code {
			return fmt.Errorf("%w (%s)", c.err, msg)
		}
	}
	return errors.New(msg)
}
