package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
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

// tieredFixture is a one-node cluster whose topic "replay" keeps about
// 128 KiB on disk and the rest in the store.
type tieredFixture struct {
	t      *testing.T
	ctx    context.Context
	c      *testenv.Cluster
	store  tier.Store
	cl     *kgo.Client
	adm    *kadm.Client
	values [][]byte
	ts0    time.Time
}

const replayTopic = "replay"

// gatewayReads: the gateway reads uploaded segments itself (else the node
// does).
func newTieredFixture(t *testing.T, store tier.Store, gatewayReads bool) *tieredFixture {
	c := testenv.InProcess(t, 1, testenv.Options{Tier: store, GatewayTier: gatewayReads, MaintainInterval: 50 * time.Millisecond})
	// A bound, not a target: a restore test builds, uploads, restores and
	// replays, and under -race on a loaded machine took over 90 s.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(16<<10), kgo.RecordRetries(1000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	f := &tieredFixture{t: t, ctx: ctx, c: c, store: store, cl: cl, adm: kadm.NewClient(cl), ts0: time.Now().Add(-time.Hour).Truncate(time.Millisecond)}
	if r, err := f.adm.CreateTopic(ctx, 1, 1, map[string]*string{
		"remote.storage.enable": kadm.StringPtr("true"), "segment.bytes": kadm.StringPtr("65536"),
		"local.retention.bytes": kadm.StringPtr("131072"),
	}, replayTopic); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	return f
}

// produce appends n records of 500-1500 random bytes, timestamped 10 ms
// apart from ts0, and remembers them.
func (f *tieredFixture) produce(n int) {
	rng := rand.New(rand.NewPCG(uint64(len(f.values)), 7))
	for range n {
		i := len(f.values)
		v := make([]byte, 500+rng.IntN(1000))
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		f.values = append(f.values, v)
		f.cl.Produce(f.ctx, &kgo.Record{Topic: replayTopic, Key: fmt.Appendf(nil, "%d", i), Value: v,
			Timestamp: f.ts0.Add(time.Duration(i) * 10 * time.Millisecond)}, func(r *kgo.Record, err error) {
			if err != nil {
				f.t.Errorf("produce %d: %v", i, err)
			}
		})
	}
	if err := f.cl.Flush(f.ctx); err != nil {
		f.t.Fatal(err)
	}
}

// listOffset answers a ListOffsets query (a Kafka special timestamp or a
// time) for partition 0.
func (f *tieredFixture) listOffset(timestamp int64) (int64, int16) {
	return listOffset(f.ctx, f.t, f.cl, replayTopic, timestamp)
}

// listOffset asks ListOffsets v8 for a topic's partition 0 at timestamp
// (-4: the local log's start, which kadm does not ask for).
func listOffset(ctx context.Context, t testing.TB, cl *kgo.Client, topic string, timestamp int64) (int64, int16) {
	offset, code, err := tryListOffset(ctx, cl, topic, 0, timestamp)
	if err != nil {
		t.Fatal(err)
	}
	return offset, code
}

func tryListOffset(ctx context.Context, cl *kgo.Client, topic string, partition int32, timestamp int64) (int64, int16, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.Version = 8
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = partition, timestamp, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, 0, err
	}
	p := resp.Topics[0].Partitions[0]
	return p.Offset, p.ErrorCode, nil
}

// rawFetch fetches partition 0 from offset once.
func (f *tieredFixture) rawFetch(offset int64) kmsg.FetchResponseTopicPartition {
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.MaxWaitMillis, req.MaxBytes, req.ReplicaID = 12, 100, 1<<20, -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = replayTopic
	// The client sends its newest version, which names topics by id.
	topics, err := f.adm.ListTopics(f.ctx, replayTopic)
	if err != nil {
		f.t.Fatal(err)
	}
	rt.TopicID = topics[replayTopic].ID
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch, rp.LogStartOffset = offset, 1<<20, -1, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(f.ctx, f.cl)
	if err != nil {
		f.t.Fatal(err)
	}
	return resp.Topics[0].Partitions[0]
}

