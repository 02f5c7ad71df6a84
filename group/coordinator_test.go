package group

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/meta"
)

type memStore struct {
	mu      sync.Mutex
	offsets map[string][]meta.Offset
}

func (s *memStore) CommitOffsets(_ context.Context, offs []meta.Offset) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range offs {
		s.offsets[o.Group] = append(s.offsets[o.Group], o)
	}
	return nil
}

func (s *memStore) GroupOffsets(_ context.Context, g string) ([]meta.Offset, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offsets[g], nil
}

func (s *memStore) Groups(context.Context) ([]string, error) { return nil, nil }

func (s *memStore) DeleteOffsets(_ context.Context, g, _ string, _ []int32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.offsets, g)
	return nil
}

func join(c *Coordinator, member, instance string, sessionMs int32) *kmsg.JoinGroupResponse {
	req := kmsg.NewPtrJoinGroupRequest()
	req.SetVersion(7)
	req.Group, req.MemberID, req.ProtocolType = "g", member, "consumer"
	req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = sessionMs, 5000
	if instance != "" {
		req.InstanceID = &instance
	}
	req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte("m-" + member)}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.JoinGroup(ctx, req, "client", "")
}

func heartbeat(c *Coordinator, member string, gen int32) int16 {
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group, req.MemberID, req.Generation = "g", member, gen
	return c.Heartbeat(req).ErrorCode
}

func syncGroup(c *Coordinator, member string, gen int32, assign map[string]string) *kmsg.SyncGroupResponse {
	req := kmsg.NewPtrSyncGroupRequest()
	req.Group, req.MemberID, req.Generation = "g", member, gen
	for m, a := range assign {
		req.GroupAssignment = append(req.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: m, MemberAssignment: []byte(a)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.SyncGroup(ctx, req)
}

func wantCode(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	w := int16(0)
	if want != nil {
		w = want.Code
	}
	if got != w {
		t.Fatalf("%s: %v, want %v", what, kerr.ErrorForCode(got), want)
	}
}

// TestRebalanceAndFencing walks one group through joins, a leave and a
// session timeout, checking generation fencing at every step.
func TestRebalanceAndFencing(t *testing.T) {
	store := &memStore{offsets: map[string][]meta.Offset{}}
	c := New(store, nil)
	defer c.Close()

	a := join(c, "", "", 10000)
	wantCode(t, "first join", a.ErrorCode, nil)
	if a.Generation != 1 || a.LeaderID != a.MemberID || len(a.Members) != 1 {
		t.Fatalf("first join: %+v", a)
	}
	if s := syncGroup(c, a.MemberID, 1, map[string]string{a.MemberID: "p0,p1"}); s.ErrorCode != 0 || string(s.MemberAssignment) != "p0,p1" {
		t.Fatalf("leader sync: %+v", s)
	}
	wantCode(t, "heartbeat", heartbeat(c, a.MemberID, 1), nil)
	wantCode(t, "stale generation", heartbeat(c, a.MemberID, 0), kerr.IllegalGeneration)
	wantCode(t, "unknown member", heartbeat(c, "nobody", 1), kerr.UnknownMemberID)

	// B joins: A hears REBALANCE_IN_PROGRESS, rejoins; both move to gen 2.
	bDone := make(chan *kmsg.JoinGroupResponse, 1)
	go func() { bDone <- join(c, "", "", 10000) }()
	deadline := time.Now().Add(5 * time.Second)
	for heartbeat(c, a.MemberID, 1) != kerr.RebalanceInProgress.Code {
		if time.Now().After(deadline) {
			t.Fatal("no REBALANCE_IN_PROGRESS after a new member joined")
		}
		time.Sleep(10 * time.Millisecond)
	}
	a2 := join(c, a.MemberID, "", 10000)
	b := <-bDone
	if a2.Generation != 2 || b.Generation != 2 || a2.LeaderID != a.MemberID || len(a2.Members) != 2 || len(b.Members) != 0 {
		t.Fatalf("gen 2: leader %+v follower %+v", a2, b)
	}
	// The follower's sync waits for the leader's assignment.
	bSync := make(chan *kmsg.SyncGroupResponse, 1)
	go func() { bSync <- syncGroup(c, b.MemberID, 2, nil) }()
	syncGroup(c, a.MemberID, 2, map[string]string{a.MemberID: "p0", b.MemberID: "p1"})
	if s := <-bSync; s.ErrorCode != 0 || string(s.MemberAssignment) != "p1" {
		t.Fatalf("follower sync: %+v", s)
	}

	// Offsets: a commit from the old generation is fenced.
	commit := func(member string, gen int32) int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.MemberID, req.Generation = "g", member, gen
		req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 42}}}}
		return c.OffsetCommit(context.Background(), req).Topics[0].Partitions[0].ErrorCode
	}
	wantCode(t, "commit from gen 1", commit(a.MemberID, 1), kerr.IllegalGeneration)
	wantCode(t, "commit from a stranger", commit("", -1), kerr.UnknownMemberID)
	wantCode(t, "commit", commit(b.MemberID, 2), nil)
	freq := kmsg.NewPtrOffsetFetchRequest()
	freq.Group = "g"
	freq.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0, 1}}}
	fr := c.OffsetFetch(context.Background(), freq)
	if p := fr.Topics[0].Partitions; p[0].Offset != 42 || p[1].Offset != -1 {
		t.Fatalf("offset fetch: %+v", p)
	}

	// B leaves: A rejoins alone at generation 3.
	lreq := kmsg.NewPtrLeaveGroupRequest()
	lreq.SetVersion(0)
	lreq.Group, lreq.MemberID = "g", b.MemberID
	wantCode(t, "leave", c.LeaveGroup(lreq).ErrorCode, nil)
	wantCode(t, "heartbeat after a leave", heartbeat(c, a.MemberID, 2), kerr.RebalanceInProgress)
	if a3 := join(c, a.MemberID, "", 10000); a3.Generation != 3 || len(a3.Members) != 1 {
		t.Fatalf("after leave: %+v", a3)
	}
}

