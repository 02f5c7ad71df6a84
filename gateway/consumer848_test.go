package gateway_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/testenv"
)

// heartbeat848 sends one ConsumerGroupHeartbeat.
func heartbeat848(t *testing.T, ctx context.Context, cl *kgo.Client, mut func(*kmsg.ConsumerGroupHeartbeatRequest)) *kmsg.ConsumerGroupHeartbeatResponse {
	t.Helper()
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	req.Group, req.RebalanceTimeoutMillis = "raw", 30000
	mut(req)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestConsumerGroupHeartbeatErrors: the KIP-848 heartbeat's answers to
// what a client gets wrong are Kafka's, and two members split a topic's
// partitions between them without ever sharing one.
func TestConsumerGroupHeartbeatErrors(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newClient(t, c.Addr())
	adm := kadm.NewClient(cl)
	if r, err := adm.CreateTopic(ctx, 4, 1, nil, "t"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	want := func(what string, resp *kmsg.ConsumerGroupHeartbeatResponse, code *kerr.Error) {
		t.Helper()
		if code == nil && resp.ErrorCode != 0 || code != nil && resp.ErrorCode != code.Code {
			t.Fatalf("%s: %v, want %v", what, kerr.ErrorForCode(resp.ErrorCode), code)
		}
	}
	sub := func(r *kmsg.ConsumerGroupHeartbeatRequest) {
		r.SubscribedTopicNames = []string{"t"}
		r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	}
	want("join owning partitions", heartbeat848(t, ctx, cl, func(r *kmsg.ConsumerGroupHeartbeatRequest) {
		sub(r)
		r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{{Partitions: []int32{0}}}
	}), kerr.InvalidRequest)
	want("unknown assignor", heartbeat848(t, ctx, cl, func(r *kmsg.ConsumerGroupHeartbeatRequest) {
		sub(r)
		r.ServerAssignor = kmsg.StringPtr("sticky")
	}), kerr.UnsupportedAssignor)

	a := heartbeat848(t, ctx, cl, func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberID = "member-a"; sub(r) })
	want("join", a, nil)
	if a.MemberEpoch < 1 || a.Assignment == nil || len(a.Assignment.Topics) != 1 || len(a.Assignment.Topics[0].Partitions) != 4 {
		t.Fatalf("first member: epoch %d, assignment %+v", a.MemberEpoch, a.Assignment)
	}
	topicID := a.Assignment.Topics[0].TopicID
	owned := func(ps ...int32) []kmsg.ConsumerGroupHeartbeatRequestTopic {
		return []kmsg.ConsumerGroupHeartbeatRequestTopic{{TopicID: topicID, Partitions: ps}}
	}
	want("unknown member", heartbeat848(t, ctx, cl, func(r *kmsg.ConsumerGroupHeartbeatRequest) {
		r.MemberID, r.MemberEpoch = "nobody", 1
	}), kerr.UnknownMemberID)
	want("epoch ahead", heartbeat848(t, ctx, cl, func(r *kmsg.ConsumerGroupHeartbeatRequest) {
		r.MemberID, r.MemberEpoch = "member-a", a.MemberEpoch+5
	}), kerr.FencedMemberEpoch)

	// A second member joins: the first must give up two partitions
	// before the second gets them.
	b := heartbeat848(t, ctx, cl, func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberID = "member-b"; sub(r) })
	want("second join", b, nil)
	if b.Assignment == nil || len(b.Assignment.Topics) != 0 {
		t.Fatalf("the second member got %+v while the first still holds every partition", b.Assignment)
	}
	a2 := heartbeat848(t, ctx, cl, func(r *kmsg.ConsumerGroupHeartbeatRequest) {
		r.MemberID, r.MemberEpoch, r.Topics = "member-a", a.MemberEpoch, owned(0, 1, 2, 3)
		r.SubscribedTopicNames = []string{"t"}
	})
	want("first member's heartbeat", a2, nil)
	if a2.MemberEpoch != a.MemberEpoch || a2.Assignment == nil || len(a2.Assignment.Topics[0].Partitions) != 2 {
		t.Fatalf("revocation: epoch %d (was %d), assignment %+v", a2.MemberEpoch, a.MemberEpoch, a2.Assignment)
	}
	kept := a2.Assignment.Topics[0].Partitions
	b2 := heartbeat848(t, ctx, cl, func(r *kmsg.ConsumerGroupHeartbeatRequest) {
		r.MemberID, r.MemberEpoch, r.Topics = "member-b", b.MemberEpoch, owned()
		r.SubscribedTopicNames = []string{"t"}
	})
	if b2.Assignment != nil && len(b2.Assignment.Topics) > 0 {
		t.Fatalf("the second member got %+v before the first released them", b2.Assignment)
	}
	// The first confirms; its epoch moves, and the second gets the rest.
	a3 := heartbeat848(t, ctx, cl, func(r *kmsg.ConsumerGroupHeartbeatRequest) {
		r.MemberID, r.MemberEpoch, r.Topics = "member-a", a.MemberEpoch, owned(kept...)
		r.SubscribedTopicNames = []string{"t"}
	})
	if a3.ErrorCode != 0 || a3.MemberEpoch <= a.MemberEpoch {
		t.Fatalf("after revoking: %v epoch %d", kerr.ErrorForCode(a3.ErrorCode), a3.MemberEpoch)
	}
	b3 := heartbeat848(t, ctx, cl, func(r *kmsg.ConsumerGroupHeartbeatRequest) {
		r.MemberID, r.MemberEpoch, r.Topics = "member-b", b2.MemberEpoch, owned()
		r.SubscribedTopicNames = []string{"t"}
	})
	if b3.ErrorCode != 0 || b3.Assignment == nil || len(b3.Assignment.Topics) != 1 || len(b3.Assignment.Topics[0].Partitions) != 2 {
		t.Fatalf("second member after the release: %v %+v", kerr.ErrorForCode(b3.ErrorCode), b3.Assignment)
	}
	for _, p := range b3.Assignment.Topics[0].Partitions {
		for _, k := range kept {
			if p == k {
				t.Fatalf("partition %d given to both members", p)
			}
		}
	}
	// Commits are fenced by member epoch.
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Group, commit.MemberID, commit.Generation = "raw", "member-b", b3.MemberEpoch-1
	ct := kmsg.NewOffsetCommitRequestTopic()
	ct.Topic = "t"
	cp := kmsg.NewOffsetCommitRequestTopicPartition()
	cp.Partition, cp.Offset = b3.Assignment.Topics[0].Partitions[0], 0
	ct.Partitions = append(ct.Partitions, cp)
	commit.Topics = append(commit.Topics, ct)
	cresp, err := commit.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := cresp.Topics[0].Partitions[0].ErrorCode; code != kerr.StaleMemberEpoch.Code {
		t.Fatalf("commit with a stale member epoch: %v", kerr.ErrorForCode(code))
	}
	commit.Generation = b3.MemberEpoch
	if cresp, err = commit.RequestWith(ctx, cl); err != nil || cresp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("commit at the member's epoch: %v %v", err, kerr.ErrorForCode(cresp.Topics[0].Partitions[0].ErrorCode))
	}
	// A classic member cannot join a group on the consumer protocol.
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.ProtocolType, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = "raw", "consumer", 10000, 10000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{}}}
	jresp, err := join.RequestWith(ctx, cl)
	if err != nil || jresp.ErrorCode != kerr.InconsistentGroupProtocol.Code {
		t.Fatalf("classic join of a consumer group: %v %v", err, kerr.ErrorForCode(jresp.ErrorCode))
	}
	// Describe shows both members and their assignments.
	dreq := kmsg.NewPtrConsumerGroupDescribeRequest()
	dreq.Groups = []string{"raw", "absent"}
	dresp, err := dreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if g := dresp.Groups[0]; g.ErrorCode != 0 || len(g.Members) != 2 || g.AssignorName != "uniform" {
		t.Fatalf("describe: %+v", g)
	}
	if dresp.Groups[1].ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("describe an absent group: %v", kerr.ErrorForCode(dresp.Groups[1].ErrorCode))
	}
	// Leaving frees the member's partitions for the other.
	if l := heartbeat848(t, ctx, cl, func(r *kmsg.ConsumerGroupHeartbeatRequest) {
		r.MemberID, r.MemberEpoch = "member-b", -1
	}); l.ErrorCode != 0 || l.MemberEpoch != -1 {
		t.Fatalf("leave: %v epoch %d", kerr.ErrorForCode(l.ErrorCode), l.MemberEpoch)
	}
	a4 := heartbeat848(t, ctx, cl, func(r *kmsg.ConsumerGroupHeartbeatRequest) {
		r.MemberID, r.MemberEpoch, r.Topics = "member-a", a3.MemberEpoch, owned(kept...)
		r.SubscribedTopicNames = []string{"t"}
	})
	if a4.Assignment == nil || len(a4.Assignment.Topics[0].Partitions) != 4 {
		t.Fatalf("after the other left: %+v", a4.Assignment)
	}
}

