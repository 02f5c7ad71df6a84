package meta

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// ServerConfig configures one member of the metadata Raft group.
type ServerConfig struct {
	NodeID  int32
	DataDir string // holds raft/, state/ and snapshots/
	// RaftAddr is the address the Raft TCP transport listens on and
	// advertises ("127.0.0.1:0" picks a free port).
	RaftAddr string
	// RaftTLS, when set, makes the transport mutual TLS.
	RaftTLS *RaftTLS
	Logger  *slog.Logger
	// OnApply is called after each applied batch (see OpenFSM).
	OnApply func(version uint64, applied []Command)

	// Raft timing; zero takes hashicorp/raft's defaults. Tests shorten
	// them.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotThreshold is how many entries trigger a snapshot; TrailingLogs
	// how many stay in the log after one.
	SnapshotThreshold uint64
	TrailingLogs      uint64
}

// Server is one member of the metadata Raft group: the Raft instance, its
// Badger stores and the FSM.
type Server struct {
	cfg       ServerConfig
	logger    *slog.Logger
	raft      *raft.Raft
	store     *RaftStore
	fsm       *FSM
	transport *raft.NetworkTransport
	logPipe   io.Closer // ends the goroutine that forwards Raft's log
}

// raftRPCsInFlight is 1: no pipelined replication (see OpenServer). A
// variable so that a benchmark can measure what that costs.
var raftRPCsInFlight = 1

// OpenServer opens the member's stores and starts Raft. A member with no
// Raft state waits to be bootstrapped or added by the leader.
func OpenServer(cfg ServerConfig) (*Server, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("node", cfg.NodeID)
	s := &Server{cfg: cfg, logger: logger}
	ok := false
	defer func() {
		if !ok {
			s.closeStores()
		}
	}()
	var err error
	if s.store, err = OpenRaftStore(filepath.Join(cfg.DataDir, "raft"), logger); err != nil {
		return nil, fmt.Errorf("meta: raft log store: %w", err)
	}
	if s.fsm, err = OpenFSM(filepath.Join(cfg.DataDir, "state"), logger, cfg.OnApply); err != nil {
		return nil, fmt.Errorf("meta: metadata store: %w", err)
	}
	hlog, logPipe := newHclog(logger)
	s.logPipe = logPipe
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(cfg.DataDir, "snapshots"), 2, hlog)
	if err != nil {
		return nil, fmt.Errorf("meta: snapshot store: %w", err)
	}
	if err := s.catchUpFromSnapshot(snaps); err != nil {
		return nil, err
	}
	// MaxRPCsInFlight 1 turns off Raft's pipelined replication: in
	// hashicorp/raft v1.8.0 a follower that answers one pipelined append
	// with Success=false can leave the pipeline's two goroutines blocked
	// on each other, and replication to that follower stops for good
	// while heartbeats go on (the follower's metadata freezes and nothing
	// ever calls an election), and Shutdown waits on them forever. Seen
	// here as a node whose Close never returned. Synchronous appends cost
	// a round trip each; the metadata's writes are small and batched.
	tcfg := &raft.NetworkTransportConfig{MaxPool: 3, Timeout: 10 * time.Second, Logger: hlog, MaxRPCsInFlight: raftRPCsInFlight}
	if cfg.RaftTLS != nil {
		s.transport, err = newTLSTransport(cfg.RaftAddr, cfg.RaftTLS, tcfg)
	} else {
		s.transport, err = raft.NewTCPTransportWithConfig(cfg.RaftAddr, nil, tcfg)
	}
	if err != nil {
		return nil, fmt.Errorf("meta: raft transport on %s: %w", cfg.RaftAddr, err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(strconv.Itoa(int(cfg.NodeID)))
	rc.Logger = hlog
	// The FSM persists its own state and skips what it already holds, so
	// Raft need not restore a snapshot on every start (see FSM).
	rc.NoSnapshotRestoreOnStart = true
	rc.BatchApplyCh = true
	if cfg.HeartbeatTimeout > 0 {
		rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	}
	if cfg.ElectionTimeout > 0 {
		rc.ElectionTimeout = cfg.ElectionTimeout
	}
	if cfg.LeaderLeaseTimeout > 0 {
		rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	}
	if cfg.CommitTimeout > 0 {
		rc.CommitTimeout = cfg.CommitTimeout
	}
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	if s.raft, err = raft.NewRaft(rc, s.fsm, s.store, s.store, snaps, s.transport); err != nil {
		return nil, fmt.Errorf("meta: start raft: %w", err)
	}
	ok = true
	return s, nil
}

// catchUpFromSnapshot restores the newest snapshot if the persisted state
// is behind it: the state DB is not synced, and Raft (told not to restore
// on start) replays only the entries after its newest snapshot.
func (s *Server) catchUpFromSnapshot(snaps *raft.FileSnapshotStore) error {
	list, err := snaps.List()
	if err != nil || len(list) == 0 {
		return err
	}
	newest := list[0]
	if newest.Index <= s.fsm.Applied() {
		return nil
	}
	s.logger.Info("metadata state behind the newest snapshot, restoring it", "state_version", s.fsm.Applied(), "snapshot_index", newest.Index)
	_, rc, err := snaps.Open(newest.ID)
	if err != nil {
		return fmt.Errorf("meta: open snapshot %s: %w", newest.ID, err)
	}
	return s.fsm.Restore(rc)
}

// Addr is the Raft address this member listens on.
func (s *Server) Addr() string { return string(s.transport.LocalAddr()) }

// ID is the member's node id.
func (s *Server) ID() int32 { return s.cfg.NodeID }

// FSM is the member's state machine, for local reads.
func (s *Server) FSM() *FSM { return s.fsm }

// Raft is the underlying Raft instance.
func (s *Server) Raft() *raft.Raft { return s.raft }

// Bootstrap starts a new group whose voters are the given members. It is
// a no-op error (raft.ErrCantBootstrap) on a member that has state.
func (s *Server) Bootstrap(voters map[int32]string) error {
	var servers []raft.Server
	for id, addr := range voters {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: serverID(id), Address: raft.ServerAddress(addr)})
	}
	return s.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
}