// TestSessionTimeoutAndStaticMembership: a silent member is dropped after
// its session timeout; a static member rejoining under its instance id
// replaces (fences) its old member id.
func TestSessionTimeoutAndStaticMembership(t *testing.T) {
	c := New(&memStore{offsets: map[string][]meta.Offset{}}, nil)
	defer c.Close()
	s1 := join(c, "", "instance-1", 1000)
	syncGroup(c, s1.MemberID, s1.Generation, map[string]string{s1.MemberID: "x"})
	// The same instance restarts: a new member id, the old one fenced.
	s2 := join(c, "", "instance-1", 1000)
	if s2.ErrorCode != 0 || s2.MemberID == s1.MemberID {
		t.Fatalf("static rejoin: %+v", s2)
	}
	if code := heartbeat(c, s1.MemberID, s1.Generation); code == 0 {
		t.Fatal("the replaced member id still heartbeats")
	}
	syncGroup(c, s2.MemberID, s2.Generation, map[string]string{s2.MemberID: "x"})
	// Silence: the session times out and the member is gone.
	time.Sleep(1500 * time.Millisecond)
	wantCode(t, "after session timeout", heartbeat(c, s2.MemberID, s2.Generation), kerr.UnknownMemberID)
}

// TestDescribeGroupKnownByOffsets: a group with committed offsets and no
// members (after a controller change, say) is Empty, as ListGroups and
// Kafka say; a group never seen is Dead.
func TestDescribeGroupKnownByOffsets(t *testing.T) {
	store := &memStore{offsets: map[string][]meta.Offset{"billing": {{Group: "billing", Topic: "t", Partition: 0, Offset: 5}}}}
	c := New(store, nil)
	defer c.Close()
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{"billing", "never"}
	resp := c.DescribeGroups(context.Background(), req)
	if got := resp.Groups[0]; got.State != "Empty" || got.ProtocolType != "consumer" {
		t.Errorf("billing: state %q, protocol type %q; want Empty, consumer", got.State, got.ProtocolType)
	}
	if got := resp.Groups[1]; got.State != "Dead" {
		t.Errorf("never: state %q, want Dead", got.State)
	}
}

// pendingStore has offsets a transaction committed but has not completed.
type pendingStore struct {
	memStore
	pending map[meta.TxnPartition]bool
}

func (s *pendingStore) PendingTxnOffsets(context.Context, string) (map[meta.TxnPartition]bool, error) {
	return s.pending, nil
}

// TestOffsetFetchRequireStable: KIP-447. A partition whose offsets a
// transaction has committed but not completed answers
// UNSTABLE_OFFSET_COMMIT to a fetch that requires stable offsets (the
// client retries), and its committed offset to one that does not.
func TestOffsetFetchRequireStable(t *testing.T) {
	s := &pendingStore{memStore: memStore{offsets: map[string][]meta.Offset{}}, pending: map[meta.TxnPartition]bool{{Topic: "t", Partition: 1}: true}}
	c := New(s, nil)
	defer c.Close()
	if err := s.CommitOffsets(context.Background(), []meta.Offset{{Group: "g", Topic: "t", Partition: 0, Offset: 5}, {Group: "g", Topic: "t", Partition: 1, Offset: 7}}); err != nil {
		t.Fatal(err)
	}
	fetch := func(stable bool) []kmsg.OffsetFetchResponseTopicPartition {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.SetVersion(7)
		req.Group, req.RequireStable = "g", stable
		req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0, 1}}}
		return c.OffsetFetch(context.Background(), req).Topics[0].Partitions
	}
	got := fetch(true)
	if got[0].ErrorCode != 0 || got[0].Offset != 5 || got[1].ErrorCode != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("require_stable: %+v", got)
	}
	if got = fetch(false); got[1].ErrorCode != 0 || got[1].Offset != 7 {
		t.Fatalf("without require_stable: %+v", got)
	}
}
