package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/testenv"
)

// TestConsumerOffsetsTopic commits random offsets for random groups and
// reads them back as a lag monitor does, by consuming __consumer_offsets
// and decoding Kafka's offset-commit records: the latest record of each
// key holds the latest commit, while the consumer tails the topic through
// more commits. The topic is listed as internal, left out of regex
// subscriptions, places a group in Kafka's partition for it, and refuses
// writes with Kafka's errors.
func TestConsumerOffsetsTopic(t *testing.T) {
	seed := testenv.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 5))
	c := testenv.InProcess(t, 1, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl := newClient(t, c.Addr())
	adm := kadm.NewClient(cl)
	for _, topic := range []string{"orders", "payments"} {
		if r, err := adm.CreateTopic(ctx, 4, 1, nil, topic); err != nil || r.Err != nil {
			t.Fatal(err, r.Err)
		}
	}

	// Listed as internal, in Kafka's shape.
	md, err := adm.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ot, ok := md.Topics["__consumer_offsets"]
	if !ok || !ot.IsInternal || len(ot.Partitions) != 50 {
		t.Fatalf("__consumer_offsets in Metadata: %v internal %v, %d partitions", ok, ot.IsInternal, len(ot.Partitions))
	}
	for _, p := range ot.Partitions {
		if !slices.Contains(p.Replicas, p.Leader) {
			t.Fatalf("partition %d: leader %d not among replicas %v", p.Partition, p.Leader, p.Replicas)
		}
	}
	regex := newClient(t, c.Addr(), kgo.ConsumeTopics(".*"), kgo.ConsumeRegex())
	var topics []string
	testenv.WaitFor(ctx, t, 50*time.Millisecond, func() bool {
		regex.ForceMetadataRefresh()
		topics = regex.GetConsumeTopics()
		return len(topics) == 2
	}, func() string { return fmt.Sprintf("regex subscription: %v", topics) })
	if slices.Contains(topics, "__consumer_offsets") {
		t.Fatalf("a regex subscription matched the internal topic: %v", topics)
	}

	type key struct {
		group, topic string
		partition    int32
	}
	want := map[key]int64{}
	commits := 0
	groups := []string{"my-group", "billing", "grüße", "reporting", "etl"}
	commit := func(n int) {
		t.Helper()
		for range n {
			g := groups[rng.IntN(len(groups))]
			offs := kadm.Offsets{}
			for range 1 + rng.IntN(3) {
				topic := []string{"orders", "payments"}[rng.IntN(2)]
				p := rng.Int32N(4)
				o := rng.Int64N(1_000_000)
				offs.Add(kadm.Offset{Topic: topic, Partition: p, At: o, LeaderEpoch: -1})
			}
			resp, err := adm.CommitOffsets(ctx, g, offs)
			if err == nil {
				err = resp.Error()
			}
			if err != nil {
				t.Fatal(err)
			}
			offs.Each(func(o kadm.Offset) {
				want[key{g, o.Topic, o.Partition}] = o.At
				commits++
			})
		}
	}
	commit(40)

	// The partition's ends count the commits written to them.
	ends, err := adm.ListEndOffsets(ctx, "__consumer_offsets")
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		sum += o.Offset
	})
	if sum != int64(commits) {
		t.Fatalf("__consumer_offsets ends add up to %d, %d offsets committed", sum, commits)
	}

	// A lag monitor's consumer, from the start.
	cons := newClient(t, c.Addr(), kgo.ConsumeTopics("__consumer_offsets"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500*time.Millisecond))
	got := map[key]int64{}
	read := func(what string) {
		t.Helper()
		for !maps.Equal(got, want) {
			fs := cons.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("%s: read %d keys, want %d (seed %d)", what, len(got), len(want), seed)
			}
			if err := fs.Err0(); err != nil {
				t.Fatal(err)
			}
			fs.EachRecord(func(r *kgo.Record) {
				var k kmsg.OffsetCommitKey
				var v kmsg.OffsetCommitValue
				if err := k.ReadFrom(r.Key); err != nil || k.Version != 1 {
					t.Fatalf("offset %d: key version %d: %v", r.Offset, k.Version, err)
				}
				if r.Value == nil { // a tombstone: the key's offsets were deleted
					delete(got, key{k.Group, k.Topic, k.Partition})
					return
				}
				if err := v.ReadFrom(r.Value); err != nil || v.Version != 3 {
					t.Fatalf("offset %d: value version %d: %v", r.Offset, v.Version, err)
				}
				if exp := kafkaPartition(k.Group); r.Partition != exp {
					t.Fatalf("group %s in partition %d, Kafka puts it in %d", k.Group, r.Partition, exp)
				}
				got[key{k.Group, k.Topic, k.Partition}] = v.Offset
			})
		}
	}
	read("from the start")
	commit(25) // tailed as they come
	read("tailing")
	// A deleted group leaves tombstones, as on Kafka: the monitor forgets
	// its offsets.
	gone := groups[rng.IntN(len(groups))]
	if resp, err := adm.DeleteGroups(ctx, gone); err != nil || resp.Error() != nil {
		t.Fatal(err, resp.Error())
	}
	for k := range want {
		if k.group == gone {
			delete(want, k)
		}
	}
	read("after group " + gone + " was deleted")

	// Writes are refused as Kafka refuses them.
	raw := newClient(t, c.Addr(), testenv.NamedTopics).Broker(1)
	presp, err := raw.Request(ctx, testenv.ProduceRequest("__consumer_offsets", -1, testenv.Batch([]byte("x"))))
	if err != nil {
		t.Fatal(err)
	}
	if code := presp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidTopicException.Code {
		t.Fatalf("produce to __consumer_offsets: %v", kerr.ErrorForCode(code))
	}
	// (kadm returns the topic's error as its own too.)
	if r, err := adm.DeleteTopic(ctx, "__consumer_offsets"); !errors.Is(r.Err, kerr.InvalidTopicException) {
		t.Fatalf("delete __consumer_offsets: %v %v", err, r.Err)
	}
	if r, err := adm.CreateTopic(ctx, 1, 1, nil, "__consumer_offsets"); !errors.Is(r.Err, kerr.TopicAlreadyExists) {
		t.Fatalf("create __consumer_offsets: %v %v", err, r.Err)
	}
}