func serverID(id int32) raft.ServerID { return raft.ServerID(strconv.Itoa(int(id))) }

// IsLeader reports whether this member leads the group (is the
// controller).
func (s *Server) IsLeader() bool { return s.raft.State() == raft.Leader }

// CaughtUp reports whether this member's copy of the state is current:
// it leads, or it has heard from a leader and applied everything that
// leader had committed. A member just restarted replays a stale state
// until then, and must not act on it.
func (s *Server) CaughtUp() bool {
	if s.IsLeader() {
		return true
	}
	if addr, _ := s.raft.LeaderWithID(); addr == "" {
		return false
	}
	commit := s.raft.CommitIndex()
	return commit > 0 && s.raft.AppliedIndex() >= commit
}

// Leader returns the leader's node id and Raft address, or ok=false when
// none is known.
func (s *Server) Leader() (id int32, addr string, ok bool) {
	a, sid := s.raft.LeaderWithID()
	if sid == "" {
		return 0, "", false
	}
	n, err := strconv.Atoi(string(sid))
	if err != nil {
		return 0, "", false
	}
	return int32(n), string(a), true
}

// Propose applies a command through Raft and returns its result. It must
// run on the leader; elsewhere it returns ErrNotLeader naming the leader.
func (s *Server) Propose(ctx context.Context, cmd Command) (*ApplyResult, error) {
	return s.result(s.enqueue(ctx, cmd), cmd)
}

// enqueue hands cmd to Raft and returns at once: commands enqueued one
// after another from one goroutine take log entries in that order.
func (s *Server) enqueue(ctx context.Context, cmd Command) raft.ApplyFuture {
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	return s.raft.Apply(EncodeCommand(cmd), timeout)
}

// result waits for an enqueued command to be applied.
func (s *Server) result(f raft.ApplyFuture, cmd Command) (*ApplyResult, error) {
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			id, _, ok := s.Leader()
			if ok && id != s.cfg.NodeID {
				return nil, fmt.Errorf("%w: leader is node %d", ErrNotLeader, id)
			}
			return nil, fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		return nil, fmt.Errorf("meta: propose %T: %w", cmd, err)
	}
	res, _ := f.Response().(*ApplyResult)
	if res == nil {
		return nil, fmt.Errorf("meta: propose %T: no result", cmd)
	}
	return res, nil
}

