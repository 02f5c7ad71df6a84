package meta

import (
	"context"
	"crypto/rand"
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

// MemberConfig configures a metadata member on NATS.
type MemberConfig struct {
	ServerConfig
	Cluster string
	Conn    *nats.Conn
	Rack    string
	Version string
	// TopicDefaults go out in heartbeats (see Heartbeat).
	TopicDefaults map[string]string
	// StreamAddr goes out in heartbeats: where gateways send this node
	// Kafka requests directly, and the token they open it with (see
	// Heartbeat).
	StreamAddr, StreamToken string
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

// ControllerCounts are the partition leaders this member changed and
// the ISRs it shrank (dead replicas removed) while it was the
// controller, over the process's life.
func (m *Member) ControllerCounts() (elections, isrShrinks int64) {
	return m.counts.elections.Load(), m.counts.isrShrinks.Load()
}

// Member is a node's part in the metadata group: a Server, its
// heartbeats, and, while it leads, the controller. It answers proposals,
// consistent reads and publishes change events on NATS.
type Member struct {
	// counts are what this member did as controller, for metrics.
	counts    struct{ elections, isrShrinks atomic.Int64 }
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
		deafSince time.Time
		// deafAt is the last time this member found itself not hearing
		// NATS (not connected, or its own heartbeats not coming back):
		// others' silence up to a session timeout after it says nothing.
		deafAt     time.Time
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

// ConsistentView is a linearizable read on the controller.
func (m *Member) ConsistentView(ctx context.Context) (*View, error) {
	if !m.ready.Load() {
		return nil, m.notLeader()
	}
	return m.server.ConsistentView(ctx)
}
