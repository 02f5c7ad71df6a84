package gateway_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
)

// TestTransactions: a franz-go transactional producer commits, aborts
// and commits again; a read_committed consumer sees exactly the
// committed records, in order, and a read_uncommitted one every record.
func TestTransactions(t *testing.T) {
	c, ctx, _, adm := topicEnv(t, "txn", 2)
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.TransactionalID("tx-1"), kgo.DefaultProduceTopic("txn"),
		kgo.TransactionTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var committed []string
	n := 0
	for i, commit := range []bool{true, false, true, false, true} {
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		var vals []string
		for range 10 + i {
			v := strconv.Itoa(n)
			n++
			vals = append(vals, v)
			if err := prod.ProduceSync(ctx, &kgo.Record{Key: []byte(v), Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("transaction %d: %v", i, err)
			}
		}
		if err := prod.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end transaction %d (commit %v): %v", i, commit, err)
		}
		if commit {
			committed = append(committed, vals...)
		}
	}
	read := func(level kgo.IsolationLevel, want int) map[string]bool {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.ConsumeTopics("txn"), kgo.FetchIsolationLevel(level),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		got := map[string]bool{}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		for len(got) < want && rctx.Err() == nil {
			cl.PollFetches(rctx).EachRecord(func(r *kgo.Record) {
				if got[string(r.Value)] {
					t.Errorf("record %s read twice", r.Value)
				}
				got[string(r.Value)] = true
			})
		}
		// Anything more would show within a moment.
		extra, cancel2 := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel2()
		cl.PollFetches(extra).EachRecord(func(r *kgo.Record) { got[string(r.Value)] = true })
		return got
	}
	// An open transaction, as kafka-transactions.sh would see it.
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := prod.ProduceSync(ctx, &kgo.Record{Partition: 0, Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	listed, err := adm.ListTransactions(ctx, nil, []string{"Ongoing"})
	if err != nil || listed["tx-1"].State != "Ongoing" {
		t.Fatalf("list transactions: %+v %v", listed, err)
	}
	described, err := adm.DescribeTransactions(ctx, "tx-1")
	if d := described["tx-1"]; err != nil || d.Err != nil || d.State != "Ongoing" || d.TimeoutMillis != 30000 || len(d.Topics["txn"]) == 0 {
		t.Fatalf("describe transactions: %+v %v", described, err)
	}
	producers, err := adm.DescribeProducers(ctx, kadm.TopicsSet{"txn": {0: {}, 1: {}}})
	if err != nil {
		t.Fatal(err)
	}
	open := false
	producers.EachProducer(func(p kadm.DescribedProducer) {
		open = open || (p.ProducerID == described["tx-1"].ProducerID && p.CurrentTxnStartOffset >= 0)
	})
	if !open {
		t.Fatalf("describe producers shows no open transaction: %+v", producers)
	}
	if err := prod.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	n++ // the aborted "open" record: read_uncommitted sees it

	got := read(kgo.ReadCommitted(), len(committed))
	if len(got) != len(committed) {
		t.Fatalf("read_committed read %d records, want the %d committed", len(got), len(committed))
	}
	for _, v := range committed {
		if !got[v] {
			t.Fatalf("read_committed lacks committed record %s", v)
		}
	}
	if got := read(kgo.ReadUncommitted(), n); len(got) != n || !got["open"] {
		t.Fatalf("read_uncommitted read %d records, want all %d", len(got), n)
	}
}

// TestTransactionalIDExpires: a transactional id left idle past
// transactional.id.expiration.ms is forgotten (it no longer lists or
// describes); a producer that uses it again starts afresh.
func TestTransactionalIDExpires(t *testing.T) {
	c, ctx, _, adm := topicEnvWith(t, testenv.Options{TxnIDExpiration: 500 * time.Millisecond}, "idle-txn", 1)
	use := func() {
		t.Helper()
		p, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.TransactionalID("idle"), kgo.DefaultProduceTopic("idle-txn"))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	use()
	for {
		described, err := adm.DescribeTransactions(ctx, "idle")
		if err == nil && errors.Is(described["idle"].Err, kerr.TransactionalIDNotFound) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the idle transactional id was never forgotten: %+v %v", described, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	use()
}