// ConsistentView returns a view that reflects every command committed
// before the call (a linearizable read): the leader confirms it still
// leads, then waits for its state to reach the commit index.
func (s *Server) ConsistentView(ctx context.Context) (*View, error) {
	commit := s.raft.CommitIndex()
	if err := s.raft.VerifyLeader().Error(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	// The FSM's version is the index of the last command it applied; Raft
	// never hands it no-ops or barriers. So wait for the last command at or
	// below the commit index, not for the commit index itself.
	target, err := s.lastCommandAtOrBelow(commit)
	if err != nil {
		return nil, err
	}
	for s.fsm.Applied() < target {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return s.fsm.View(), nil
}

// lastCommandAtOrBelow finds the newest command entry at or below index,
// walking back over no-ops, barriers and configuration entries (rarely
// more than a step or two). An entry compacted away is covered by the
// snapshot the state already holds: nothing to wait for.
func (s *Server) lastCommandAtOrBelow(index uint64) (uint64, error) {
	var l raft.Log
	for i := index; i > 0; i-- {
		if err := s.store.GetLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				return 0, nil
			}
			return 0, err
		}
		if l.Type == raft.LogCommand {
			return i, nil
		}
	}
	return 0, nil
}

// AddMember adds a node to the group, as a voter or a non-voter (a full
// copy that does not vote). Leader only.
func (s *Server) AddMember(id int32, addr string, voter bool) error {
	var f raft.IndexFuture
	if voter {
		f = s.raft.AddVoter(serverID(id), raft.ServerAddress(addr), 0, 10*time.Second)
	} else {
		f = s.raft.AddNonvoter(serverID(id), raft.ServerAddress(addr), 0, 10*time.Second)
	}
	return f.Error()
}

// RemoveMember removes a node from the group. Leader only.
func (s *Server) RemoveMember(id int32) error {
	return s.raft.RemoveServer(serverID(id), 0, 10*time.Second).Error()
}

// Member is a group member as the Raft configuration has it.
type MemberInfo struct {
	Voter bool
	Addr  string
}

// Members returns the group's configuration by node id.
func (s *Server) Members() (map[int32]MemberInfo, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	out := map[int32]MemberInfo{}
	for _, srv := range f.Configuration().Servers {
		n, err := strconv.Atoi(string(srv.ID))
		if err != nil {
			continue
		}
		out[int32(n)] = MemberInfo{Voter: srv.Suffrage == raft.Voter, Addr: string(srv.Address)}
	}
	return out, nil
}

// Close stops Raft and closes the stores.
func (s *Server) Close() error {
	var err error
	if s.raft != nil {
		if e := s.raft.Shutdown().Error(); e != nil {
			err = fmt.Errorf("raft shutdown: %w", e)
		}
	}
	if s.transport != nil {
		if e := s.transport.Close(); e != nil {
			err = errors.Join(err, fmt.Errorf("raft transport: %w", e))
		}
	}
	return errors.Join(err, s.closeStores())
}

func (s *Server) closeStores() error {
	var err error
	if s.logPipe != nil {
		s.logPipe.Close()
	}
	if s.fsm != nil {
		if e := s.fsm.Close(); e != nil {
			err = fmt.Errorf("metadata store: %w", e)
		}
	}
	if s.store != nil {
		if e := s.store.Close(); e != nil {
			err = errors.Join(err, fmt.Errorf("raft log store: %w", e))
		}
	}
	return err
}

// newHclog routes hashicorp/raft's hclog output to slog. Raft's info
// chatter (elections, heartbeats) goes to debug; warnings and errors keep
// their level.
func newHclog(l *slog.Logger) (hclog.Logger, io.Closer) {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.Contains(line, "[ERROR]"):
				l.Error(line, "component", "raft")
			case strings.Contains(line, "[WARN]"):
				l.Warn(line, "component", "raft")
			default:
				l.Debug(line, "component", "raft")
			}
		}
	}()
	return hclog.New(&hclog.LoggerOptions{Name: "raft", Output: pw, Level: hclog.Info, DisableTime: true}), pw
}
