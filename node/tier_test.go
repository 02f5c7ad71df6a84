package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/internal/rpc"
	"github.com/strata-io/strata/meta"
	"github.com/strata-io/strata/testenv"
	"github.com/strata-io/strata/tier"
)

// TestTieredTopicUploadsAndTrimsLocal: closed segments of a tiered topic
// go to the store and into the manifest; only then does local retention
// delete them. A topic without remote.storage.enable uploads nothing.
func TestTieredTopicUploadsAndTrimsLocal(t *testing.T) {
	store, err := tier.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := testenv.InProcess(t, 1, testenv.Options{Tier: store, MaintainInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(16<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for topic, configs := range map[string]map[string]*string{
		"tiered": {"remote.storage.enable": kadm.StringPtr("true"), "segment.bytes": kadm.StringPtr("65536"),
			"local.retention.bytes": kadm.StringPtr("65536")},
		"local": {"segment.bytes": kadm.StringPtr("65536")},
	} {
		if r, err := adm.CreateTopic(ctx, 1, 1, configs, topic); err != nil || r.Err != nil {
			t.Fatal(err, r.Err)
		}
	}
	value := []byte(strings.Repeat("v", 1000))
	for i := range 1000 {
		for _, topic := range []string{"tiered", "local"} {
			cl.Produce(ctx, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "%d", i), Value: value}, nil)
		}
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	member := c.Nodes[1].Member
	var segs int
	for {
		v := member.Server().FSM().View()
		s, err := v.TierSegments("tiered", 0)
		v.Close()
		if err != nil {
			t.Fatal(err)
		}
		segs = len(s)
		start, _ := listOffset(ctx, t, cl, "tiered", -4)
		// ~1 MB in 64 KiB segments: about 15 closed, all but ~1 of them
		// uploaded and deleted locally.
		if segs >= 12 && start > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d segments recorded, local start %d", segs, start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Uploads finish in any order; once they all have, the manifest has
	// no gaps.
	entries, next := waitGapFree(ctx, t, member, "tiered")
	for _, e := range entries {
		for _, suffix := range []string{".log", ".index", ".timeindex", ".epochs", ".producers"} {
			key := strings.TrimSuffix(e.ObjectKey, ".log") + suffix
			r, err := store.Get(ctx, key, 0, -1)
			if err != nil {
				t.Fatalf("object %s: %v", key, err)
			}
			r.Close()
		}
	}
	// Nothing left the disk before it was recorded.
	if start, _ := listOffset(ctx, t, cl, "tiered", -4); start > next {
		t.Fatalf("local log starts at %d, past the manifest's end %d", start, next)
	}
	objects := 0
	store.List(ctx, "", func(o tier.Object) error {
		if !strings.HasPrefix(o.Key, "tiered-") {
			t.Errorf("object of an untiered topic: %s", o.Key)
		}
		objects++
		return nil
	})
	if objects < 5*len(entries) {
		t.Fatalf("%d objects for %d segments (log, index, timeindex, epochs, producers each)", objects, len(entries))
	}

	// Turning tiering on for a topic already open uploads its closed
	// segments too: config changes reach open logs.
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "remote.storage.enable", Value: kadm.StringPtr("true")}}, "local"); err != nil {
		t.Fatal(err)
	}
	for {
		v := member.Server().FSM().View()
		s, _ := v.TierSegments("local", 0)
		v.Close()
		if len(s) >= 12 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("after enabling tiering: %d segments recorded", len(s))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitGapFree waits until a partition's manifest has no gaps (uploads run
// concurrently and finish in any order) and returns it and its end.
func waitGapFree(ctx context.Context, t *testing.T, m *meta.Member, topic string) ([]meta.TierSegment, int64) {
	t.Helper()
	for {
		v := m.Server().FSM().View()
		entries, err := v.TierSegments(topic, 0)
		v.Close()
		if err != nil {
			t.Fatal(err)
		}
		next, gap := int64(0), false
		for _, e := range entries {
			if e.BaseOffset != next {
				gap = true
				break
			}
			next = e.LastOffset + 1
		}
		if !gap {
			return entries, next
		}
		if ctx.Err() != nil {
			t.Fatalf("manifest still has a gap at %d", next)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTierStatusPastMaxPayload: each node's status answer, bigger than a
// NATS message here, comes whole; a node that is down is named missing.
func TestTierStatusPastMaxPayload(t *testing.T) {
	const partitions = 60
	c, ctx := tieredTopic(t, 3, partitions, testenv.Options{NATSMaxPayload: 2 << 10})
	var err error
	count := func(st gateway.TierStatus) (n int) {
		for _, r := range st.Nodes {
			n += len(r.Partitions)
		}
		return n
	}
	var st gateway.TierStatus
	for {
		st, err = c.Gateway.TierStatus(ctx)
		if err == nil && len(st.Nodes) == 3 && count(st) == partitions {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("tier status %+v, %v: want three nodes and %d partitions", st, err, partitions)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if body, _ := json.Marshal(st.Nodes[0]); len(body) <= 2<<10 {
		t.Fatalf("node 1's status is %d bytes: it would fit one message", len(body))
	}

	c.StopNode(3)
	start := time.Now()
	st, err = c.Gateway.TierStatus(ctx)
	if err != nil || len(st.Nodes) != 2 || !slices.Equal(st.Missing, []int32{3}) {
		t.Fatalf("with node 3 down: %+v, %v", st, err)
	}
	t.Logf("status with a node down took %v", time.Since(start))
}

// TestTierLsPastSilentMember: a member of the ls queue that never
// answers (a node deaf to NATS) does not fail an ls: it is asked again.
func TestTierLsPastSilentMember(t *testing.T) {
	c, _ := tieredTopic(t, 1, 1, testenv.Options{})
	silent, err := c.Conn().QueueSubscribe(rpc.TierSubject("test", "ls"), rpc.TierQueue, func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Unsubscribe()
	mux := http.NewServeMux()
	c.Gateway.RegisterAdmin(mux)
	pastSilent(t, silent, 2, func(i int) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/tier/ls?topic=tiered", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("ls %d: %d %s", i, rec.Code, rec.Body.Bytes())
		}
	})
}

// pastSilent asks (up to 40 times) until the silent queue member has
// taken n requests, each of which the gateway had to ask again.
func pastSilent(t *testing.T, silent *nats.Subscription, n int64, ask func(i int)) {
	t.Helper()
	for i := 0; ; i++ {
		if got, _ := silent.Delivered(); got >= n {
			return
		}
		if i == 40 {
			t.Fatal("the silent member took too few requests; the test did not exercise a retry")
		}
		ask(i)
	}
}

// tieredTopic starts a cluster of n nodes on a local-directory store,
// with topic "tiered" (remote storage on, one replica) of the given
// partitions; ctx bounds the test.
func tieredTopic(t *testing.T, n int, partitions int32, opts testenv.Options) (*testenv.Cluster, context.Context) {
	t.Helper()
	store, err := tier.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	opts.Tier = store
	c := testenv.InProcess(t, n, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	createTopic(ctx, t, newClient(t, c), partitions, 1, map[string]*string{"remote.storage.enable": kadm.StringPtr("true")}, "tiered")
	return c, ctx
}

// TestIdleTieredPartitionKeepsItsLastSegment is the scenario a user hit:
// a tiered topic with short local retention is produced to, then left
// idle. Local retention empties the disk, and every acknowledged record
// must still replay from offset 0. Before the fix, the segment that
// retention itself rolled (the partition's last data) was deleted before
// it was uploaded.
func TestIdleTieredPartitionKeepsItsLastSegment(t *testing.T) {
	const partitions, perPartition = 3, 2500 // ~2.5 MiB of 1 KiB records each
	store, err := tier.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := testenv.InProcess(t, 1, testenv.Options{Tier: store, MaintainInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl := newClient(t, c, kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	createTopic(ctx, t, cl, partitions, 1, map[string]*string{
		"remote.storage.enable": kadm.StringPtr("true"),
		"segment.bytes":         kadm.StringPtr("1048576"),
		"local.retention.bytes": kadm.StringPtr("2097152"),
		"local.retention.ms":    kadm.StringPtr("1000"),
	}, "idle")
	value := []byte(strings.Repeat("v", 1000))
	acked := make([]int64, partitions) // next offset expected per partition
	for i := range partitions * perPartition {
		p := int32(i % partitions)
		cl.Produce(ctx, &kgo.Record{Topic: "idle", Partition: p, Value: value}, func(r *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for p := range acked {
		acked[p] = perPartition
	}
	// Idle: wait until local retention has emptied every partition's disk
	// (the local log starts at its end).
	for p := range int32(partitions) {
		for {
			start, _, err := tryListOffset(ctx, cl, "idle", p, -4)
			if err == nil && start == acked[p] {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("partition %d: local log start %d, want %d (%v)", p, start, acked[p], err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Every acknowledged record replays from offset 0.
	consumer := newClient(t, c, kgo.ConsumeTopics("idle"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	next := make([]int64, partitions)
	total := 0
	for total < partitions*perPartition {
		fs := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("replayed %d of %d records (next offsets %v)", total, partitions*perPartition, next)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("partition %d at %d: %v", p, next[p], err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != next[r.Partition] {
				t.Fatalf("partition %d: offset %d, want %d", r.Partition, r.Offset, next[r.Partition])
			}
			next[r.Partition]++
			total++
		})
	}
}

// TestRestoreFromCorruptBucket: a restore whose bucket holds a corrupt or
// hostile manifest answers a clear error and creates nothing; once the
// object is right, the same restore succeeds (no half-made topic says
// "already restored").
func TestRestoreFromCorruptBucket(t *testing.T) {
	store, err := tier.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topic := meta.Topic{Name: "hist", ID: [16]byte{7, 7}, Partitions: 2, ReplicationFactor: 1}
	key := func(p int32) string {
		return fmt.Sprintf("%s%d/manifest.json", tier.TopicPrefix(topic.Name, topic.ID), p)
	}
	seg := meta.TierSegment{Topic: "hist", Partition: 0, LastOffset: 9, ObjectKey: tier.SegmentKey("hist", topic.ID, 0, 0, 0) + ".log"}
	if err := tier.WriteManifests(ctx, store, topic, 0, 0, []meta.TierSegment{seg}); err != nil {
		t.Fatal(err)
	}
	c := testenv.InProcess(t, 1, testenv.Options{Tier: store})
	restore := func() tier.RestoreReply {
		t.Helper()
		resp, err := c.Conn().Request(rpc.TierSubject("test", "restore"), []byte(`{"topic":"hist"}`), 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var reply tier.RestoreReply
		if err := json.Unmarshal(resp.Data, &reply); err != nil {
			t.Fatalf("restore reply %s: %v", resp.Data, err)
		}
		return reply
	}
	cl := newClient(t, c)
	for _, bad := range []string{
		`{"version": 1, "segm`, // cut short
		`{"version": 9}`,       // from a newer Strata
		// A segment whose object lies under another partition.
		fmt.Sprintf(`{"version":1,"topic":"hist","topic_id":"%x","partition":1,"segments":[{"base_offset":0,"last_offset":9,"object_key":%q}]}`,
			topic.ID, seg.ObjectKey),
	} {
		if err := store.Put(ctx, key(1), strings.NewReader(bad), int64(len(bad))); err != nil {
			t.Fatal(err)
		}
		if reply := restore(); !strings.Contains(reply.Error, "bad manifest") {
			t.Fatalf("restore from %q: %+v, want a bad manifest error", bad, reply)
		}
		if topics, err := kadm.NewClient(cl).ListTopics(ctx, "hist"); err != nil || topics.Has("hist") {
			t.Fatalf("a failed restore left topic hist: %v %v", topics, err)
		}
	}
	if err := store.Delete(ctx, key(1)); err != nil { // partition 1 never uploaded
		t.Fatal(err)
	}
	if reply := restore(); reply.Error != "" || reply.Already || reply.Segments != 1 {
		t.Fatalf("restore once the bucket is right: %+v", reply)
	}
}

// TestFollowerBehindLocalStartKeepsProducerState: a follower that comes
// back behind the leader's local log start on a tiered partition starts
// its log at the end of an uploaded segment, with the idempotent
// producers' state uploaded beside it. Made leader, it answers a
// producer's retry of a batch it never held locally as the duplicate it
// is, at the batch's offset. Without that state it wrote the batch again
// (the fault suite found it, seed 11001).
func TestFollowerBehindLocalStartKeepsProducerState(t *testing.T) {
	store, err := tier.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := testenv.InProcess(t, 3, testenv.Options{Tier: store, Cuttable: true, MaintainInterval: 50 * time.Millisecond,
		ReplicaLagMax: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl := newClient(t, c, testenv.NamedTopics)
	createTopic(ctx, t, cl, 1, 2, map[string]*string{"remote.storage.enable": kadm.StringPtr("true"),
		"segment.bytes": kadm.StringPtr("1024"), "local.retention.bytes": kadm.StringPtr("1024"),
		"retention.ms": kadm.StringPtr("-1")}, "idem") // the test's batches are stamped 1970
	waitISR(ctx, t, c, "idem", 2)
	p := partitions(t, c, "idem")[0]
	leader := p.Leader
	follower := p.Replicas[slices.IndexFunc(p.Replicas, func(id int32) bool { return id != leader })]

	initReq := kmsg.NewPtrInitProducerIDRequest()
	initReq.TransactionTimeoutMillis, initReq.ProducerID, initReq.ProducerEpoch = 60000, -1, -1
	ir, err := initReq.RequestWith(ctx, cl)
	if err != nil || ir.ErrorCode != 0 {
		t.Fatal(err, ir)
	}
	produce := func(batch []byte) int64 {
		t.Helper()
		var last error
		for {
			r, err := testenv.ProduceRequest("idem", -1, batch).RequestWith(ctx, cl)
			if err != nil {
				t.Fatalf("produce: %v (the last answer: %v)", err, last)
			}
			rp := r.Topics[0].Partitions[0]
			if rp.ErrorCode == 0 {
				return rp.BaseOffset
			}
			last = kerr.ErrorForCode(rp.ErrorCode)
			if ctx.Err() != nil {
				t.Fatalf("produce: %v", last)
			}
			time.Sleep(50 * time.Millisecond) // the ISR shrinks, a leader is elected
		}
	}

	c.Disconnect(follower)
	const batches = 20
	var last int64
	for seq := range int32(batches) {
		last = produce(testenv.IdempotentBatch(ir.ProducerID, ir.ProducerEpoch, seq))
	}
	for range 200 { // the producer's batches leave the leader's disk
		produce(testenv.Batch([]byte("filler")))
	}
	for {
		if start, _ := listOffset(ctx, t, cl, "idem", -4); start > last+1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the leader's local log never moved past the producer's batches")
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Reconnect(follower)
	waitISR(ctx, t, c, "idem", 2)
	if start := c.Nodes[follower].Node.LocalLogStartForTest("idem", 0); start <= last+1 {
		t.Fatalf("the follower's log starts at %d: it holds the producer's batches (last at %d)", start, last)
	}
	c.StopNode(leader)
	for partitions(t, c, "idem")[0].Leader != follower {
		if ctx.Err() != nil {
			t.Fatal("the follower was not made leader")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := produce(testenv.IdempotentBatch(ir.ProducerID, ir.ProducerEpoch, batches-1)); got != last {
		t.Fatalf("the retry of the producer's last batch landed at offset %d, it was written at %d: written twice", got, last)
	}
	if got, end := produce(testenv.IdempotentBatch(ir.ProducerID, ir.ProducerEpoch, batches)), last+1+200; got != end {
		t.Fatalf("the producer's next batch landed at %d, want %d", got, end)
	}
}