// kafkaPartition is Kafka's __consumer_offsets partition for a group,
// computed here independently of the gateway: Java's String.hashCode
// over UTF-16 units, Kafka's Utils.abs, modulo 50.
func kafkaPartition(group string) int32 {
	var h int32
	for _, r := range group {
		if r >= 0x10000 {
			r -= 0x10000
			h = 31*h + int32(0xD800+(r>>10))
			h = 31*h + int32(0xDC00+(r&0x3FF))
			continue
		}
		h = 31*h + int32(r)
	}
	switch {
	case h == -1<<31:
		h = 0
	case h < 0:
		h = -h
	}
	return h % 50
}

// TestConsumerOffsetsGroupMetadata: a classic group's metadata reaches
// __consumer_offsets as on Kafka: a GroupMetadataKey (v2) record with its
// protocol, generation, leader and members with their assignments once a
// rebalance completes; a record with no members once the group empties;
// a tombstone once it is deleted.
func TestConsumerOffsetsGroupMetadata(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl := newClient(t, c.Addr())
	adm := kadm.NewClient(cl)
	if r, err := adm.CreateTopic(ctx, 4, 1, nil, "orders"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	const group = "readers"
	reader := newClient(t, c.Addr(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		"__consumer_offsets": {kafkaPartition(group): kgo.NewOffset().At(0)}}), kgo.FetchMaxWait(200*time.Millisecond))
	var latest *kmsg.GroupMetadataValue // nil after a tombstone
	seen := false
	// until reads the group's records until ok holds for the latest.
	until := func(what string, ok func() bool) {
		t.Helper()
		for !(seen && ok()) {
			if ctx.Err() != nil {
				t.Fatalf("%s: latest group metadata %+v", what, latest)
			}
			pctx, pcancel := context.WithTimeout(ctx, 300*time.Millisecond)
			fs := reader.PollFetches(pctx)
			pcancel()
			fs.EachRecord(func(r *kgo.Record) {
				if len(r.Key) < 2 || r.Key[1] != 2 { // an offset commit
					return
				}
				var k kmsg.GroupMetadataKey
				if err := k.ReadFrom(r.Key); err != nil || k.Group != group {
					t.Fatalf("group metadata key %+v: %v", k, err)
				}
				seen = true
				if r.Value == nil {
					latest = nil
					return
				}
				v := kmsg.NewGroupMetadataValue()
				if err := v.ReadFrom(r.Value); err != nil || v.Version != 3 {
					t.Fatalf("group metadata value version %d: %v", v.Version, err)
				}
				latest = &v
			})
		}
	}

	members := make([]*kgo.Client, 2)
	for i := range members {
		members[i] = newClient(t, c.Addr(), kgo.ConsumerGroup(group), kgo.ConsumeTopics("orders"), kgo.ClientID(fmt.Sprint("member-", i)))
	}
	until("two members", func() bool {
		if latest == nil || latest.ProtocolType != "consumer" || latest.Protocol == nil || latest.Leader == nil || len(latest.Members) != 2 {
			return false
		}
		assigned := 0
		for _, m := range latest.Members {
			if !strings.HasPrefix(m.ClientID, "member-") || m.SessionTimeoutMillis <= 0 {
				t.Fatalf("member %+v", m)
			}
			var a kmsg.ConsumerMemberAssignment
			if err := a.ReadFrom(m.Assignment); err != nil {
				t.Fatalf("member %s assignment: %v", m.MemberID, err)
			}
			for _, tp := range a.Topics {
				assigned += len(tp.Partitions)
			}
		}
		return assigned == 4 && latest.Generation >= 1
	})
	generation := latest.Generation
	for _, m := range members {
		m.Close() // leaves the group
	}
	until("empty", func() bool { return latest != nil && len(latest.Members) == 0 && latest.Generation >= generation })
	if resp, err := adm.DeleteGroups(ctx, group); err != nil || resp.Error() != nil {
		t.Fatal(err, resp.Error())
	}
	until("deleted", func() bool { return latest == nil })
}
