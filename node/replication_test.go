package node_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/meta"
	"github.com/strata-io/strata/testenv"
	"github.com/strata-io/strata/tier"
)

// partitions reads a topic's partitions from the controller's copy of
// metadata (a node just restarted has a stale one until it catches up).
func partitions(t *testing.T, c *testenv.Cluster, topic string) []meta.Partition {
	t.Helper()
	return nodePartitions(t, c.Nodes[controller(t, c)].Member, topic)
}

func nodePartitions(t *testing.T, m *meta.Member, topic string) []meta.Partition {
	t.Helper()
	v := m.Server().FSM().View()
	defer v.Close()
	ps, err := v.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// controller is the node leading the metadata group.
func controller(t *testing.T, c *testenv.Cluster) int32 {
	t.Helper()
	for range 500 {
		for id, p := range c.Nodes {
			if p.Member.Server().IsLeader() {
				return id
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no controller")
	return -1
}

// plainFollower is a replica of p that neither leads it nor is the
// controller, so a fault on it touches only replication; -1 if none is.
func plainFollower(t *testing.T, c *testenv.Cluster, p meta.Partition) int32 {
	t.Helper()
	ctrl := controller(t, c)
	for _, id := range p.Replicas {
		if id != p.Leader && id != ctrl {
			return id
		}
	}
	return -1
}

// waitISR waits until every running node's copy of metadata gives every
// partition of topic a leader and an ISR of n.
func waitISR(ctx context.Context, t *testing.T, c *testenv.Cluster, topic string, n int) {
	t.Helper()
	for {
		ok := true
		var ps []meta.Partition
		for _, node := range c.Nodes {
			ps = nodePartitions(t, node.Member, topic)
			for _, p := range ps {
				ok = ok && len(p.ISR) == n && p.Leader >= 0
			}
		}
		if ok {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("ISR of %d not reached: %+v", n, ps)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReplicationFailover: RF=3, min.insync.replicas=2, acks=all under a
// steady producer, through faults in turn:
//   - a follower stops (the ISR shrinks, produce goes on) and comes back
//     (it catches up and rejoins);
//   - the leader of partition 0 stops (a new leader is elected from the
//     ISR) and comes back as a follower with its disk;
//   - the controller stops and comes back;
//   - a partition leader is cut off NATS and reconnected;
//   - the controller is cut off NATS and reconnected.
//
// Every acknowledged record is then readable at its offset, with no gap,
// and a consumer group reading throughout skipped no offset and lost no
// commit.
func TestReplicationFailover(t *testing.T) {
	c := testenv.InProcess(t, 3, testenv.Options{Cuttable: true})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl := newClient(t, c, kgo.RecordRetries(1<<30), kgo.ProducerLinger(2*time.Millisecond),
		kgo.ProduceRequestTimeout(3*time.Second), kgo.RequestTimeoutOverhead(2*time.Second), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	createTopic(ctx, t, cl, 3, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, "rep")
	waitISR(ctx, t, c, "rep", 3)
	t0 := time.Now()
	check := testenv.StartChecker(t, cl, "rep", 200, 5000)
	check.OnStall = func() {
		t.Logf("partitions at the stall: %+v", partitions(t, c, "rep"))
		c.DumpStacks()
	}
	defer check.Stop()
	group := testenv.StartGroupChecker(t, "rep", "readers", c.Addr())
	check.WaitAcked(ctx, 2000, "before faults")
	t.Logf("%s: %s", "before faults", time.Since(t0))

	// A follower of partition 0 stops: the ISR shrinks to two, produce
	// goes on; it comes back, catches up and rejoins.
	p0 := partitions(t, c, "rep")[0]
	follower := p0.Replicas[slices.IndexFunc(p0.Replicas, func(id int32) bool { return id != p0.Leader })]
	c.StopNode(follower)
	waitISR(ctx, t, c, "rep", 2)
	check.WaitAcked(ctx, 2000, "with a follower down")
	t.Logf("%s: %s", "with a follower down", time.Since(t0))
	c.StartNode(follower)
	waitISR(ctx, t, c, "rep", 3)
	check.WaitAcked(ctx, 1000, "after the follower rejoined")
	t.Logf("%s: %s", "after the follower rejoined", time.Since(t0))

	// The leader of partition 0 stops: a new one is elected from the ISR.
	p0 = partitions(t, c, "rep")[0]
	c.StopNode(p0.Leader)
	check.WaitAcked(ctx, 2000, "after the leader stopped")
	t.Logf("%s: %s", "after the leader stopped", time.Since(t0))
	if now := partitions(t, c, "rep")[0]; now.Leader == p0.Leader || now.LeaderEpoch <= p0.LeaderEpoch {
		t.Fatalf("partition 0 still led by %d at epoch %d", now.Leader, now.LeaderEpoch)
	}
	c.StartNode(p0.Leader)
	waitISR(ctx, t, c, "rep", 3)
	check.WaitAcked(ctx, 1000, "after the old leader came back")
	t.Logf("%s: %s", "after the old leader came back", time.Since(t0))

	// The controller (the metadata Raft leader) stops.
	ctrl := controller(t, c)
	c.StopNode(ctrl)
	check.WaitAcked(ctx, 2000, "after the controller stopped")
	t.Logf("%s: %s", "after the controller stopped", time.Since(t0))
	c.StartNode(ctrl)
	waitISR(ctx, t, c, "rep", 3)

	// The leader of partition 1 is cut off NATS (its Raft connections
	// stay): the controller moves leadership off it; reconnected, it
	// catches up as a follower.
	p1 := partitions(t, c, "rep")[1]
	if p1.Leader == controller(t, c) {
		p1 = partitions(t, c, "rep")[2]
	}
	c.Disconnect(p1.Leader)
	for partitions(t, c, "rep")[p1.Partition].Leader == p1.Leader {
		if ctx.Err() != nil {
			t.Fatalf("partition %d still led by %d, cut off NATS", p1.Partition, p1.Leader)
		}
		time.Sleep(20 * time.Millisecond)
	}
	check.WaitAcked(ctx, 2000, "with a leader cut off NATS")
	t.Logf("%s: %s", "with a leader cut off NATS", time.Since(t0))
	c.Reconnect(p1.Leader)
	waitISR(ctx, t, c, "rep", 3)
	check.WaitAcked(ctx, 1000, "after it reconnected")
	t.Logf("%s: %s", "after it reconnected", time.Since(t0))

	// The controller is cut off NATS: it hears nobody's heartbeats, so
	// it hands the controller role over rather than judge every other
	// node dead; the new controller moves leadership off it.
	ctrl = controller(t, c)
	c.Disconnect(ctrl)
	for controller(t, c) == ctrl || slices.ContainsFunc(partitions(t, c, "rep"), func(p meta.Partition) bool { return p.Leader == ctrl }) {
		if ctx.Err() != nil {
			t.Fatalf("controller %d cut off NATS: controller %d, partitions %+v", ctrl, controller(t, c), partitions(t, c, "rep"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	check.WaitAcked(ctx, 2000, "with the controller cut off NATS")
	t.Logf("%s: %s", "with the controller cut off NATS", time.Since(t0))
	c.Reconnect(ctrl)
	waitISR(ctx, t, c, "rep", 3)
	check.WaitAcked(ctx, 1000, "after the controller reconnected")
	t.Logf("%s: %s", "after the controller reconnected", time.Since(t0))
	check.Stop()
	t.Logf("%d records acknowledged", check.Acked())
	check.Verify(ctx, c.Addr())
	group.WaitCaughtUp(ctx, check.Ends())
	group.Stop()
	group.VerifyCommitted(ctx, c.Addr())
}

// TestAcksAllErrors: a follower that stops keeps acks=all waiting until
// the request times out (REQUEST_TIMED_OUT, never success) while it is
// still in the ISR; once it has left, a topic needing three in-sync
// replicas refuses with NOT_ENOUGH_REPLICAS, while acks=1 and a topic
// needing two go on.
func TestAcksAllErrors(t *testing.T) {
	c := testenv.InProcess(t, 3, testenv.Options{ReplicaLagMax: 3 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := newClient(t, c)
	for topic, minISR := range map[string]string{"three": "3", "two": "2"} {
		createTopic(ctx, t, adm, 1, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr(minISR)}, topic)
	}
	waitISR(ctx, t, c, "three", 3)
	waitISR(ctx, t, c, "two", 3)
	// kgo sends a raw produce with the acks its client has.
	raw := map[int16]*kgo.Client{}
	for acks, opt := range map[int16]kgo.Acks{-1: kgo.AllISRAcks(), 1: kgo.LeaderAck()} {
		cl := newClient(t, c, testenv.NamedTopics, kgo.RequiredAcks(opt), kgo.DisableIdempotentWrite())
		raw[acks] = cl
	}
	// produce sends one record and returns the error code: the client's
	// retries would hide it.
	produce := func(topic string, acks int16, timeoutMillis int32) error {
		t.Helper()
		req := testenv.ProduceRequest(topic, acks, testenv.Batch([]byte("v")))
		req.TimeoutMillis = timeoutMillis
		resp, err := req.RequestWith(ctx, raw[acks])
		if err != nil {
			t.Fatal(err)
		}
		return kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
	}
	if err := produce("three", -1, 10000); err != nil {
		t.Fatal(err)
	}

	p := partitions(t, c, "three")[0]
	follower := p.Replicas[slices.IndexFunc(p.Replicas, func(id int32) bool { return id != p.Leader })]
	c.StopNode(follower)
	if err := produce("three", -1, 300); !errors.Is(err, kerr.RequestTimedOut) {
		t.Fatalf("acks=all with a dead follower still in the ISR: %v, want REQUEST_TIMED_OUT", err)
	}
	waitISR(ctx, t, c, "three", 2)
	if err := produce("three", -1, 10000); !errors.Is(err, kerr.NotEnoughReplicas) {
		t.Fatalf("acks=all, ISR 2, min.insync.replicas 3: %v, want NOT_ENOUGH_REPLICAS", err)
	}
	if err := produce("three", 1, 10000); err != nil {
		t.Fatalf("acks=1 with ISR 2: %v", err)
	}
	waitISR(ctx, t, c, "two", 2)
	if err := produce("two", -1, 10000); err != nil {
		t.Fatalf("acks=all, ISR 2, min.insync.replicas 2: %v", err)
	}
}

// TestReplicatedTiering: on a tiered topic with three replicas only the
// leader uploads, and every replica's disk holds about its local
// retention: followers let go of segments once the leader's manifest
// covers them.
func TestReplicatedTiering(t *testing.T) {
	store, err := tier.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := testenv.InProcess(t, 3, testenv.Options{Tier: store, MaintainInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newClient(t, c, kgo.DefaultProduceTopic("deep"), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(16<<10))
	createTopic(ctx, t, cl, 1, 3, map[string]*string{"remote.storage.enable": kadm.StringPtr("true"),
		"segment.bytes": kadm.StringPtr("65536"), "local.retention.bytes": kadm.StringPtr("131072")}, "deep")
	waitISR(ctx, t, c, "deep", 3)
	value := make([]byte, 1000)
	for range 2000 {
		cl.Produce(ctx, &kgo.Record{Value: value}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		sizes := map[int32]int64{}
		small := true
		for id := range c.Nodes {
			sizes[id] = dirSize(t, filepath.Join(c.DataDir(id), "partitions", "deep-0"), ".log")
			small = small && sizes[id] < 400<<10 // local retention, the active segment and one closing
		}
		if small {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("local logs of 2 MB produced with 128 KiB local retention: %v bytes", sizes)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p := partitions(t, c, "deep")[0]
	for _, s := range nodeTier(t, c, "deep") {
		if s.LeaderEpoch != p.LeaderEpoch {
			t.Fatalf("segment %d uploaded at epoch %d, leader epoch %d", s.BaseOffset, s.LeaderEpoch, p.LeaderEpoch)
		}
	}
}

func nodeTier(t *testing.T, c *testenv.Cluster, topic string) []meta.TierSegment {
	for _, p := range c.Nodes {
		v := p.Member.Server().FSM().View()
		defer v.Close()
		segs, err := v.TierSegments(topic, 0)
		if err != nil {
			t.Fatal(err)
		}
		return segs
	}
	return nil
}

// dirSize sums the sizes of dir's files ending in suffix.
func dirSize(t *testing.T, dir, suffix string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), suffix) {
			n += info.Size()
		}
	}
	return n
}

// TestReassignUnderLoad moves a partition with two replicas to another
// pair of nodes while it is produced to: the new replica copies the log,
// joins the ISR, the move completes, leadership goes to the first new
// replica, the node left out drops its copy, and every acknowledged
// record is readable from the new leader.
func TestReassignUnderLoad(t *testing.T) {
	c := testenv.InProcess(t, 3, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl := newClient(t, c, kgo.RecordRetries(1<<30))
	adm := kadm.NewClient(cl)
	createTopic(ctx, t, cl, 1, 2, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, "mv")
	waitISR(ctx, t, c, "mv", 2)
	check := testenv.StartChecker(t, cl, "mv", 200, 5000)
	defer check.Stop()
	check.WaitAcked(ctx, 5000, "before the move")

	before := partitions(t, c, "mv")[0]
	var newcomer int32
	for id := range c.Nodes {
		if !slices.Contains(before.Replicas, id) {
			newcomer = id
		}
	}
	leaving := before.Replicas[0]
	target := []int32{newcomer, before.Replicas[1]}
	var req kadm.AlterPartitionAssignmentsReq
	req.Assign("mv", 0, target)
	rs, err := adm.AlterPartitionAssignments(ctx, req)
	if err != nil || rs["mv"][0].Err != nil {
		t.Fatal(err, rs)
	}
	for {
		moving, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{"mv": {0: {}}})
		p := partitions(t, c, "mv")[0]
		if err == nil && len(moving.Sorted()) == 0 && slices.Equal(p.Replicas, target) && p.Leader == newcomer {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("move to %v not done: %+v, moving %v %v", target, p, moving, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	check.WaitAcked(ctx, 2000, "after the move")
	dir := filepath.Join(c.DataDir(leaving), "partitions", "mv-0")
	for {
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("node %d kept its copy of the moved partition", leaving)
		}
		time.Sleep(50 * time.Millisecond)
	}
	check.Stop()
	check.Verify(ctx, c.Addr())

	var bad kadm.AlterPartitionAssignmentsReq
	bad.Assign("mv", 0, []int32{newcomer, 99})
	if rs, err := adm.AlterPartitionAssignments(ctx, bad); err != nil || !errors.Is(rs["mv"][0].Err, kerr.InvalidReplicaAssignment) {
		t.Fatalf("move to an unknown node: %v %v", err, rs["mv"][0].Err)
	}
	var cancelNone kadm.AlterPartitionAssignmentsReq
	cancelNone.CancelAssign("mv", 0)
	if rs, err := adm.AlterPartitionAssignments(ctx, cancelNone); err != nil || !errors.Is(rs["mv"][0].Err, kerr.NoReassignmentInProgress) {
		t.Fatalf("cancel with no move: %v %v", err, rs["mv"][0].Err)
	}
}

// TestDivergentLeaderTruncates: a leader appends records its follower
// never gets (acks=1, the follower cut off), stops, and the follower is
// elected uncleanly and appends other records at the same offsets. The
// old leader, back as a follower, learns from the diverging epoch in its
// fetch answers where the logs part, truncates its own suffix and copies
// the new leader's: the partition then reads the same from either.
func TestDivergentLeaderTruncates(t *testing.T) {
	c := testenv.InProcess(t, 3, testenv.Options{ReplicaLagMax: 30 * time.Second, Cuttable: true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ctrl := controller(t, c)
	var l, f int32
	for id := range c.Nodes {
		switch {
		case id == ctrl:
		case l == 0:
			l = id
		default:
			f = id
		}
	}
	cl := newClient(t, c, kgo.RecordRetries(1<<30), kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.LeaderAck()))
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "div", -1, -1
	ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	ra.Partition, ra.Replicas = 0, []int32{l, f}
	rt.ReplicaAssignment = append(rt.ReplicaAssignment, ra)
	for k, v := range map[string]string{"min.insync.replicas": "1", "unclean.leader.election.enable": "true"} {
		cfg := kmsg.NewCreateTopicsRequestTopicConfig()
		cfg.Name, cfg.Value = k, kmsg.StringPtr(v)
		rt.Configs = append(rt.Configs, cfg)
	}
	req.Topics = append(req.Topics, rt)
	if resp, err := req.RequestWith(ctx, cl); err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatal(err, resp)
	}
	waitISR(ctx, t, c, "div", 2)
	all := newClient(t, c, kgo.RecordRetries(1<<30))
	produce := func(cl *kgo.Client, prefix string, n int) []int64 {
		t.Helper()
		var offsets []int64
		for i := range n {
			r, err := cl.ProduceSync(ctx, &kgo.Record{Topic: "div", Value: fmt.Appendf(nil, "%s-%d", prefix, i)}).First()
			if err != nil {
				t.Fatal(err)
			}
			offsets = append(offsets, r.Offset)
		}
		return offsets
	}
	produce(all, "both", 10) // acks=all: on both replicas
	waitFor := func(what string, ok func(meta.Partition) bool) {
		t.Helper()
		for !ok(partitions(t, c, "div")[0]) {
			if ctx.Err() != nil {
				t.Fatalf("%s: %+v", what, partitions(t, c, "div")[0])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	c.Disconnect(f)
	waitFor("the cut-off follower leaves the ISR", func(p meta.Partition) bool { return slices.Equal(p.ISR, []int32{l}) })
	lost := produce(cl, "lost", 5) // acks=1: on the leader only
	c.StopNode(l)
	c.Reconnect(f)
	waitFor("the follower elected uncleanly", func(p meta.Partition) bool { return p.Leader == f })
	kept := produce(cl, "kept", 5)
	if kept[0] != lost[0] {
		t.Fatalf("the new leader appends at %d, the old one had appended at %d", kept[0], lost[0])
	}
	c.StartNode(l)
	waitFor("the old leader rejoins the ISR", func(p meta.Partition) bool { return len(p.ISR) == 2 })
	c.StopNode(f)
	waitFor("the old leader leads again", func(p meta.Partition) bool { return p.Leader == l })

	cons := newClient(t, c, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"div": {0: kgo.NewOffset().AtStart()}}))
	var got []string
	for len(got) < 15 {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %q", got)
		}
		for _, r := range fs.Records() {
			got = append(got, string(r.Value))
		}
	}
	for i, v := range got {
		want := fmt.Sprintf("both-%d", i)
		if i >= 10 {
			want = fmt.Sprintf("kept-%d", i-10)
		}
		if v != want {
			t.Fatalf("offset %d holds %q, want %q (all: %q)", i, v, want, got)
		}
	}
}

// TestLaggingFollowerLeavesISR: a follower that stays alive to the
// controller (its heartbeats arrive) but receives nothing falls behind;
// after replica.lag.time.max.ms its leader takes it out of the ISR and
// acks=all goes on with two; once it receives again it catches up and
// its leader puts it back.
func TestLaggingFollowerLeavesISR(t *testing.T) {
	c := testenv.InProcess(t, 3, testenv.Options{Cuttable: true, ReplicaLagMax: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newClient(t, c, kgo.RecordRetries(1<<30))
	createTopic(ctx, t, cl, 1, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, "lag")
	waitISR(ctx, t, c, "lag", 3)
	check := testenv.StartChecker(t, cl, "lag", 100, 2000)
	defer check.Stop()
	check.WaitAcked(ctx, 500, "before")
	p := partitions(t, c, "lag")[0]
	lagging := plainFollower(t, c, p)
	if lagging < 0 {
		t.Skipf("leader %d and the controller leave no plain follower among %v", p.Leader, p.Replicas)
	}
	c.Stall(lagging)
	for {
		now := partitions(t, c, "lag")[0]
		if len(now.ISR) == 2 && !slices.Contains(now.ISR, lagging) {
			if now.Leader != p.Leader {
				t.Fatalf("leadership moved (%d to %d): the follower should lag, not die", p.Leader, now.Leader)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the lagging follower %d is still in the ISR: %+v", lagging, now)
		}
		time.Sleep(20 * time.Millisecond)
	}
	check.WaitAcked(ctx, 1000, "with the follower out of the ISR")
	c.Unstall(lagging)
	waitISR(ctx, t, c, "lag", 3)
	check.WaitAcked(ctx, 500, "after it rejoined")
	check.Stop()
	check.Verify(ctx, c.Addr())
}

// newClient is a client of the cluster, closed when the test ends.
func newClient(t *testing.T, c *testenv.Cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Addr())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// createTopic creates a topic with the given configs.
func createTopic(ctx context.Context, t *testing.T, cl *kgo.Client, partitions int32, rf int16, configs map[string]*string, topic string) {
	t.Helper()
	if r, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, rf, configs, topic); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
}

// TestPipelinedAcksAll: acks=all produce requests pipelined on one
// connection. Each is appended while the ones before it still wait for
// their replicas (here a stalled follower holds the high watermark back),
// and answers and records keep the order the requests were sent in.
func TestPipelinedAcksAll(t *testing.T) {
	c := testenv.InProcess(t, 3, testenv.Options{Cuttable: true, ReplicaLagMax: 30 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newClient(t, c)
	createTopic(ctx, t, cl, 1, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, "pipe")
	waitISR(ctx, t, c, "pipe", 3)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "pipe", Value: []byte("first")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	p := partitions(t, c, "pipe")[0]
	stalled := plainFollower(t, c, p)
	adm := kadm.NewClient(cl)
	logSize := func() int64 { return testenv.TopicLogBytes(ctx, t, adm, "pipe") }
	before := logSize()
	c.Stall(stalled)

	conn, err := net.Dial("tcp", c.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(50 * time.Second))
	const n = 20
	var frames []byte
	var batches int64
	for i := range n {
		b := testenv.Batch(fmt.Appendf(nil, "%d", i))
		batches += int64(len(b))
		req := testenv.ProduceRequest("pipe", -1, b)
		req.TimeoutMillis = 40_000
		req.SetVersion(7)
		frames = append(frames, kmsg.NewRequestFormatter().AppendRequest(nil, req, int32(i))...)
	}
	if _, err := conn.Write(frames); err != nil {
		t.Fatal(err)
	}
	// All of them reach the leader's log while the first still waits.
	deadline := time.Now().Add(15 * time.Second)
	for logSize() < before+batches {
		if time.Now().After(deadline) {
			t.Fatalf("leader's log holds %d of %d pipelined bytes: each produce waited for the one before to replicate",
				logSize()-before, batches)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Unstall(stalled)
	for i := range n {
		corr, body, err := testenv.ReadFrame(conn)
		if err != nil {
			t.Fatal(err)
		}
		if corr != int32(i) {
			t.Fatalf("answer %d has correlation id %d", i, corr)
		}
		resp := kmsg.NewPtrProduceResponse()
		resp.SetVersion(7)
		if err := resp.ReadFrom(body); err != nil {
			t.Fatal(err)
		}
		rp := resp.Topics[0].Partitions[0]
		if rp.ErrorCode != 0 || rp.BaseOffset != int64(i+1) {
			t.Fatalf("answer %d: error %d at offset %d, want offset %d", i, rp.ErrorCode, rp.BaseOffset, i+1)
		}
	}
	cons := newClient(t, c, kgo.ConsumeTopics("pipe"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for got := 0; got <= n; {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			want := "first"
			if got > 0 {
				want = fmt.Sprint(got - 1)
			}
			if string(r.Value) != want || r.Offset != int64(got) {
				t.Fatalf("offset %d holds %q, want %q at %d", r.Offset, r.Value, want, got)
			}
			got++
		})
	}
}

// TestRetriedBatchWaitsForReplicas: an idempotent producer's retry of a
// batch the leader wrote but could not yet replicate is answered only
// once the batch is replicated, as the first attempt would have been.
// It used to be answered at once as a duplicate: acknowledged while held
// by the leader alone, and lost with a leader change (the fault suite
// found it, seed 9002).
func TestRetriedBatchWaitsForReplicas(t *testing.T) {
	c := testenv.InProcess(t, 2, testenv.Options{Cuttable: true, ReplicaLagMax: 30 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newClient(t, c, testenv.NamedTopics)
	createTopic(ctx, t, cl, 1, 2, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, "dup")
	waitISR(ctx, t, c, "dup", 2)
	p := partitions(t, c, "dup")[0]
	follower := p.Replicas[slices.IndexFunc(p.Replicas, func(id int32) bool { return id != p.Leader })]
	initReq := kmsg.NewPtrInitProducerIDRequest()
	initReq.TransactionTimeoutMillis, initReq.ProducerID, initReq.ProducerEpoch = 60000, -1, -1
	ir, err := initReq.RequestWith(ctx, cl)
	if err != nil || ir.ErrorCode != 0 {
		t.Fatal(err, ir)
	}
	send := func(timeout int32) *kmsg.ProduceResponseTopicPartition {
		t.Helper()
		req := testenv.ProduceRequest("dup", -1, testenv.IdempotentBatch(ir.ProducerID, ir.ProducerEpoch, 0))
		req.TimeoutMillis = timeout
		r, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return &r.Topics[0].Partitions[0]
	}
	c.Disconnect(follower) // the follower fetches nothing
	if p := send(300); p.ErrorCode != kerr.RequestTimedOut.Code {
		t.Fatalf("first attempt with the follower cut off: %v, want REQUEST_TIMED_OUT", kerr.ErrorForCode(p.ErrorCode))
	}
	if p := send(300); p.ErrorCode == 0 {
		t.Fatal("the retry was acknowledged while only the leader held the batch")
	}
	c.Reconnect(follower)
	for {
		p := send(2000)
		if p.ErrorCode == 0 {
			if p.BaseOffset != 0 {
				t.Fatalf("the retry landed at offset %d, want 0: written twice", p.BaseOffset)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the retry never succeeded once the follower was back: %v", kerr.ErrorForCode(p.ErrorCode))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFetchDoesNotWaitForIdleLeaders: a consumer of a topic whose
// partitions have three different leaders, only one of which gets data,
// receives a record at once, not when the idle leaders' long polls end
// (the gateway answered only once every leader had: a record could wait
// the whole fetch.max.wait).
func TestFetchDoesNotWaitForIdleLeaders(t *testing.T) {
	c := testenv.InProcess(t, 3, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newClient(t, c, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	createTopic(ctx, t, cl, 3, 1, nil, "spread")
	leaders := map[int32]bool{}
	for _, p := range partitions(t, c, "spread") {
		leaders[p.Leader] = true
	}
	if len(leaders) < 2 {
		t.Skipf("the partitions share a leader: %+v", partitions(t, c, "spread"))
	}
	cons := newClient(t, c, kgo.ConsumeTopics("spread"), kgo.FetchMaxWait(10*time.Second))
	for i := range 5 {
		got := make(chan time.Time, 1)
		go func() {
			for ctx.Err() == nil {
				if fs := cons.PollFetches(ctx); fs.NumRecords() > 0 {
					got <- time.Now()
					return
				}
			}
		}()
		time.Sleep(300 * time.Millisecond) // the consumer's fetch is waiting
		sent := time.Now()
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "spread", Partition: 0, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if took := (<-got).Sub(sent); took > 3*time.Second {
			t.Fatalf("record %d reached the consumer after %v: its fetch waited for the idle leaders' long polls", i, took)
		}
	}
}
