package meta

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/strata-io/strata/internal/natstest"
)

// testCluster runs metadata members over one embedded NATS server.
type testCluster struct {
	t       testing.TB
	ns      *natstest.Server
	expect  int
	dirs    map[int32]string
	members map[int32]*Member
	client  *Client
}

func startCluster(t testing.TB, n, expect int) *testCluster {
	t.Helper()
	return startClusterOn(t, natstest.Start(t), n, expect)
}

// startClusterOn is startCluster over a given NATS server.
func startClusterOn(t testing.TB, ns *natstest.Server, n, expect int) *testCluster {
	t.Helper()
	c := &testCluster{t: t, ns: ns, expect: expect, dirs: map[int32]string{}, members: map[int32]*Member{},
		client: NewClient(ns.Connect(t), "test")}
	for id := int32(1); id <= int32(n); id++ {
		c.start(id)
	}
	t.Cleanup(func() {
		for _, m := range c.members {
			m.Close()
		}
	})
	c.controller()
	return c
}

func (c *testCluster) start(id int32) {
	c.t.Helper()
	if c.dirs[id] == "" {
		c.dirs[id] = c.t.TempDir()
	}
	cfg := MemberConfig{
		ServerConfig:      ServerConfig{NodeID: id, DataDir: c.dirs[id], RaftAddr: "127.0.0.1:0"},
		Cluster:           "test",
		Conn:              c.ns.Connect(c.t),
		BootstrapExpect:   c.expect,
		HeartbeatInterval: 50 * time.Millisecond,
		SessionTimeout:    600 * time.Millisecond,
	}
	fastConfig(&cfg.ServerConfig)
	m, err := OpenMember(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.members[id] = m
}

func (c *testCluster) stop(id int32) {
	c.members[id].Close()
	delete(c.members, id)
}

// controller waits for a ready controller.
func (c *testCluster) controller() *Member {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range c.members {
			if m.ready.Load() {
				return m
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatal("no controller within 15s")
	return nil
}

// propose proposes through the cluster's client, asking again while no
// controller is elected (short timeouts on a loaded machine may elect
// anew; a command refused for that was not applied).
func (c *testCluster) propose(ctx context.Context, cmd Command) (*ApplyResult, error) {
	return retryNotLeader(ctx, func() (*ApplyResult, error) { return c.client.Propose(ctx, cmd) })
}

// read reads through the cluster's client, asking again while no
// controller is elected.
func (c *testCluster) read(ctx context.Context, req ReadRequest) (*ReadResponse, error) {
	return retryNotLeader(ctx, func() (*ReadResponse, error) { return c.client.Read(ctx, req) })
}

func retryNotLeader[T any](ctx context.Context, call func() (T, error)) (T, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := call()
		if !errors.Is(err, ErrNotLeader) || time.Now().After(deadline) || ctx.Err() != nil {
			return r, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *testCluster) waitFor(what string, timeout time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMembershipFromHeartbeats(t *testing.T) {
	c := startCluster(t, 3, 3)
	ctrl := c.controller()
	c.waitFor("three voters", 10*time.Second, func() bool {
		m, _ := ctrl.Server().Members()
		return len(m) == 3 && m[1].Voter && m[2].Voter && m[3].Voter
	})
	// A fourth node joins as a non-voter with a full copy.
	c.start(4)
	c.waitFor("node 4 as non-voter", 10*time.Second, func() bool {
		m, _ := c.controller().Server().Members()
		mi, ok := m[4]
		return ok && !mi.Voter
	})
	res, err := c.propose(context.Background(), testTopic("t", 1, 1))
	if err != nil || res.Err != nil {
		t.Fatal(err, res)
	}
	version := c.controller().Server().FSM().Applied()
	c.waitFor("node 4 to catch up", 10*time.Second, func() bool { return c.members[4].Server().FSM().Applied() >= version })
	v := c.members[4].Server().FSM().View()
	defer v.Close()
	if _, ok, _ := v.Topic("t"); !ok {
		t.Fatal("non-voter lacks the topic")
	}
	nodes, _ := v.Nodes()
	if len(nodes) != 4 {
		t.Fatalf("%d nodes registered", len(nodes))
	}
}

// TestReadPastSilentMember adds to the read queue group a member that
// takes every request and never answers, as a node in a one-way
// partition does: reads still answer, by asking again.
func TestReadPastSilentMember(t *testing.T) {
	c := startCluster(t, 3, 3)
	ctx := context.Background()
	if res, err := c.propose(ctx, testTopic("t", 1, 1)); err != nil || res.Err != nil {
		t.Fatal(err, res)
	}
	silent, err := c.ns.Connect(t).QueueSubscribe(subject("test", subjRead), queueMeta, func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Unsubscribe()
	// Reads go on until the silent member has taken two. Each may pick it
	// several times in a row (a quarter of the time each), so each gets a
	// minute: six tries.
	for i := 0; ; i++ {
		if n, _ := silent.Delivered(); n >= 2 {
			break
		}
		if i == 100 {
			t.Fatal("the silent member got no reads; the test did not exercise a retry")
		}
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		r, err := c.client.Read(rctx, ReadRequest{Kind: "topics"})
		cancel()
		if err != nil || len(r.Topics) != 1 {
			t.Fatalf("read %d: %v", i, err)
		}
	}
}

// TestProposePastSilentMember: proposals go straight to the controller,
// so a member that takes queue messages and never answers (a one-way
// partition) does not hold them; a client told of a node that is gone
// sends to the queue instead.
func TestProposePastSilentMember(t *testing.T) {
	c := startCluster(t, 3, 3)
	ctx := context.Background()
	silentConn := c.ns.Connect(t)
	silent, err := silentConn.QueueSubscribe(subject("test", subjApply), queueMeta, func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Unsubscribe()
	nc := c.ns.Connect(t)
	// With the silent member a quarter of the queue, twenty proposals
	// through the queue would all miss it 3 times in 1,000.
	for i := range 20 {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res, err := retryNotLeader(pctx, func() (*ApplyResult, error) {
			return NewClient(nc, "test").Propose(pctx, testTopic(fmt.Sprintf("t%d", i), 1, 1))
		})
		cancel()
		if err != nil || res.Err != nil {
			t.Fatalf("proposal %d: %v %v", i, err, res)
		}
	}
	if n, _ := silent.Delivered(); n != 0 {
		t.Fatalf("the silent member took %d proposals", n)
	}
	silent.Unsubscribe()
	if err := silentConn.Flush(); err != nil { // the server has dropped it
		t.Fatal(err)
	}

	gone := NewClient(nc, "test")
	gone.Hint(99)
	if res, err := gone.Propose(ctx, testTopic("after", 1, 1)); err != nil || res.Err != nil {
		t.Fatalf("proposal told of a node that is gone: %v %v", err, res)
	}
}

// TestClientLearnsControllerFromEvents: a client that only listens
// learns the controller from the events it publishes, a new one too, so
// its next proposal goes to the right member without a read.
func TestClientLearnsControllerFromEvents(t *testing.T) {
	c := startCluster(t, 3, 3)
	ctx := context.Background()
	listener := NewClient(c.ns.Connect(t), "test")
	sub, err := listener.Events(func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	n := 0
	// learnt makes the controller publish events (a topic each) until the
	// listener names it; short Raft timeouts may move the lead meanwhile.
	learnt := func(what string) int32 {
		var id int32
		c.waitFor(what, 10*time.Second, func() bool {
			n++
			if res, err := c.propose(ctx, testTopic(fmt.Sprintf("t%d", n), 1, 1)); err != nil || res.Err != nil {
				t.Fatal(err, res)
			}
			id = c.controller().cfg.NodeID
			return listener.Controller() == id
		})
		return id
	}
	old := learnt("the listener to learn the controller")
	c.stop(old)
	if id := learnt("the listener to learn the new controller"); id == old {
		t.Fatalf("the listener still names node %d, stopped", old)
	}
}

// TestProposeBiggerThanMaxPayload restores a topic whose manifest is
// several times the NATS max payload: the command goes in chunks to the
// controller, from a member that does not lead too.
func TestProposeBiggerThanMaxPayload(t *testing.T) {
	c := startClusterOn(t, natstest.StartPayload(t, 16<<10), 3, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const segments = 2000
	restore := []RestoredPartition{{LogStartOffset: 0}}
	for i := range int64(segments) {
		restore[0].Segments = append(restore[0].Segments, TierSegment{Topic: "big", BaseOffset: i * 100, LastOffset: i*100 + 99,
			SizeBytes: 1 << 20, ObjectKey: fmt.Sprintf("cluster/topics/big-0123456789abcdef/0/%020d.log", i*100), UploadTimeMs: 1})
	}
	cmd := &CreateTopic{Topic: Topic{Name: "big", Partitions: 1, ReplicationFactor: 1}, Restore: restore}
	if n := len(EncodeCommand(cmd)); n < 4*(16<<10) {
		t.Fatalf("command of %d bytes: not several times the max payload", n)
	}
	var follower *Member
	for _, m := range c.members {
		if !m.ready.Load() {
			follower = m
		}
	}
	if res, err := follower.Propose(ctx, cmd); err != nil || res.Err != nil {
		t.Fatal(err, res)
	}
	r, err := c.read(ctx, ReadRequest{Kind: "tier", Topic: "big", Partition: 0})
	if err != nil || len(r.Tier) != segments || r.Tier[segments-1].LastOffset != segments*100-1 {
		t.Fatalf("manifest after restore: %d segments, %v", len(r.Tier), err)
	}
}

func TestProposeReadAndEventsOverNATS(t *testing.T) {
	c := startCluster(t, 3, 3)
	ctx := context.Background()
	events := make(chan Event, 16)
	sub, err := c.client.Events(func(ev Event) { events <- ev })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	// Whichever member the queue group picks forwards to the controller.
	for i := range 5 {
		res, err := c.propose(ctx, testTopic(fmt.Sprintf("t%d", i), 2, 2))
		if err != nil || res.Err != nil {
			t.Fatal(err, res)
		}
	}
	res, err := c.propose(ctx, testTopic("t0", 1, 1))
	if err != nil || !errors.Is(res.Err, ErrTopicExists) {
		t.Fatalf("duplicate over NATS: %v %v", err, res)
	}
	r, err := c.read(ctx, ReadRequest{Kind: "topics"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Topics) != 5 || len(r.Partitions) != 10 || r.Version == 0 {
		t.Fatalf("read %d topics %d partitions at %d", len(r.Topics), len(r.Partitions), r.Version)
	}
	if _, err := c.read(ctx, ReadRequest{Kind: "bogus"}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("bad read kind: %v", err)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-events:
			for _, ch := range ev.Changes {
				if ch.Kind == "topic" && ch.Topic == "t4" {
					if ev.Version == 0 {
						t.Fatal("event without a version")
					}
					return
				}
			}
		case <-deadline:
			t.Fatal("no event for topic t4")
		}
	}
}

// TestControllerMovesLeadershipOffDeadNode stops a node: within the
// session timeout its partitions get new leaders from their ISRs, and a
// partition whose only replica died goes offline instead of electing a
// replica that lacks its data.
func TestControllerMovesLeadershipOffDeadNode(t *testing.T) {
	c := startCluster(t, 3, 3)
	ctx := context.Background()
	ctrl := c.controller()
	// The victim is not the controller, so the test times the controller's
	// election, not a Raft election.
	var victim int32
	for id := range c.members {
		if id != ctrl.cfg.NodeID {
			victim = id
			break
		}
	}
	var others []int32
	for id := range c.members {
		if id != victim {
			others = append(others, id)
		}
	}
	mustOK := func(res *ApplyResult, err error) {
		t.Helper()
		if err != nil || res.Err != nil {
			t.Fatal(err, res)
		}
	}
	mustOK(c.propose(ctx, &CreateTopic{Topic: Topic{Name: "rf3", Partitions: 1, ReplicationFactor: 3},
		Assignment: [][]int32{{victim, others[0], others[1]}}}))
	mustOK(c.propose(ctx, &CreateTopic{Topic: Topic{Name: "rf1", Partitions: 1, ReplicationFactor: 1},
		Assignment: [][]int32{{victim}}}))
	stopped := time.Now()
	c.stop(victim)
	var p Partition
	c.waitFor("a new leader for rf3-0", 5*time.Second, func() bool {
		r, err := c.read(ctx, ReadRequest{Kind: "topics", Topic: "rf3"})
		if err != nil || len(r.Partitions) != 1 {
			return false
		}
		p = r.Partitions[0]
		return p.Leader != victim
	})
	took := time.Since(stopped)
	if p.Leader != others[0] || p.LeaderEpoch != 1 || len(p.ISR) != 2 {
		t.Fatalf("after failover %+v", p)
	}
	if took > 600*time.Millisecond+time.Second {
		t.Fatalf("failover took %v, session timeout is 600ms", took)
	}
	r, err := c.read(ctx, ReadRequest{Kind: "topics", Topic: "rf1"})
	if err != nil {
		t.Fatal(err)
	}
	if q := r.Partitions[0]; q.Leader != -1 || len(q.ISR) != 1 || q.ISR[0] != victim {
		t.Fatalf("rf1 with its only replica dead: %+v (must stay offline, ISR kept)", q)
	}
	// The node comes back with its data: the offline partition is led
	// again, cleanly, by the replica that has it.
	c.start(victim)
	c.waitFor("rf1-0 back online", 10*time.Second, func() bool {
		r, err := c.read(ctx, ReadRequest{Kind: "topics", Topic: "rf1"})
		return err == nil && len(r.Partitions) == 1 && r.Partitions[0].Leader == victim
	})
	t.Logf("leadership moved %v after the node stopped", took)
}

// TestOffsetCommitsSurviveControllerLoss commits offsets concurrently
// through NATS, kills the controller, and reads every acknowledged commit
// back from the new one.
func TestOffsetCommitsSurviveControllerLoss(t *testing.T) {
	c := startCluster(t, 3, 3)
	ctx := context.Background()
	var mu sync.Mutex
	acked := map[int32]int64{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int64(0); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := int32(w)
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				res, err := c.client.Propose(cctx, &CommitOffsets{Offsets: []Offset{{Group: "g", Topic: "t", Partition: p, Offset: i}}})
				cancel()
				if err == nil && res.Err == nil {
					mu.Lock()
					acked[p] = i
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	c.stop(c.controller().cfg.NodeID)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	c.controller()
	r, err := c.read(ctx, ReadRequest{Kind: "offsets", Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[int32]int64{}
	for _, o := range r.Offsets {
		got[o.Partition] = o.Offset
	}
	mu.Lock()
	defer mu.Unlock()
	for p, off := range acked {
		// Each worker commits increasing offsets one at a time, so the
		// stored one is the last acknowledged, or one sent after it whose
		// answer was lost in the failover.
		if got[p] < off {
			t.Fatalf("partition %d: acknowledged offset %d, read back %d", p, off, got[p])
		}
	}
	if len(acked) != 4 {
		t.Fatalf("only %d workers got commits acknowledged", len(acked))
	}
}

// TestRestartedNodeRejoins restarts a member on a new Raft address: the
// controller updates the configuration and the node catches up.
func TestRestartedNodeRejoins(t *testing.T) {
	c := startCluster(t, 3, 3)
	ctx := context.Background()
	ctrl := c.controller()
	var follower int32
	for id := range c.members {
		if id != ctrl.cfg.NodeID {
			follower = id
			break
		}
	}
	c.stop(follower)
	for i := range 10 {
		if res, err := c.propose(ctx, testTopic(fmt.Sprintf("t%d", i), 1, 1)); err != nil || res.Err != nil {
			t.Fatal(err, res)
		}
	}
	c.start(follower) // same data, new port
	want := c.controller().Server().FSM().Applied()
	c.waitFor("the restarted node to catch up", 10*time.Second, func() bool {
		return c.members[follower].Server().FSM().Applied() >= want
	})
	m, _ := c.controller().Server().Members()
	if m[follower].Addr != c.members[follower].Server().Addr() || !m[follower].Voter {
		t.Fatalf("configuration has %+v for node %d at %s", m[follower], follower, c.members[follower].Server().Addr())
	}
}

// TestOperatorRemovesNode removes a stopped node: it leaves the Raft
// configuration and the node list, and the group goes on.
func TestOperatorRemovesNode(t *testing.T) {
	c := startCluster(t, 4, 3)
	ctx := context.Background()
	c.waitFor("node 4 in the group", 10*time.Second, func() bool {
		m, _ := c.controller().Server().Members()
		_, ok := m[4]
		return ok
	})
	c.stop(4)
	if err := c.controller().RemoveNode(ctx, 4); err != nil {
		t.Fatal(err)
	}
	m, _ := c.controller().Server().Members()
	if _, ok := m[4]; ok || len(m) != 3 {
		t.Fatalf("members after removal %v", m)
	}
	r, err := c.read(ctx, ReadRequest{Kind: "nodes"})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range r.Nodes {
		if n.ID == 4 {
			t.Fatal("removed node still registered")
		}
	}
	if res, err := c.propose(ctx, testTopic("after", 1, 1)); err != nil || res.Err != nil {
		t.Fatal(err, res)
	}
}

// TestControllerAssigns creates a topic and adds partitions without an
// assignment: the controller places them on live nodes, evenly.
func TestControllerAssigns(t *testing.T) {
	c := startCluster(t, 3, 3)
	ctx := context.Background()
	c.waitFor("three live nodes", 5*time.Second, func() bool { return len(c.controller().LiveNodes()) == 3 })
	res, err := c.propose(ctx, &CreateTopic{Topic: Topic{Name: "auto", Partitions: 6, ReplicationFactor: 2}})
	if err != nil || res.Err != nil {
		t.Fatal(err, res)
	}
	if res, err := c.propose(ctx, &CreatePartitions{Topic: "auto", Total: 9}); err != nil || res.Err != nil {
		t.Fatal(err, res)
	}
	if res, _ := c.propose(ctx, &CreatePartitions{Topic: "auto", Total: 9}); res == nil || !errors.Is(res.Err, ErrInvalidRequest) {
		t.Fatalf("same count again: %+v", res)
	}
	if res, _ := c.propose(ctx, &CreateTopic{Topic: Topic{Name: "big", Partitions: 1, ReplicationFactor: 4}}); res == nil || !errors.Is(res.Err, ErrNotEnoughNodes) {
		t.Fatalf("rf 4 on 3 nodes: %+v", res)
	}
	r, err := c.read(ctx, ReadRequest{Kind: "topics", Topic: "auto"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Partitions) != 9 || r.Topics[0].ID == ([16]byte{}) {
		t.Fatalf("%d partitions, id %x", len(r.Partitions), r.Topics[0].ID)
	}
	leaders := map[int32]int{}
	for _, p := range r.Partitions {
		leaders[p.Leader]++
	}
	for id, n := range leaders {
		if n != 3 {
			t.Fatalf("node %d leads %d of 9 partitions: %v", id, n, leaders)
		}
	}
}

// TestFollowerProposes: Member.Propose on a member that does not lead goes
// to the leader, as a Client's would (a partition leader records tier
// segments this way), including a CreateTopic the controller assigns.
func TestFollowerProposes(t *testing.T) {
	c := startCluster(t, 3, 3)
	ctx := context.Background()
	leader := c.controller()
	for _, m := range c.members {
		if m == leader {
			continue
		}
		name := fmt.Sprintf("from-%d", m.cfg.NodeID)
		res, err := m.Propose(ctx, &CreateTopic{Topic: Topic{Name: name, Partitions: 2, ReplicationFactor: 2}})
		if err != nil || res.Err != nil {
			t.Fatalf("member %d: %v %v", m.cfg.NodeID, err, res)
		}
		res, err = m.Propose(ctx, &AddTierSegment{Segment: TierSegment{Topic: name, Partition: 0, BaseOffset: 0, LastOffset: 9, ObjectKey: "k"}})
		if err != nil || res.Err != nil {
			t.Fatalf("member %d: tier segment: %v %v", m.cfg.NodeID, err, res)
		}
		res, err = m.Propose(ctx, &CreateTopic{Topic: Topic{Name: name, Partitions: 1, ReplicationFactor: 1}})
		if err != nil || !errors.Is(res.Err, ErrTopicExists) {
			t.Fatalf("member %d: duplicate: %v %v", m.cfg.NodeID, err, res)
		}
		r, err := c.read(ctx, ReadRequest{Kind: "tier", Topic: name, Partition: 0})
		if err != nil || len(r.Tier) != 1 {
			t.Fatalf("member %d: manifest %v %v", m.cfg.NodeID, r, err)
		}
	}
}
