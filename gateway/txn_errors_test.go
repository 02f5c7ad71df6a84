package gateway_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/testenv"
)

// TestTxnBadInput: each misuse of the transactional APIs gets Kafka's
// error and changes nothing: EndTxn of an unknown transactional id, a
// produce from a fenced epoch, a transactional produce to a partition
// never added, TxnOffsetCommit naming a member the group does not have (KIP-447), and a timeout
// past transaction.max.timeout.ms.
func TestTxnBadInput(t *testing.T) {
	c, ctx, _, adm := topicEnv(t, "bad", 1)
	cl := newClient(t, c.Addr(), testenv.NamedTopics)
	broker := cl.Broker(0)
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
		if code := int16(0); want != nil && got != want.Code || want == nil && got != code {
			t.Fatalf("%s: %v, want %v", what, kerr.ErrorForCode(got), want)
		}
	}
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
