package group

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/meta"
)

func shareCoordinator(t *testing.T, topics map[string]topicInfo) *Coordinator {
	c := New(&memStore{offsets: map[string][]meta.Offset{}}, nil)
	t.Cleanup(c.Close)
	c.topicSource = func() map[string]topicInfo { return topics }
	return c
}

func shareBeat(c *Coordinator, group, member string, epoch int32, topics []string) *kmsg.ShareGroupHeartbeatResponse {
	req := kmsg.NewPtrShareGroupHeartbeatRequest()
	req.GroupID, req.MemberID, req.MemberEpoch, req.SubscribedTopicNames = group, member, epoch, topics
	return c.ShareGroupHeartbeat(req, "client", "host")
}

// TestShareGroupHeartbeatErrors: the share heartbeat's answers to what a
// client gets wrong, and to a group id another kind of group holds, are
// Kafka's.
func TestShareGroupHeartbeatErrors(t *testing.T) {
	c := shareCoordinator(t, map[string]topicInfo{"t": {"t", [16]byte{1}, 4}})
	for _, tc := range []struct {
		what string
		resp *kmsg.ShareGroupHeartbeatResponse
		want *kerr.Error
	}{
		{"no member id", shareBeat(c, "q", "", 0, []string{"t"}), kerr.InvalidRequest},
		{"a join without a subscription", shareBeat(c, "q", "m", 0, nil), kerr.InvalidRequest},
		{"an unknown member", shareBeat(c, "q", "nobody", 3, nil), kerr.UnknownMemberID},
	} {
		if tc.resp.ErrorCode != tc.want.Code {
			t.Fatalf("%s: %v, want %s", tc.what, kerr.ErrorForCode(tc.resp.ErrorCode), tc.want.Message)
		}
	}
	j := shareBeat(c, "q", "m", 0, []string{"t"})
	if j.ErrorCode != 0 || j.MemberEpoch < 1 || j.Assignment == nil || len(j.Assignment.TopicPartitions[0].Partitions) != 4 {
		t.Fatalf("join: %v epoch %d %+v", kerr.ErrorForCode(j.ErrorCode), j.MemberEpoch, j.Assignment)
	}
	if r := shareBeat(c, "q", "m", j.MemberEpoch+1, nil); r.ErrorCode != kerr.FencedMemberEpoch.Code {
		t.Fatalf("an epoch ahead: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	// A group id is one kind at a time.
	ch := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	ch.Group, ch.MemberID, ch.SubscribedTopicNames, ch.Topics = "q", "c1", []string{"t"}, []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	if r := c.ConsumerGroupHeartbeat(ch, "client", "host"); r.ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("consumer heartbeat to a share group: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	jr := kmsg.NewPtrJoinGroupRequest()
	jr.Group, jr.ProtocolType, jr.SessionTimeoutMillis, jr.RebalanceTimeoutMillis = "q", "consumer", 10000, 10000
	jr.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
	if r := c.JoinGroup(context.Background(), jr, "client", ""); r.ErrorCode != kerr.InconsistentGroupProtocol.Code {
		t.Fatalf("classic join of a share group: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	ch.Group = "cg"
	if r := c.ConsumerGroupHeartbeat(ch, "client", "host"); r.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(r.ErrorCode))
	}
	if r := shareBeat(c, "cg", "m", 0, []string{"t"}); r.ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("share heartbeat to a consumer group: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	// Describe, list, leave.
	d := c.ShareGroupDescribe(&kmsg.ShareGroupDescribeRequest{GroupIDs: []string{"q", "cg", "none"}})
	if g := d.Groups[0]; g.ErrorCode != 0 || len(g.Members) != 1 || g.Assignor != "simple" || g.GroupState != "Stable" {
		t.Fatalf("describe: %+v", g)
	}
	if d.Groups[1].ErrorCode != kerr.GroupIDNotFound.Code || d.Groups[2].ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("describe another kind, and none: %v %v", kerr.ErrorForCode(d.Groups[1].ErrorCode), kerr.ErrorForCode(d.Groups[2].ErrorCode))
	}
	l := c.ListGroups(context.Background(), &kmsg.ListGroupsRequest{TypesFilter: []string{"share"}})
	if len(l.Groups) != 1 || l.Groups[0].Group != "q" || l.Groups[0].GroupType != "share" {
		t.Fatalf("list share groups: %+v", l.Groups)
	}
	if r := shareBeat(c, "q", "m", -1, nil); r.ErrorCode != 0 || r.MemberEpoch != -1 {
		t.Fatalf("leave: %v %d", kerr.ErrorForCode(r.ErrorCode), r.MemberEpoch)
	}
}

// TestShareGroupAssignment joins, leaves and resubscribes random members
// over topics of 1 to 6 partitions, heartbeating everyone after each
// change, and checks the simple assignor's promises: every partition of
// a subscribed topic goes to someone; each member gets partitions only of
// its topics, and some of each when there are any; members share a topic
// evenly (within one partition) while they are no more than its
// partitions, and then each gets exactly one.
func TestShareGroupAssignment(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 11))
	topics := map[string]topicInfo{}
	for i, parts := range []int32{1, 2, 3, 6} {
		name := fmt.Sprintf("t%d", i)
		topics[name] = topicInfo{name, [16]byte{byte(i + 1)}, parts}
	}
	names := []string{"t0", "t1", "t2", "t3"}
	c := shareCoordinator(t, topics)
	epochs := map[string]int32{}
	subs := map[string][]string{}
	held := map[string]assignment{}
	send := func(m string, epoch int32, s []string) {
		t.Helper()
		r := shareBeat(c, "q", m, epoch, s)
		if r.ErrorCode != 0 {
			t.Fatalf("seed %d: %s heartbeats: %v", seed, m, kerr.ErrorForCode(r.ErrorCode))
		}
		epochs[m] = r.MemberEpoch
		if r.Assignment != nil {
			a := assignment{}
			for _, tp0 := range r.Assignment.TopicPartitions {
				for _, p := range tp0.Partitions {
					a.add(tp{tp0.TopicID, p})
				}
			}
			held[m] = a
		}
	}
	for step := range 300 {
		m := fmt.Sprintf("m%d", rng.IntN(10))
		switch _, in := epochs[m]; {
		case !in:
			s := []string{} // may stay empty: subscribed to nothing
			for _, n := range names {
				if rng.IntN(2) == 0 {
					s = append(s, n)
				}
			}
			send(m, 0, s)
			subs[m] = s
		case rng.IntN(3) == 0:
			shareBeat(c, "q", m, -1, nil)
			delete(epochs, m)
			delete(subs, m)
			delete(held, m)
		default:
			s := []string{names[rng.IntN(len(names))]}
			send(m, epochs[m], s)
			subs[m] = s
		}
		for range 2 {
			for mm := range epochs {
				send(mm, epochs[mm], nil)
			}
		}
		for _, n := range names {
			ti := topics[n]
			var members []string
			for mm, s := range subs {
				if slices.Contains(s, n) {
					members = append(members, mm)
				}
			}
			covered := map[int32]bool{}
			minN, maxN := 1<<30, 0
			for _, mm := range members {
				k := len(held[mm][ti.id])
				minN, maxN = min(minN, k), max(maxN, k)
				for _, p := range held[mm][ti.id] {
					covered[p] = true
				}
			}
			for mm, a := range held {
				if len(a[ti.id]) > 0 && !slices.Contains(subs[mm], n) {
					t.Fatalf("seed %d step %d: %s holds %s without subscribing", seed, step, mm, n)
				}
			}
			if len(members) == 0 {
				continue
			}
			if len(covered) != int(ti.partitions) || minN == 0 {
				t.Fatalf("seed %d step %d: %s: %d of %d partitions covered, a member with %d", seed, step, n, len(covered), ti.partitions, minN)
			}
			if len(members) <= int(ti.partitions) && maxN-minN > 1 || len(members) > int(ti.partitions) && maxN != 1 {
				t.Fatalf("seed %d step %d: %s over %d members: between %d and %d partitions each", seed, step, n, len(members), minN, maxN)
			}
		}
	}
}

// TestShareGroupSessionExpiry: a member silent past the session timeout
// is removed, and its partitions go to the rest on their next heartbeat.
func TestShareGroupSessionExpiry(t *testing.T) {
	c := shareCoordinator(t, map[string]topicInfo{"t": {"t", [16]byte{1}, 2}})
	a := shareBeat(c, "q", "a", 0, []string{"t"})
	b := shareBeat(c, "q", "b", 0, []string{"t"})
	a = shareBeat(c, "q", "a", a.MemberEpoch, nil)
	if a.Assignment == nil || len(a.Assignment.TopicPartitions[0].Partitions) != 1 {
		t.Fatalf("two members share two partitions: a has %+v", a.Assignment)
	}
	c.mu.Lock()
	g := c.shares["q"]
	g.members["b"].lastSeen = time.Now().Add(-DefaultShareSessionTimeout - time.Second) // b went silent
	c.expireSharesLocked(g, time.Now(), c.topicsNow)
	c.mu.Unlock()
	a = shareBeat(c, "q", "a", a.MemberEpoch, nil)
	if a.Assignment == nil || len(a.Assignment.TopicPartitions[0].Partitions) != 2 {
		t.Fatalf("b's partition did not come to a: %+v", a.Assignment)
	}
	if r := shareBeat(c, "q", "b", b.MemberEpoch, nil); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("the expired member heartbeats: %v", kerr.ErrorForCode(r.ErrorCode))
	}
}
