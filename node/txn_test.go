package node_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
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

// txnTestBatch is a batch of n records from a producer, transactional or
// not, with its length and CRC set.
func txnTestBatch(pid int64, epoch int16, seq int32, n int, transactional bool) []byte {
	var body []byte
	for i := range n {
		r := kmsg.Record{OffsetDelta: int32(i), Value: []byte{byte(i)}}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		body = r.AppendTo(body)
	}
	attrs := int16(0)
	if transactional {
		attrs = 0x10
	}
	b := kmsg.RecordBatch{PartitionLeaderEpoch: -1, Magic: 2, Attributes: attrs, LastOffsetDelta: int32(n - 1),
		ProducerID: pid, ProducerEpoch: epoch, FirstSequence: seq, NumRecords: int32(n), Records: body}
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	binary.BigEndian.PutUint32(out[17:], crc32.Checksum(out[21:], crc32.MakeTable(crc32.Castagnoli)))
	return out
}

type txnHarness struct {
	t   *testing.T
	c   *testenv.Cluster
	ctx context.Context
}

func (h txnHarness) serve(req kmsg.Request) kmsg.Response {
	h.t.Helper()
	resp, release, err := h.c.Nodes[1].Node.ServeKafka(h.ctx, req, false, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	release()
	return resp
}

func (h txnHarness) propose(cmd meta.Command) *meta.ApplyResult {
	h.t.Helper()
	res, err := h.c.Nodes[1].Member.Server().Propose(h.ctx, cmd)
	if err != nil {
		h.t.Fatal(err)
	}
	if res.Err != nil {
		h.t.Fatalf("%T: %v", cmd, res.Err)
	}
	return res
}

func (h txnHarness) produce(txnID string, batch []byte) int16 {
	h.t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks, req.TimeoutMillis = -1, 5000
	if txnID != "" {
		req.TransactionID = &txnID
	}
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return h.serve(req).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
}

func (h txnHarness) marker(pid int64, epoch int16, commit bool) int16 {
	h.t.Helper()
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed = pid, epoch, commit
	mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	mt.Topic, mt.Partitions = "t", []int32{0}
	m.Topics = append(m.Topics, mt)
	req.Markers = append(req.Markers, m)
	return h.serve(req).(*kmsg.WriteTxnMarkersResponse).Markers[0].Topics[0].Partitions[0].ErrorCode
}

// waitServing waits until the restarted node leads partition 0 again.
func (h txnHarness) waitServing() {
	h.t.Helper()
	for {
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "t"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp = -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, release, err := h.c.Nodes[1].Node.ServeKafka(h.ctx, req, false, nil)
		release()
		if err == nil && resp.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0].ErrorCode == 0 {
			return
		}
		if h.ctx.Err() != nil {
			h.t.Fatal("the partition is not served after the restart")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fetch reads partition 0 from offset 0 at the isolation level, a fetch
// at a time (each returns one segment's batches at most), and returns
// the offsets of its records, the LSO and the aborted transactions
// (producer id, first offset).
func (h txnHarness) fetch(isolation int8) (offsets []int64, lso int64, aborted []int64) {
	h.t.Helper()
	for next := int64(0); ; {
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(11)
		req.ReplicaID, req.MaxBytes, req.IsolationLevel = -1, 1<<20, isolation
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "t"
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.PartitionMaxBytes, rp.FetchOffset = 1<<20, next
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		sp := h.serve(req).(*kmsg.FetchResponse).Topics[0].Partitions[0]
		if sp.ErrorCode != 0 {
			h.t.Fatalf("fetch: %v", kerr.ErrorForCode(sp.ErrorCode))
		}
		lso = sp.LastStableOffset
		if len(sp.RecordBatches) == 0 {
			return offsets, lso, aborted
		}
		for b := sp.RecordBatches; len(b) > 0; {
			var rb kmsg.RecordBatch
			if err := rb.ReadFrom(b); err != nil {
				h.t.Fatal(err)
			}
			for i := range rb.LastOffsetDelta + 1 {
				offsets = append(offsets, rb.FirstOffset+int64(i))
			}
			next = rb.FirstOffset + int64(rb.LastOffsetDelta) + 1
			b = b[12+rb.Length:]
		}
	seen:
		for _, a := range sp.AbortedTransactions {
			for i := 0; i < len(aborted); i += 2 {
				if aborted[i] == a.ProducerID && aborted[i+1] == a.FirstOffset {
					continue seen
				}
			}
			aborted = append(aborted, a.ProducerID, a.FirstOffset)
		}
	}
}

// TestTxnPartition: a partition takes a transactional batch only once the
// coordinator's state holds the partition; an open transaction holds the
// last stable offset back, so read_committed sees nothing past it; an
// abort marker lists the transaction among the aborted ones, a commit
// marker does not; all of it survives a restart.
func TestTxnPartition(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := txnHarness{t, c, ctx}
	createTopic(ctx, t, newClient(t, c), 1, 1, nil, "t")
	h.waitServing()
	init := h.propose(&meta.InitTxn{ID: "tx", TimeoutMs: 60000, ProducerID: -1, Epoch: -1}).Txn
	pid, epoch := init.ProducerID, init.Epoch

	if code := h.produce("tx", txnTestBatch(pid, epoch, 0, 3, true)); code != kerr.InvalidTxnState.Code {
		t.Fatalf("a batch to a partition not added: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(code))
	}
	add := &meta.AddTxnPartitions{ID: "tx", ProducerID: pid, Epoch: epoch, Partitions: []meta.TxnPartition{{Topic: "t", Partition: 0}}}
	h.propose(add)
	if code := h.produce("tx", txnTestBatch(pid, epoch, 0, 3, true)); code != 0 { // offsets 0-2
		t.Fatalf("transactional produce: %v", kerr.ErrorForCode(code))
	}
	if code := h.produce("", txnTestBatch(-1, -1, -1, 1, false)); code != 0 { // offset 3
		t.Fatalf("plain produce: %v", kerr.ErrorForCode(code))
	}
	if got, lso, _ := h.fetch(1); len(got) != 0 || lso != 0 {
		t.Fatalf("read_committed during the transaction: %v, LSO %d; want nothing, 0", got, lso)
	}
	if got, _, _ := h.fetch(0); !slices.Equal(got, []int64{0, 1, 2, 3}) {
		t.Fatalf("read_uncommitted: %v", got)
	}
	h.propose(&meta.EndTxn{ID: "tx", ProducerID: pid, Epoch: epoch})
	if code := h.marker(pid, epoch, false); code != 0 { // offset 4
		t.Fatalf("abort marker: %v", kerr.ErrorForCode(code))
	}
	h.propose(&meta.CompleteTxn{ID: "tx", ProducerID: pid, Epoch: epoch})
	check := func(when string, wantLSO int64, wantAborted []int64) {
		t.Helper()
		got, lso, aborted := h.fetch(1)
		if lso != wantLSO || !slices.Equal(aborted, wantAborted) || len(got) == 0 || got[len(got)-1] != wantLSO-1 {
			t.Fatalf("%s: read_committed offsets %v, LSO %d, aborted %v; want up to %d, aborted %v", when, got, lso, aborted, wantLSO, wantAborted)
		}
	}
	check("after the abort", 5, []int64{pid, 0})

	// A second transaction, open across a restart, then committed.
	h.propose(add)
	if code := h.produce("tx", txnTestBatch(pid, epoch, 3, 2, true)); code != 0 { // offsets 5-6
		t.Fatalf("transactional produce: %v", kerr.ErrorForCode(code))
	}
	c.StopNode(1)
	c.StartNode(1)
	h.waitServing()
	if _, lso, _ := h.fetch(1); lso != 5 {
		t.Fatalf("after a restart with the transaction open: LSO %d, want 5", lso)
	}
	h.propose(&meta.EndTxn{ID: "tx", ProducerID: pid, Epoch: epoch, Commit: true})
	if code := h.marker(pid, epoch, true); code != 0 { // offset 7
		t.Fatalf("commit marker: %v", kerr.ErrorForCode(code))
	}
	h.propose(&meta.CompleteTxn{ID: "tx", ProducerID: pid, Epoch: epoch})
	check("after the commit", 8, []int64{pid, 0})
	c.StopNode(1)
	c.StartNode(1)
	h.waitServing()
	check("after another restart", 8, []int64{pid, 0})

	// A fenced epoch is refused at the partition.
	h.propose(&meta.InitTxn{ID: "tx", TimeoutMs: 60000, ProducerID: pid, Epoch: epoch})
	if code := h.produce("tx", txnTestBatch(pid, epoch, 5, 1, true)); code != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("a fenced producer's batch: %v, want INVALID_PRODUCER_EPOCH", kerr.ErrorForCode(code))
	}
}

// logStart is partition 0's log start (ListOffsets earliest).
func (h txnHarness) logStart() int64 {
	h.t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = -2
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	sp := h.serve(req).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
	if sp.ErrorCode != 0 {
		h.t.Fatalf("list offsets: %v", kerr.ErrorForCode(sp.ErrorCode))
	}
	return sp.Offset
}

// TestRetentionStopsAtOpenTransaction: retention deletes no segment
// holding an offset at or past the first offset of an open transaction
// (the last stable offset), however old; once the transaction ends it
// goes on.
func TestRetentionStopsAtOpenTransaction(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{MaintainInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := txnHarness{t, c, ctx}
	createTopic(ctx, t, newClient(t, c), 1, 1, map[string]*string{"segment.bytes": kmsg.StringPtr("300"), "retention.ms": kmsg.StringPtr("1")}, "t")
	h.waitServing()
	// Offsets 0-2 each fill a segment of their own (two such batches
	// exceed segment.bytes), so retention has three segments it may
	// delete.
	for range 3 {
		if code := h.produce("", testenv.Batch(bytes.Repeat([]byte("x"), 200))); code != 0 {
			t.Fatal(kerr.ErrorForCode(code))
		}
	}
	init := h.propose(&meta.InitTxn{ID: "tx", TimeoutMs: 60000, ProducerID: -1, Epoch: -1}).Txn
	pid, epoch := init.ProducerID, init.Epoch
	h.propose(&meta.AddTxnPartitions{ID: "tx", ProducerID: pid, Epoch: epoch, Partitions: []meta.TxnPartition{{Topic: "t", Partition: 0}}})
	if code := h.produce("tx", txnTestBatch(pid, epoch, 0, 1, true)); code != 0 { // offset 3
		t.Fatal(kerr.ErrorForCode(code))
	}
	for range 30 {
		if code := h.produce("", txnTestBatch(-1, -1, -1, 1, false)); code != 0 {
			t.Fatal(kerr.ErrorForCode(code))
		}
	}
	// Retention deletes the three segments before the transaction, and
	// in the same pass would have deleted every later one (all past
	// retention.ms) but for the open transaction.
	for start := h.logStart(); start != 3; start = h.logStart() {
		if start > 3 {
			t.Fatalf("retention moved the log start to %d, past the open transaction at 3", start)
		}
		if ctx.Err() != nil {
			t.Fatalf("retention never deleted the segments before the transaction: log start %d", start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.propose(&meta.EndTxn{ID: "tx", ProducerID: pid, Epoch: epoch})
	if code := h.marker(pid, epoch, false); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	for h.logStart() <= 3 {
		if ctx.Err() != nil {
			t.Fatal("retention never went past the transaction once it ended")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTieredReadCommitted: transactions, some aborted, on a tiered topic
// whose local disk retention then empties; a read_committed replay from
// offset 0, all of it from the bucket, returns exactly the committed
// records (the uploaded segments carry their aborted transaction
// indexes), through a gateway that reads the bucket itself and through
// one that leaves it to the node.
func TestTieredReadCommitted(t *testing.T) {
	for _, gatewayTier := range []bool{false, true} {
		t.Run(map[bool]string{false: "node-reads", true: "gateway-reads"}[gatewayTier], func(t *testing.T) {
			store, err := tier.OpenDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			c := testenv.InProcess(t, 1, testenv.Options{Tier: store, GatewayTier: gatewayTier, MaintainInterval: 50 * time.Millisecond})
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			cl := newClient(t, c)
			createTopic(ctx, t, cl, 1, 1, map[string]*string{
				"remote.storage.enable": kadm.StringPtr("true"),
				"segment.bytes":         kadm.StringPtr("262144"),
				"local.retention.ms":    kadm.StringPtr("500"),
			}, "tt")
			prod := newClient(t, c, kgo.TransactionalID("tt-producer"), kgo.DefaultProduceTopic("tt"))
			value := strings.Repeat("v", 1000)
			committed := map[string]bool{}
			for i := range 24 {
				if err := prod.BeginTransaction(); err != nil {
					t.Fatal(err)
				}
				var vals []string
				for j := range 100 {
					v := fmt.Sprintf("%d-%d-%s", i, j, value)
					vals = append(vals, v)
					prod.Produce(ctx, &kgo.Record{Value: []byte(v)}, func(_ *kgo.Record, err error) {
						if err != nil {
							t.Errorf("produce: %v", err)
						}
					})
				}
				if err := prod.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				commit := i%3 != 1
				if err := prod.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
					t.Fatal(err)
				}
				if commit {
					for _, v := range vals {
						committed[v] = true
					}
				}
			}
			end, _ := listOffset(ctx, t, cl, "tt", -1)
			for {
				start, _, err := tryListOffset(ctx, cl, "tt", 0, -4)
				if err == nil && start == end {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("local log start %d, want %d: the history never left the disk (%v)", start, end, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			consumer := newClient(t, c, kgo.ConsumeTopics("tt"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
				kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxPartitionBytes(64<<10))
			got := 0
			for got < len(committed) {
				fs := consumer.PollFetches(ctx)
				if ctx.Err() != nil {
					t.Fatalf("read %d of %d committed records", got, len(committed))
				}
				fs.EachError(func(_ string, _ int32, err error) { t.Fatal(err) })
				fs.EachRecord(func(r *kgo.Record) {
					if !committed[string(r.Value)] {
						t.Fatalf("read_committed returned %.10s… at offset %d, of an aborted transaction", r.Value, r.Offset)
					}
					got++
				})
			}
		})
	}
}

// eosCluster is three nodes with the pipeline's topics: three partitions
// each, three replicas, two in sync at least.
func eosCluster(ctx context.Context, t *testing.T) *testenv.Cluster {
	t.Helper()
	c := testenv.InProcess(t, 3, testenv.Options{})
	cl := newClient(t, c)
	for _, topic := range []string{"eos-in", "eos-out"} {
		createTopic(ctx, t, cl, 3, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, topic)
		waitISR(ctx, t, c, topic, 3)
	}
	return c
}

// TestExactlyOncePipeline: a consume-transform-produce pipeline in
// transactions (franz-go's GroupTransactSession) copies a topic while a
// partition leader stops and comes back and then the controller (the
// transaction and group coordinator) does: every acknowledged source
// record is in the output exactly once, read_committed, and nothing else.
func TestExactlyOncePipeline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := eosCluster(ctx, t)
	eos := testenv.StartEOS(t, []string{c.Addr()}, "eos-in", "eos-out", "eos", "eos-pipe", 500)
	waitCommits := func(n int, what string) {
		t.Helper()
		want := eos.Committed() + n
		for eos.Committed() < want {
			if ctx.Err() != nil {
				t.Fatalf("%s: the pipeline committed %d transactions, want %d", what, eos.Committed(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitCommits(10, "before faults")
	leader := partitions(t, c, "eos-out")[0].Leader
	c.StopNode(leader)
	time.Sleep(time.Second)
	c.StartNode(leader)
	waitISR(ctx, t, c, "eos-out", 3)
	waitCommits(10, "after a leader came back")
	ctrl := controller(t, c)
	c.StopNode(ctrl)
	time.Sleep(time.Second)
	c.StartNode(ctrl)
	waitISR(ctx, t, c, "eos-in", 3)
	waitCommits(10, "after the controller came back")
	eos.Stop(ctx)
	eos.Verify(ctx)
}

// TestExactlyOncePipelineKilled: the pipeline runs in a process of its
// own and is killed (kill -9) and started again, over and over, while
// the source produces, and the controller stops once: the output still
// holds every source record exactly once, in order per partition.
// STRATA_EOS_RECORDS sets how many source records (default 10,000;
// make test-long runs 100,000).
func TestExactlyOncePipelineKilled(t *testing.T) {
	records := 10_000
	if s := os.Getenv("STRATA_EOS_RECORDS"); s != "" {
		records, _ = strconv.Atoi(s)
	}
	rng := rand.New(rand.NewPCG(testenv.Seed(t), 22))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := eosCluster(ctx, t)
	eos := testenv.StartEOS(t, []string{c.Addr()}, "eos-in", "eos-out", "eos", "eos-pipe", 1000, testenv.EOSOptions{Child: true})
	advance := func(what string) {
		t.Helper()
		from := eos.Progress(ctx)
		for p := eos.Progress(ctx); p <= from; p = eos.Progress(ctx) {
			if ctx.Err() != nil {
				t.Fatalf("%s: the pipeline committed nothing (at %d)", what, p)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for kills := 0; eos.Acked() < records; kills++ {
		advance("before a kill")
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		eos.KillPipeline()
		if kills == 3 {
			ctrl := controller(t, c)
			c.StopNode(ctrl)
			time.Sleep(time.Second)
			c.StartNode(ctrl)
		}
	}
	eos.Stop(ctx)
	eos.Verify(ctx)
}