// manifest is the node's copy of partition 0's manifest.
func (f *tieredFixture) manifest() []meta.TierSegment {
	v := f.c.Nodes[1].Member.Server().FSM().View()
	defer v.Close()
	segs, err := v.TierSegments(replayTopic, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	return segs
}

// waitTiered waits until the local log starts past half the records and
// every closed segment is in the manifest.
func (f *tieredFixture) waitTiered() int64 {
	for {
		local, _ := f.listOffset(-4)
		segs := f.manifest()
		if local > int64(len(f.values)/2) && len(segs) > 0 && segs[0].BaseOffset == 0 {
			return local
		}
		if f.ctx.Err() != nil {
			f.t.Fatalf("local start %d, %d segments uploaded", local, len(segs))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// consumeFrom reads from offset to the end and checks every record is
// the one produced there, byte for byte. It returns the fetch errors the
// client saw.
func (f *tieredFixture) consumeFrom(offset int64) []error {
	errs, err := f.consumeVia(f.c.Addr(), offset)
	if err != nil {
		f.t.Fatal(err)
	}
	return errs
}

// consumeVia reads the topic from offset to its end through the gateway
// at addr, checking each record against what was produced; errs are the
// fetch errors seen on the way, err why it stopped short.
func (f *tieredFixture) consumeVia(addr string, offset int64) (errs []error, err error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		replayTopic: {0: kgo.NewOffset().At(offset)}}), kgo.FetchMaxPartitionBytes(256<<10))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	next := offset
	for next < int64(len(f.values)) {
		fs := cl.PollFetches(f.ctx)
		if f.ctx.Err() != nil {
			return errs, fmt.Errorf("consumed up to %d of %d: %v", next, len(f.values), errs)
		}
		fs.EachError(func(_ string, _ int32, err error) { errs = append(errs, err) })
		for _, r := range fs.Records() {
			if r.Offset != next {
				return errs, fmt.Errorf("record at offset %d, expected %d", r.Offset, next)
			}
			if !bytes.Equal(r.Value, f.values[next]) || string(r.Key) != fmt.Sprint(next) ||
				!r.Timestamp.Equal(f.ts0.Add(time.Duration(next)*10*time.Millisecond)) {
				return errs, fmt.Errorf("record %d differs from what was produced", next)
			}
			next++
		}
	}
	return errs, nil
}

func (f *tieredFixture) objects() []string {
	var keys []string
	if err := f.store.List(f.ctx, "", func(o tier.Object) error { keys = append(keys, o.Key); return nil }); err != nil {
		f.t.Fatal(err)
	}
	return keys
}

// tierStores runs fn on a local-directory store and, when a MinIO server
// is available, on a real bucket.
func tierStores(t *testing.T, fn func(t *testing.T, store tier.Store)) {
	t.Run("dir", func(t *testing.T) {
		store, err := tier.OpenDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		fn(t, store)
	})
	t.Run("minio", func(t *testing.T) {
		fn(t, testenv.StartMinIO(t).Store("tier", "cluster"))
	})
}

// TestTieredReplay: a topic holding many times its local retention
// replays from offset 0, byte for byte and in order, part from the store
// (read by the gateway itself: the node reads none of it) and part from
// disk. ListOffsets spans both; DeleteRecords, total retention and topic
// deletion remove uploaded data.
func TestTieredReplay(t *testing.T) {
	tierStores(t, func(t *testing.T, store tier.Store) {
		f := newTieredFixture(t, store, true)
		f.produce(2000) // ~2 MB against 128 KiB local
		local := f.waitTiered()
		if errs := f.consumeFrom(0); len(errs) > 0 {
			t.Fatalf("fetch errors: %v", errs)
		}
		st, ok := f.c.Gateway.RemoteReadStats()
		if !ok || st.FetchedBytes == 0 {
			t.Fatalf("the gateway read nothing from the store: %+v", st)
		}
		if ns := f.c.Nodes[1].Node.RemoteReadStats(); ns.FetchedBytes != 0 || ns.ChunkHits+ns.ChunkMisses != 0 {
			t.Fatalf("the node read uploaded segments for the gateway: %+v", ns)
		}
		t.Logf("local log starts at %d of %d; the gateway's remote reads %+v", local, len(f.values), st)
		f.consumeFrom(local - 3) // across the boundary
		if earliest, _ := f.listOffset(-2); earliest != 0 {
			t.Fatalf("earliest %d, want 0", earliest)
		}
		// Uploads may still be going on: compare with a manifest that did
		// not change around the ListOffsets.
		for {
			segs := f.manifest()
			tiered, _ := f.listOffset(-5)
			last := segs[len(segs)-1].LastOffset
			if again := f.manifest(); again[len(again)-1].LastOffset != last {
				continue
			}
			if tiered != last {
				t.Fatalf("latest tiered %d, manifest ends at %d", tiered, last)
			}
			break
		}
		// By timestamp: record i was stamped ts0 + 10i ms.
		for _, i := range []int64{0, 7, local / 3, local - 1, local, int64(len(f.values)) - 1} {
			ts := f.ts0.Add(time.Duration(i)*10*time.Millisecond - 5*time.Millisecond).UnixMilli()
			if off, code := f.listOffset(ts); off != i || code != 0 {
				t.Fatalf("offset for timestamp of record %d: %d (error %d)", i, off, code)
			}
		}
		if off, _ := f.listOffset(-3); off != int64(len(f.values))-1 {
			t.Fatalf("max timestamp at %d", off)
		}

		// DeleteRecords inside the uploaded part: entries and objects
		// below go, the log starts there, older offsets are out of range.
		cut := local / 2
		before := len(f.objects())
		if res, err := f.adm.DeleteRecords(f.ctx, kadm.Offsets{replayTopic: {0: {Topic: replayTopic, Partition: 0, At: cut}}}); err != nil || res.Error() != nil {
			t.Fatal(err, res.Error())
		}
		if earliest, _ := f.listOffset(-2); earliest != cut {
			t.Fatalf("earliest %d after deleting before %d", earliest, cut)
		}
		if segs := f.manifest(); segs[0].LastOffset < cut || segs[0].BaseOffset > cut {
			t.Fatalf("first manifest entry %d-%d after deleting before %d", segs[0].BaseOffset, segs[0].LastOffset, cut)
		}
		if after := len(f.objects()); after >= before {
			t.Fatalf("%d objects before DeleteRecords, %d after", before, after)
		}
		if p := f.rawFetch(cut - 1); p.ErrorCode != kerr.OffsetOutOfRange.Code || p.LogStartOffset != cut {
			t.Fatalf("fetch below the log start: error %d, log start %d", p.ErrorCode, p.LogStartOffset)
		}
		f.consumeFrom(cut)

		// Total retention: retention.bytes keeps at least 512 KiB in all,
		// and less than a segment more (the oldest goes only while what
		// is left still holds the limit).
		if _, err := f.adm.AlterTopicConfigs(f.ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.bytes", Value: kadm.StringPtr("524288")}}, replayTopic); err != nil {
			t.Fatal(err)
		}
		for {
			var remote int64
			for _, s := range f.manifest() {
				remote += s.SizeBytes
			}
			if remote <= 524288+65536 {
				break
			}
			if f.ctx.Err() != nil {
				t.Fatalf("%d bytes still uploaded under retention.bytes=524288", remote)
			}
			time.Sleep(50 * time.Millisecond)
		}
		earliest, _ := f.listOffset(-2)
		if first := f.manifest()[0]; earliest != first.BaseOffset || earliest <= cut {
			t.Fatalf("earliest %d, first entry %d", earliest, first.BaseOffset)
		}
		f.consumeFrom(earliest)

		// Deleting the topic deletes its objects.
		if _, err := f.adm.DeleteTopics(f.ctx, replayTopic); err != nil {
			t.Fatal(err)
		}
		for len(f.objects()) > 0 {
			if f.ctx.Err() != nil {
				t.Fatalf("objects left after the topic was deleted: %v", f.objects())
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// TestGatewayRemoteReadsWait: a gateway allowed one remote read at a
// time, holding at most 1 MiB, serves four replays at once: each waits
// its turn, and none sees an error.
func TestGatewayRemoteReadsWait(t *testing.T) {
	dir, err := tier.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := newTieredFixture(t, dir, false)
	f.produce(2000)
	f.waitTiered()
	gw, err := gateway.Start(gateway.Config{Cluster: "test", Conn: f.c.Conn(), ID: 1, Addr: "127.0.0.1:0", Tier: dir,
		TierReadConcurrency: 1, TierReadMaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	type result struct {
		errs []error
		err  error
	}
	results := make(chan result, 4)
	for range 4 {
		go func() {
			errs, err := f.consumeVia(gw.Addr(), 0)
			results <- result{errs, err}
		}()
	}
	for range 4 {
		if r := <-results; r.err != nil || len(r.errs) > 0 {
			t.Fatalf("a replay under the bound: %v, fetch errors %v", r.err, r.errs)
		}
	}
	if st, _ := gw.RemoteReadStats(); st.ChunkHits+st.ChunkMisses == 0 {
		t.Fatalf("the gateway read nothing itself: %+v", st)
	}
}

// TestGatewayRemoteFetchQuota: a gateway bounded to 512 KiB/s of
// uploaded data serves two replays at once, slowly and without an
// error: the history takes at least its size over the quota (less the
// bucket's one second and a fetch of overdraft each).
func TestGatewayRemoteFetchQuota(t *testing.T) {
	dir, err := tier.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := newTieredFixture(t, dir, false)
	f.produce(2000)
	local := f.waitTiered()
	var tiered int
	for _, v := range f.values[:local] {
		tiered += len(v)
	}
	const quota = 512 << 10
	gw, err := gateway.Start(gateway.Config{Cluster: "test", Conn: f.c.Conn(), ID: 1, Addr: "127.0.0.1:0", Tier: dir,
		TierFetchMaxBytesPerSecond: quota})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	start := time.Now()
	errc := make(chan error, 2)
	for range 2 {
		go func() {
			errs, err := f.consumeVia(gw.Addr(), 0)
			if err == nil && len(errs) > 0 {
				err = fmt.Errorf("fetch errors %v", errs)
			}
			errc <- err
		}()
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatalf("a replay under the quota: %v", err)
		}
	}
	took := time.Since(start)
	// consumeVia asks 256 KiB per fetch.
	least := time.Duration(float64(2*tiered-quota-2*(256<<10)) / quota * float64(time.Second))
	if took < least {
		t.Fatalf("two replays of %d uploaded bytes took %v under a quota of %d B/s; at least %v expected", tiered, took, quota, least)
	}
	t.Logf("two replays of %d uploaded bytes took %v (at least %v)", tiered, took, least)
}

// TestTieredStoreOutage: with MinIO down, produce goes on and nothing is
// lost; a fetch of uploaded data answers a retriable error, never partial
// data; once MinIO is back every segment is uploaded and the whole topic
// replays. Both read paths: the gateway's and the node's.
func TestTieredStoreOutage(t *testing.T) {
	for _, gatewayReads := range []bool{true, false} {
		t.Run(fmt.Sprintf("gateway-reads=%v", gatewayReads), func(t *testing.T) { testTieredStoreOutage(t, gatewayReads) })
	}
}

func testTieredStoreOutage(t *testing.T, gatewayReads bool) {
	m := testenv.StartMinIO(t)
	f := newTieredFixture(t, m.Store("tier", ""), gatewayReads)
	f.produce(1000)
	f.waitTiered()
	m.Stop()
	f.produce(1000)
	p := f.rawFetch(0)
	if p.ErrorCode != kerr.KafkaStorageError.Code || len(p.RecordBatches) != 0 {
		t.Fatalf("fetch of uploaded data during the outage: error %d, %d bytes", p.ErrorCode, len(p.RecordBatches))
	}
	if !kerr.IsRetriable(kerr.ErrorForCode(p.ErrorCode)) {
		t.Fatalf("error %d is not retriable", p.ErrorCode)
	}
	// The newest records are still local and readable.
	if p := f.rawFetch(int64(len(f.values)) - 1); p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
		t.Fatalf("local fetch during the outage: error %d", p.ErrorCode)
	}
	// A consumer replaying from 0 while the store is down waits, seeing
	// at most retriable errors, and carries on when it is back.
	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		time.Sleep(1500 * time.Millisecond) // uploads and reads fail meanwhile
		m.Start()
	}()
	errs := f.consumeFrom(0)
	<-restarted
	t.Logf("errors seen by the consumer: %v", errs)
	for _, err := range errs {
		var ke *kerr.Error
		if !errors.As(err, &ke) || !ke.Retriable {
			t.Fatalf("non-retriable fetch error: %v", err)
		}
	}
	// Every closed segment ends up in the manifest, gap-free, up to the
	// local log's start and beyond. The local start is read first: uploads
	// and local retention go on meanwhile, and a segment gone from the disk
	// before that read was in the manifest before the manifest read.
	local, _ := f.listOffset(-4)
	if _, next := waitGapFree(f.ctx, t, f.c.Nodes[1].Member, replayTopic); next < local {
		t.Fatalf("manifest ends at %d, local log starts at %d", next, local)
	}
	for _, k := range f.objects() {
		if !strings.HasPrefix(k, replayTopic+"-") {
			t.Fatalf("unexpected object %s", k)
		}
	}
}

// TestRestoreFromBucket: a fresh cluster given only the bucket restores
// the topic (same id and configs), replays its whole history byte for
// byte, and appends after it.
func TestRestoreFromBucket(t *testing.T) {
	tierStores(t, func(t *testing.T, store tier.Store) {
		f := newTieredFixture(t, store, false)
		f.produce(1500)
		f.waitTiered()
		_, end := waitGapFree(f.ctx, t, f.c.Nodes[1].Member, replayTopic)
		// The bucket's manifest catches up within a few ticks.
		topics, err := f.adm.ListTopics(f.ctx, replayTopic)
		if err != nil {
			t.Fatal(err)
		}
		mt := meta.Topic{Name: replayTopic, ID: topics[replayTopic].ID, Partitions: 1}
		for {
			pm, err := tier.ReadPartitionManifest(f.ctx, store, mt, 0)
			if err == nil && len(pm.Segments) > 0 && pm.Segments[len(pm.Segments)-1].LastOffset+1 >= end {
				break
			}
			if f.ctx.Err() != nil {
				t.Fatalf("bucket manifest: %+v, %v", pm, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		f.cl.Close()
		f.c.Close()
		// Keep only what the bucket has: the records of the uploaded
		// segments its manifest names (the rest was on the old cluster's
		// disk).
		pm, err := tier.ReadPartitionManifest(f.ctx, store, mt, 0)
		if err != nil {
			t.Fatal(err)
		}
		end = pm.Segments[len(pm.Segments)-1].LastOffset + 1
		f.values = f.values[:end]

		// The new cluster's NATS takes 2 KiB a message: the restore
		// command and the ls answer below (several KiB each) only fit in
		// chunks (of 1 KiB, the rpc layer's least).
		c2 := testenv.InProcess(t, 1, testenv.Options{Tier: store, MaintainInterval: 50 * time.Millisecond, NATSMaxPayload: 2 << 10})
		nc := c2.Conn()
		resp, err := nc.Request(rpc.TierSubject("test", "restore"), fmt.Appendf(nil, `{"topic":%q}`, replayTopic), 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var reply tier.RestoreReply
		if err := json.Unmarshal(resp.Data, &reply); err != nil || reply.Error != "" {
			t.Fatalf("restore: %s %v", resp.Data, err)
		}
		if reply.Partitions != 1 || reply.EndOffsets[0] != end {
			t.Fatalf("restore reply %+v, want end %d", reply, end)
		}
		mux := http.NewServeMux()
		c2.Gateway.RegisterAdmin(mux)
		// Asked again, past a member of the queue that never answers (a
		// node deaf to NATS): the gateway asks again, and the topic is
		// already restored, which changes nothing.
		silent, err := nc.QueueSubscribe(rpc.TierSubject("test", "restore"), rpc.TierQueue, func(*nats.Msg) {})
		if err != nil {
			t.Fatal(err)
		}
		pastSilent(t, silent, 1, func(int) {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/tier/restore?topic="+replayTopic, nil))
			var again tier.RestoreReply
			if err := json.Unmarshal(rec.Body.Bytes(), &again); err != nil || rec.Code != 200 || !again.Already || again.EndOffsets[0] != end {
				t.Fatalf("restore again: %d %s", rec.Code, rec.Body.Bytes())
			}
		})
		silent.Unsubscribe()
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/tier/ls?topic="+replayTopic, nil))
		var ls tier.LsReply
		if err := json.Unmarshal(rec.Body.Bytes(), &ls); err != nil || rec.Code != 200 || rec.Body.Len() <= 2<<10 ||
			len(ls.Partitions) != 1 || len(ls.Partitions[0].Segments) != len(pm.Segments) {
			t.Fatalf("tier ls: %d, %d bytes: %.300s", rec.Code, rec.Body.Len(), rec.Body.Bytes())
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(c2.Addr()), kgo.ProducerBatchCompression(kgo.NoCompression()),
			kgo.ProducerBatchMaxBytes(16<<10)) // the restored segment.bytes is 64 KiB
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		f.c, f.cl, f.adm = c2, cl, kadm.NewClient(cl)
		topics2, err := f.adm.ListTopics(f.ctx, replayTopic)
		if err != nil || topics2[replayTopic].ID != topics[replayTopic].ID {
			t.Fatalf("restored topic %+v (%v), want id %x", topics2[replayTopic], err, topics[replayTopic].ID)
		}
		f.consumeFrom(0)
		if hw, _ := f.listOffset(-1); hw != end {
			t.Fatalf("restored log ends at %d, want %d", hw, end)
		}
		// New records continue the log.
		f.produce(100)
		if p := f.rawFetch(end - 5); p.ErrorCode != 0 {
			t.Fatalf("fetch at %d: error %d, log start %d, high watermark %d", end-5, p.ErrorCode, p.LogStartOffset, p.HighWatermark)
		}
		f.consumeFrom(end - 5)
		// Restoring the topic again, once it has moved on, changes
		// nothing: it is already restored (the same topic id).
		resp, err = nc.Request(rpc.TierSubject("test", "restore"), fmt.Appendf(nil, `{"topic":%q}`, replayTopic), 30*time.Second)
		if err != nil || json.Unmarshal(resp.Data, &reply) != nil || !reply.Already || reply.Error != "" {
			t.Fatalf("second restore: %s %v", resp.Data, err)
		}
		if hw, _ := f.listOffset(-1); hw != end+100 {
			t.Fatalf("after restoring again the log ends at %d, want %d", hw, end+100)
		}
	})
}
