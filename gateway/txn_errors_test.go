package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/strata-io/strata/testenv"
)

// TestTxnBadInput: each misuse of the transactional APIs gets Kafka's
// error and changes nothing: EndTxn of an unknown transactional id, a
// produce from a fenced epoch, a transactional produce to a partition
// never added, TxnOffsetCommit naming a member the group does not have (KIP-447), and a timeout
// past transaction.max.timeout.ms.
func TestTxnBadInput(t *testing.T) {
	c, ctx, _, adm := topicEnv(t, "bad", 1)
	// Produce v11: below v12 a partition must be added before it is
	// written (under transactions v2 a v12 produce adds it itself).
	cl := newClient(t, c.Addr(), kgo.MaxVersions(func() *kversion.Versions {
		v := kversion.V4_0_0()
		v.SetMaxKeyVersion(0, 11)
		v.SetMaxKeyVersion(1, 12)
		return v
	}()))
	call, want := rawCalls(ctx, t, cl)
	str := kmsg.StringPtr

	end := kmsg.NewPtrEndTxnRequest()
	end.TransactionalID, end.ProducerID, end.Commit = "nobody", 42, true
	want("EndTxn of an unknown transactional id", call(end).(*kmsg.EndTxnResponse).ErrorCode, kerr.InvalidProducerIDMapping)

	init := func(timeout int32) *kmsg.InitProducerIDResponse {
		r := kmsg.NewPtrInitProducerIDRequest()
		r.TransactionalID, r.TransactionTimeoutMillis, r.ProducerID, r.ProducerEpoch = str("tx"), timeout, -1, -1
		return call(r).(*kmsg.InitProducerIDResponse)
	}
	want("a timeout past transaction.max.timeout.ms", init(16*60*1000).ErrorCode, kerr.InvalidTransactionTimeout)
	first := init(60000)
	want("init", first.ErrorCode, nil)

	// AddPartitionsToTxn in both forms: the client sends the version it
	// negotiated (v4 batches transactions).
	addPartitions := func(pid int64, epoch int16) int16 {
		t.Helper()
		r := kmsg.NewPtrAddPartitionsToTxnRequest()
		r.TransactionalID, r.ProducerID, r.ProducerEpoch = "tx", pid, epoch
		rt := kmsg.NewAddPartitionsToTxnRequestTopic()
		rt.Topic, rt.Partitions = "bad", []int32{0}
		r.Topics = append(r.Topics, rt)
		tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
		tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch = "tx", pid, epoch
		tt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
		tt.Topic, tt.Partitions = "bad", []int32{0}
		tx.Topics = append(tx.Topics, tt)
		r.Transactions = append(r.Transactions, tx)
		resp := call(r).(*kmsg.AddPartitionsToTxnResponse)
		if len(resp.Transactions) > 0 {
			return resp.Transactions[0].Topics[0].Partitions[0].ErrorCode
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	txnBatch := func(pid int64, epoch int16) []byte { return testenv.TransactionalBatch(pid, epoch, 0) }
	produce := func(batch []byte) int16 {
		r := testenv.ProduceRequest("bad", -1, batch)
		r.TransactionID = str("tx")
		return call(r).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}
	want("a transactional produce to a partition never added", produce(txnBatch(first.ProducerID, first.ProducerEpoch)), kerr.InvalidTxnState)

	// A second producer takes the id over: the first is fenced.
	second := init(60000)
	want("second init", second.ErrorCode, nil)
	want("add partitions", addPartitions(second.ProducerID, second.ProducerEpoch), nil)
	want("a produce from the fenced epoch", produce(txnBatch(first.ProducerID, first.ProducerEpoch)), kerr.InvalidProducerEpoch)
	want("AddPartitionsToTxn from the fenced epoch", addPartitions(first.ProducerID, first.ProducerEpoch), kerr.ProducerFenced)

	// TxnOffsetCommit naming a member of a generation the group does not
	// have.
	ao := kmsg.NewPtrAddOffsetsToTxnRequest()
	ao.TransactionalID, ao.ProducerID, ao.ProducerEpoch, ao.Group = "tx", second.ProducerID, second.ProducerEpoch, "g"
	want("AddOffsetsToTxn", call(ao).(*kmsg.AddOffsetsToTxnResponse).ErrorCode, nil)
	toc := kmsg.NewPtrTxnOffsetCommitRequest()
	toc.SetVersion(3)
	toc.TransactionalID, toc.ProducerID, toc.ProducerEpoch, toc.Group = "tx", second.ProducerID, second.ProducerEpoch, "g"
	toc.MemberID, toc.Generation = "ghost", 7
	tt := kmsg.NewTxnOffsetCommitRequestTopic()
	tt.Topic = "bad"
	tp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	tp.Partition, tp.Offset = 0, 1
	tt.Partitions = append(tt.Partitions, tp)
	toc.Topics = append(toc.Topics, tt)
	want("TxnOffsetCommit from a member the group does not have", call(toc).(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode, kerr.UnknownMemberID)

	// Nothing of it was written.
	ends, err := adm.ListEndOffsets(ctx, "bad")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup("bad", 0); o.Offset != 0 {
		t.Fatalf("end offset %d: a refused batch was written", o.Offset)
	}
}

// TestTransactionsV2 drives transactions v2 (KIP-890 part 2) on the wire:
// the cluster advertises transaction.version 2; a v12 produce adds its
// partition itself; EndTxn v5 bumps the epoch and answers with it, a
// retry with the old epoch is answered the same; the markers carry the
// new epoch, so a late batch of the old one is fenced; TxnOffsetCommit v5
// adds its group. UpdateFeatures lowers transaction.version to 1, after
// which EndTxn v5 bumps nothing, and raises it again.
func TestTransactionsV2(t *testing.T) {
	c, ctx, _, adm := topicEnv(t, "v2", 1)
	cl := newClient(t, c.Addr(), testenv.NamedTopics)
	call, want := rawCalls(ctx, t, cl)
	txnVersion := func() int16 {
		t.Helper()
		r := kmsg.NewPtrApiVersionsRequest()
		r.ClientSoftwareName, r.ClientSoftwareVersion = "test", "1"
		resp := call(r).(*kmsg.ApiVersionsResponse)
		if resp.FinalizedFeaturesEpoch < 0 {
			t.Fatalf("no finalized features: %+v", resp)
		}
		for _, f := range resp.FinalizedFeatures {
			if f.Name == "transaction.version" {
				return f.MaxVersionLevel
			}
		}
		return 0
	}
	if v := txnVersion(); v != 2 {
		t.Fatalf("transaction.version %d, want 2 by default", v)
	}

	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID, init.TransactionTimeoutMillis, init.ProducerID, init.ProducerEpoch = kmsg.StringPtr("tv2"), 60000, -1, -1
	ir := call(init).(*kmsg.InitProducerIDResponse)
	want("init", ir.ErrorCode, nil)
	pid, epoch := ir.ProducerID, ir.ProducerEpoch
	produce := func(epoch int16, seq int32) int16 {
		t.Helper()
		r := testenv.ProduceRequest("v2", -1, testenv.TransactionalBatch(pid, epoch, seq))
		r.TransactionID = kmsg.StringPtr("tv2")
		return call(r).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}
	endTxn := func(epoch int16, commit bool) *kmsg.EndTxnResponse {
		t.Helper()
		r := kmsg.NewPtrEndTxnRequest()
		r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Commit = "tv2", pid, epoch, commit
		return call(r).(*kmsg.EndTxnResponse)
	}
	want("a v12 produce to a partition never added", produce(epoch, 0), nil)
	end := endTxn(epoch, true)
	want("EndTxn v5 commit", end.ErrorCode, nil)
	if end.Version < 5 || end.ProducerID != pid || end.ProducerEpoch != epoch+1 {
		t.Fatalf("EndTxn v%d answered producer %d epoch %d, want %d/%d", end.Version, end.ProducerID, end.ProducerEpoch, pid, epoch+1)
	}
	if again := endTxn(epoch, true); again.ErrorCode != 0 || again.ProducerEpoch != epoch+1 {
		t.Fatalf("EndTxn retried with the old epoch: %v epoch %d", kerr.ErrorForCode(again.ErrorCode), again.ProducerEpoch)
	}
	want("a late batch of the ended epoch", produce(epoch, 1), kerr.InvalidProducerEpoch)
	epoch++

	// TxnOffsetCommit v5 adds its group; the commit writes its offset.
	want("a produce in the next transaction", produce(epoch, 0), nil)
	toc := kmsg.NewPtrTxnOffsetCommitRequest()
	toc.TransactionalID, toc.ProducerID, toc.ProducerEpoch, toc.Group = "tv2", pid, epoch, "g"
	toc.MemberID, toc.Generation = "", -1
	tt := kmsg.NewTxnOffsetCommitRequestTopic()
	tt.Topic = "v2"
	tp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	tp.Partition, tp.Offset = 0, 2
	tt.Partitions = append(tt.Partitions, tp)
	toc.Topics = append(toc.Topics, tt)
	tr := call(toc).(*kmsg.TxnOffsetCommitResponse)
	if tr.Version < 5 {
		t.Fatalf("TxnOffsetCommit v%d, want v5", tr.Version)
	}
	want("TxnOffsetCommit v5 without AddOffsetsToTxn", tr.Topics[0].Partitions[0].ErrorCode, nil)
	want("EndTxn v5 commit", endTxn(epoch, true).ErrorCode, nil)
	epoch++
	offs, err := adm.FetchOffsets(ctx, "g")
	if o, ok := offs.Lookup("v2", 0); err != nil || !ok || o.At != 2 {
		t.Fatalf("the group's offset after the commit: %+v %v", o, err)
	}

	// An abort with nothing produced bumps the epoch too.
	if e := endTxn(epoch, false); e.ErrorCode != 0 || e.ProducerEpoch != epoch+1 {
		t.Fatalf("an empty abort: %v epoch %d, want %d", kerr.ErrorForCode(e.ErrorCode), e.ProducerEpoch, epoch+1)
	}
	epoch++

	// Read committed sees the two committed transactions' records and
	// nothing of the fenced batch.
	consumer := newClient(t, c.Addr(), kgo.ConsumeTopics("v2"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []int64
	for len(got) < 2 {
		fs := consumer.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, r.Offset) })
	}

	// Down to transaction.version 1 (kafka-features.sh downgrade), then
	// back up.
	setVersion := func(level int16, upgradeType int8) int16 {
		t.Helper()
		r := kmsg.NewPtrUpdateFeaturesRequest()
		u := kmsg.NewUpdateFeaturesRequestFeatureUpdate()
		u.Feature, u.MaxVersionLevel, u.UpgradeType = "transaction.version", level, upgradeType
		r.FeatureUpdates = append(r.FeatureUpdates, u)
		return call(r).(*kmsg.UpdateFeaturesResponse).ErrorCode
	}
	want("a downgrade not asked for", setVersion(1, 1), kerr.InvalidUpdateVersion)
	want("an unknown level", setVersion(3, 1), kerr.InvalidUpdateVersion)
	want("a downgrade", setVersion(1, 2), nil)
	deadline := time.Now().Add(10 * time.Second)
	for txnVersion() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("ApiVersions still finalizes transaction.version 2 after the downgrade")
		}
		time.Sleep(50 * time.Millisecond)
	}
	want("a v12 produce under transactions v1, never added", produce(epoch, 0), kerr.InvalidTxnState)
	if e := endTxn(epoch, false); e.ErrorCode != 0 || e.ProducerID != -1 {
		t.Fatalf("EndTxn v5 under transactions v1: %v producer %d, want no new producer", kerr.ErrorForCode(e.ErrorCode), e.ProducerID)
	}
	want("an upgrade", setVersion(2, 1), nil)
}

// rawCalls returns call, which sends a hand-built request to cl's first
// broker and fails the test if it gets no answer, and want, which fails
// it when an answer's error code is not the one expected (nil: none).
func rawCalls(ctx context.Context, t *testing.T, cl *kgo.Client) (func(kmsg.Request) kmsg.Response, func(string, int16, *kerr.Error)) {
	broker := cl.Broker(1) // node 1, at a gateway port that stands for it
	call := func(req kmsg.Request) kmsg.Response {
		t.Helper()
		resp, err := broker.Request(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	want := func(what string, got int16, want *kerr.Error) {
		t.Helper()
		if want != nil && got != want.Code || want == nil && got != 0 {
			t.Fatalf("%s: %v, want %v", what, kerr.ErrorForCode(got), want)
		}
	}
	return call, want
}