// ownership records which member holds each partition, from the
// clients' own assigned and revoked callbacks, and fails the test if a
// partition is ever assigned to one member while another holds it.
type ownership struct {
	t      *testing.T
	mu     sync.Mutex
	owners map[int32]string
	moves  int
}

func (o *ownership) assigned(member string, ps map[string][]int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range ps["roll"] {
		if cur, ok := o.owners[p]; ok && cur != member {
			o.t.Errorf("partition %d assigned to %s while %s holds it", p, member, cur)
		}
		o.owners[p] = member
		o.moves++
	}
}

func (o *ownership) revoked(member string, ps map[string][]int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range ps["roll"] {
		if o.owners[p] == member {
			delete(o.owners, p)
		}
	}
}

// TestConsumerGroupRollingRestart runs six franz-go members of a KIP-848
// group (server-side assignment) over a 12-partition topic and restarts
// them one at a time, in a seeded random order, while records flow: no
// partition is ever held by two members at once, and every record is
// consumed.
func TestConsumerGroupRollingRestart(t *testing.T) {
	seed := testenv.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 9))
	c := testenv.InProcess(t, 1, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, c.Addr()))
	if r, err := adm.CreateTopic(ctx, 12, 1, nil, "roll"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	own := &ownership{t: t, owners: map[int32]string{}}
	var mu sync.Mutex
	seen := map[string]bool{}
	start := func(name string) *kgo.Client {
		cl := newClient(t, c.Addr(), kgo.ConsumerGroup("rolling"), kgo.ConsumeTopics("roll"),
			kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.ServerSideBalancer(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, ps map[string][]int32) { own.assigned(name, ps) }),
			kgo.OnPartitionsRevoked(func(_ context.Context, cl *kgo.Client, ps map[string][]int32) {
				cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
				cl.CommitMarkedOffsets(cctx)
				ccancel()
				own.revoked(name, ps)
			}),
			kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, ps map[string][]int32) { own.revoked(name, ps) }),
			kgo.AutoCommitMarks(), kgo.BlockRebalanceOnPoll())
		go func() {
			for {
				fs := cl.PollFetches(ctx)
				if fs.IsClientClosed() || ctx.Err() != nil {
					cl.AllowRebalance() // a Close after the test gave up must not wait on it
					return
				}
				mu.Lock()
				fs.EachRecord(func(r *kgo.Record) {
					seen[string(r.Value)] = true
					cl.MarkCommitRecords(r)
				})
				mu.Unlock()
				cl.AllowRebalance()
			}
		}()
		return cl
	}
	members := map[string]*kgo.Client{}
	for i := range 6 {
		name := fmt.Sprintf("m%d", i)
		members[name] = start(name)
	}
	prod := newClient(t, c.Addr(), kgo.DefaultProduceTopic("roll"))
	produced := 0
	produce := func(n int) {
		t.Helper()
		var recs []*kgo.Record
		for range n {
			recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", produced), Value: fmt.Appendf(nil, "v%d", produced)})
			produced++
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(600)
	order := rng.Perm(6)
	for _, i := range order {
		name := fmt.Sprintf("m%d", i)
		members[name].Close() // leaves the group
		produce(200)
		members[name] = start(name)
		time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
	}
	produce(200)
	consumed := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}
	testenv.WaitFor(ctx, t, 50*time.Millisecond, func() bool { return consumed() == produced },
		func() string { return fmt.Sprintf("consumed %d of %d records (seed %d)", consumed(), produced, seed) })
	// The members ran on the consumer protocol, all six of them.
	dreq := kmsg.NewPtrConsumerGroupDescribeRequest()
	dreq.Groups = []string{"rolling"}
	dresp, err := dreq.RequestWith(ctx, prod)
	if err != nil || dresp.Groups[0].ErrorCode != 0 || len(dresp.Groups[0].Members) != 6 {
		t.Fatalf("describe the group: %v %+v", err, dresp)
	}
	// Lag tools built on DescribeGroups see the members and their
	// partitions, as on Kafka, once the group has settled.
	var dg kadm.DescribedGroup
	covered := map[int32]bool{}
	testenv.WaitFor(ctx, t, 100*time.Millisecond, func() bool {
		described, err := adm.DescribeGroups(ctx, "rolling")
		if err != nil {
			t.Fatal(err)
		}
		dg, covered = described["rolling"], map[int32]bool{}
		for _, m := range dg.Members {
			if ca, ok := m.Assigned.AsConsumer(); ok {
				for _, at := range ca.Topics {
					for _, p := range at.Partitions {
						covered[p] = true
					}
				}
			}
		}
		return dg.Err == nil && dg.ProtocolType == "consumer" && len(dg.Members) == 6 && len(covered) == 12 && dg.State == "Stable"
	}, func() string {
		return fmt.Sprintf("DescribeGroups: %v, protocol type %q, state %s, %d members, %d partitions assigned",
			dg.Err, dg.ProtocolType, dg.State, len(dg.Members), len(covered))
	})
	own.mu.Lock()
	t.Logf("seed %d: %d partition assignments over %d restarts, all %d records consumed", seed, own.moves, len(order), produced)
	own.mu.Unlock()
	for _, cl := range members {
		cl.Close()
	}
}

