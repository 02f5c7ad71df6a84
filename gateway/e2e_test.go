package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
)

func newClient(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.DisableIdempotentWrite()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// topicEnv starts a one-node cluster with one topic and returns it with a
// context, a client and an admin client, all cleaned up with the test.
func topicEnv(t *testing.T, topic string, partitions int32) (*testenv.Cluster, context.Context, *kgo.Client, *kadm.Client) {
	t.Helper()
	return topicEnvWith(t, testenv.Options{}, topic, partitions)
}

// topicEnvWith is topicEnv on a cluster with opts.
func topicEnvWith(t *testing.T, opts testenv.Options, topic string, partitions int32) (*testenv.Cluster, context.Context, *kgo.Client, *kadm.Client) {
	t.Helper()
	c := testenv.InProcess(t, 1, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	cl := newClient(t, c.Addr())
	adm := kadm.NewClient(cl)
	if r, err := adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	return c, ctx, cl, adm
}

// dataPaths are the ways a gateway asks its nodes, for tests to run on
// each: over NATS, over a node's stream (strata node's default), and
// directly in-process (strata dev).
var dataPaths = []struct {
	name string
	opts testenv.Options
}{{"nats", testenv.Options{}}, {"stream", testenv.Options{Streams: true}}, {"local", testenv.Options{LocalPath: true}}}

// TestFranzGoProduceConsume is the slice a user touches: create a topic,
// produce keyed records, consume them all back in order per partition;
// on each data path.
func TestFranzGoProduceConsume(t *testing.T) {
	for _, path := range dataPaths {
		t.Run(path.name, func(t *testing.T) { testFranzGoProduceConsume(t, path.opts) })
	}
}

func testFranzGoProduceConsume(t *testing.T, opts testenv.Options) {
	c := testenv.InProcess(t, 1, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClient(t, c.Addr()))
	res, err := adm.CreateTopic(ctx, 3, 1, nil, "orders")
	if err != nil || res.Err != nil {
		t.Fatalf("create topic: %v %v", err, res.Err)
	}
	if res, _ := adm.CreateTopic(ctx, 3, 1, nil, "orders"); !errors.Is(res.Err, kerr.TopicAlreadyExists) {
		t.Fatalf("create again: %v", res.Err)
	}
	if res, _ := adm.CreateTopic(ctx, 1, 1, nil, "bad name"); !errors.Is(res.Err, kerr.InvalidTopicException) {
		t.Fatalf("bad name: %v", res.Err)
	}
	if res, _ := adm.CreateTopic(ctx, 1, 1, map[string]*string{"no.such.config": kadm.StringPtr("1")}, "t2"); !errors.Is(res.Err, kerr.InvalidConfig) {
		t.Fatalf("bad config: %v", res.Err)
	}

	prod := newClient(t, c.Addr(), kgo.DefaultProduceTopic("orders"), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	const n = 1000
	want := map[int32][]string{}
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "key-%d", i%10), Value: fmt.Appendf(nil, "value-%d", i)})
	}
	results := prod.ProduceSync(ctx, recs...)
	if err := results.FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	keyPartition := map[string]int32{}
	for _, r := range results {
		want[r.Record.Partition] = append(want[r.Record.Partition], string(r.Record.Value))
		if p, ok := keyPartition[string(r.Record.Key)]; ok && p != r.Record.Partition {
			t.Fatalf("key %s in partitions %d and %d", r.Record.Key, p, r.Record.Partition)
		}
		keyPartition[string(r.Record.Key)] = r.Record.Partition
	}

	cons := newClient(t, c.Addr(), kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[int32][]string{}
	nextOffset := map[int32]int64{}
	for total := 0; total < n; {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("poll: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != nextOffset[r.Partition] {
				t.Fatalf("partition %d: offset %d, want %d", r.Partition, r.Offset, nextOffset[r.Partition])
			}
			nextOffset[r.Partition]++
			got[r.Partition] = append(got[r.Partition], string(r.Value))
			total++
		})
	}
	for p, vs := range want {
		if fmt.Sprint(vs) != fmt.Sprint(got[p]) {
			t.Fatalf("partition %d: consumed %d records differing from the %d produced", p, len(got[p]), len(vs))
		}
	}
	offs, err := adm.ListEndOffsets(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	offs.Each(func(o kadm.ListedOffset) { sum += o.Offset })
	if sum != n {
		t.Fatalf("end offsets sum to %d", sum)
	}
}
