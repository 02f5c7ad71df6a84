package gateway_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/testenv"
)

// idemBatch is a one-record batch from an idempotent producer.
func TestIdempotentProducer(t *testing.T) {
	c, ctx, _, adm := topicEnv(t, "idem", 1)
	cl := newClient(t, c.Addr(), testenv.NamedTopics)
	broker := cl.Broker(1) // node 1, at a gateway port that stands for it
	initReq := kmsg.NewPtrInitProducerIDRequest()
	initReq.TransactionTimeoutMillis, initReq.ProducerID, initReq.ProducerEpoch = 60000, -1, -1
	ir, err := broker.Request(ctx, initReq)
	if err != nil || ir.(*kmsg.InitProducerIDResponse).ErrorCode != 0 {
		t.Fatal(err, ir)
	}
	pid := ir.(*kmsg.InitProducerIDResponse).ProducerID
	send := func(epoch int16, seq int32) *kmsg.ProduceResponseTopicPartition {
		t.Helper()
		r, err := broker.Request(ctx, testenv.ProduceRequest("idem", -1, testenv.IdempotentBatch(pid, epoch, seq)))
		if err != nil {
			t.Fatal(err)
		}
		return &r.(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	}
	if p := send(0, 0); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("first: %+v", p)
	}
	if p := send(0, 1); p.ErrorCode != 0 || p.BaseOffset != 1 {
		t.Fatalf("second: %+v", p)
	}
	// A retry of the first batch is answered with its offset, not written.
	if p := send(0, 0); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("duplicate: %+v", p)
	}
	if p := send(0, 5); p.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("gap: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	// A new epoch starts at sequence 0; the old epoch is then fenced.
	if p := send(1, 0); p.ErrorCode != 0 || p.BaseOffset != 2 {
		t.Fatalf("new epoch: %+v", p)
	}
	if p := send(0, 2); p.ErrorCode != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("old epoch: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	ends, _ := adm.ListEndOffsets(ctx, "idem")
	if o, _ := ends.Lookup("idem", 0); o.Offset != 3 {
		t.Fatalf("log end %d: duplicates or rejected batches were written", o.Offset)
	}
	tr := kmsg.NewPtrInitProducerIDRequest()
	tid := "txn"
	tr.TransactionalID = &tid
	if r, _ := broker.Request(ctx, tr); r.(*kmsg.InitProducerIDResponse).ErrorCode != kerr.InvalidTransactionTimeout.Code {
		t.Fatalf("a transactional id with no timeout: %v, want INVALID_TRANSACTION_TIMEOUT", kerr.ErrorForCode(r.(*kmsg.InitProducerIDResponse).ErrorCode))
	}

	// A default franz-go producer is idempotent now: every record once.
	prod2, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.DefaultProduceTopic("idem"))
	if err != nil {
		t.Fatal(err)
	}
	defer prod2.Close()
	var recs []*kgo.Record
	for i := range 500 {
		recs = append(recs, &kgo.Record{Value: []byte{byte(i)}})
	}
	if err := prod2.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ends, _ = adm.ListEndOffsets(ctx, "idem")
	if o, _ := ends.Lookup("idem", 0); o.Offset != 503 {
		t.Fatalf("log end %d after 500 idempotent records", o.Offset)
	}
}