// TestConsumerGroupStaticMember: a static member that leaves for a
// restart (epoch -2) keeps its partitions: the other member does not get
// them meanwhile, and when it comes back under a new member id it gets the
// same partitions at once; a second claim on its live instance is refused.
func TestConsumerGroupStaticMember(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newClient(t, c.Addr())
	if r, err := kadm.NewClient(cl).CreateTopic(ctx, 4, 1, nil, "t"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	var topicID [16]byte
	beat := func(member, instance string, epoch int32, owned []int32) *kmsg.ConsumerGroupHeartbeatResponse {
		t.Helper()
		r := heartbeat848(t, ctx, cl, func(r *kmsg.ConsumerGroupHeartbeatRequest) {
			r.Group, r.MemberID, r.MemberEpoch, r.SubscribedTopicNames = "static", member, epoch, []string{"t"}
			r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
			if len(owned) > 0 {
				r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{{TopicID: topicID, Partitions: owned}}
			}
			if instance != "" {
				r.InstanceID = &instance
			}
		})
		if r.Assignment != nil && len(r.Assignment.Topics) > 0 {
			topicID = r.Assignment.Topics[0].TopicID
		}
		return r
	}
	parts := func(r *kmsg.ConsumerGroupHeartbeatResponse) []int32 {
		if r.Assignment == nil || len(r.Assignment.Topics) == 0 {
			return nil
		}
		return r.Assignment.Topics[0].Partitions
	}
	// Two static members settle on two partitions each.
	a := beat("a1", "instance-a", 0, nil)
	b := beat("b1", "instance-b", 0, nil)
	a = beat("a1", "instance-a", a.MemberEpoch, parts(a)) // revokes two
	a = beat("a1", "instance-a", a.MemberEpoch, parts(a))
	b = beat("b1", "instance-b", b.MemberEpoch, nil) // gets them
	if len(parts(a)) != 2 || len(parts(b)) != 2 || b.ErrorCode != 0 {
		t.Fatalf("settled: a %v, b %v (%v)", parts(a), parts(b), kerr.ErrorForCode(b.ErrorCode))
	}
	aParts := parts(a)
	left := beat("a1", "instance-a", -2, nil)
	if left.ErrorCode != 0 || left.MemberEpoch != -2 {
		t.Fatalf("static leave: %v epoch %d", kerr.ErrorForCode(left.ErrorCode), left.MemberEpoch)
	}
	// The other member's heartbeats do not take them meanwhile.
	if b2 := beat("b1", "instance-b", b.MemberEpoch, parts(b)); len(parts(b2)) != 2 || b2.ErrorCode != 0 {
		t.Fatalf("while a restarts, b holds %v (%v)", parts(b2), kerr.ErrorForCode(b2.ErrorCode))
	}
	// Back under a new member id: the same partitions, at once.
	back := beat("a2", "instance-a", 0, nil)
	if back.ErrorCode != 0 || !slices.Equal(parts(back), aParts) {
		t.Fatalf("the returning static member got %v (%v), had %v", parts(back), kerr.ErrorForCode(back.ErrorCode), aParts)
	}
	if r := beat("a3", "instance-a", 0, nil); r.ErrorCode != kerr.UnreleasedInstanceID.Code {
		t.Fatalf("claiming a live instance: %v", kerr.ErrorForCode(r.ErrorCode))
	}
}
