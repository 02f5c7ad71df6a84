package meta

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// testSeed is a randomized test's seed: STRATA_SEED when set (to replay
// a failure), else the clock; logged either way. (testenv.Seed, which
// this package cannot import.)
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("STRATA_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (STRATA_SEED=%d replays it)", seed, seed)
	return seed
}

// txn applies c and returns the transaction it answered with.
func (a *applier) txn(c Command) (*Transaction, error) {
	a.t.Helper()
	r := a.apply(c)[0]
	return r.Txn, r.Err
}

// offsets are a group's committed offsets, by partition.
func (a *applier) offsets(group string) []Offset {
	a.t.Helper()
	v := a.f.View()
	defer v.Close()
	os, err := v.GroupOffsets(group)
	if err != nil {
		a.t.Fatal(err)
	}
	return os
}

func (a *applier) stateOf(id string) Transaction {
	a.t.Helper()
	v := a.f.View()
	defer v.Close()
	t, ok, err := v.Transaction(id)
	if err != nil || !ok {
		a.t.Fatalf("transaction %s: %v %v", id, ok, err)
	}
	return t
}

// TestTxnLifecycle walks a transactional id through Kafka's states:
// fencing by epoch, a commit with its retries, an abort forced by a new
// producer, and the errors in between.
func TestTxnLifecycle(t *testing.T) {
	a := &applier{t: t, f: openTestFSM(t, t.TempDir())}
	a.mustApply(testTopic("orders", 2, 1))
	p0 := TxnPartition{Topic: "orders", Partition: 0}
	p1 := TxnPartition{Topic: "orders", Partition: 1}

	first, err := a.txn(&InitTxn{ID: "tx", TimeoutMs: 60000, ProducerID: -1, Epoch: -1, NowMs: 1})
	if err != nil || first.Epoch != 0 || first.State != TxnEmpty {
		t.Fatalf("first init: %+v %v", first, err)
	}
	pid := first.ProducerID
	second, err := a.txn(&InitTxn{ID: "tx", TimeoutMs: 60000, ProducerID: -1, Epoch: -1, NowMs: 2})
	if err != nil || second.ProducerID != pid || second.Epoch != 1 {
		t.Fatalf("second init: %+v %v", second, err)
	}
	// The producer of epoch 0 is fenced.
	a.wantErr(ErrProducerFenced, &AddTxnPartitions{ID: "tx", ProducerID: pid, Epoch: 0, Partitions: []TxnPartition{p0}})
	a.wantErr(ErrInvalidProducerIDMapping, &AddTxnPartitions{ID: "tx", ProducerID: pid + 1, Epoch: 1, Partitions: []TxnPartition{p0}})
	a.wantErr(ErrInvalidProducerIDMapping, &AddTxnPartitions{ID: "nobody", ProducerID: pid, Epoch: 1})
	a.wantErr(ErrUnknownTopic, &AddTxnPartitions{ID: "tx", ProducerID: pid, Epoch: 1, Partitions: []TxnPartition{{Topic: "orders", Partition: 9}}})
	if s := a.stateOf("tx"); s.State != TxnEmpty || len(s.Partitions) != 0 {
		t.Fatalf("refused adds changed the transaction: %+v", s)
	}

	tx, err := a.txn(&AddTxnPartitions{ID: "tx", ProducerID: pid, Epoch: 1, Partitions: []TxnPartition{p0, p0}, NowMs: 10})
	if err != nil || tx.State != TxnOngoing || len(tx.Partitions) != 1 || tx.StartMs != 10 {
		t.Fatalf("add: %+v %v", tx, err)
	}
	if tx, err = a.txn(&AddTxnPartitions{ID: "tx", ProducerID: pid, Epoch: 1, Partitions: []TxnPartition{p1}, Groups: []string{"g"}, NowMs: 11}); err != nil ||
		len(tx.Partitions) != 2 || len(tx.Groups) != 1 || tx.StartMs != 10 {
		t.Fatalf("second add: %+v %v", tx, err)
	}
	if tx, err = a.txn(&EndTxn{ID: "tx", ProducerID: pid, Epoch: 1, Commit: true}); err != nil || tx.State != TxnPrepareCommit {
		t.Fatalf("commit: %+v %v", tx, err)
	}
	a.wantErr(ErrConcurrentTransactions, &AddTxnPartitions{ID: "tx", ProducerID: pid, Epoch: 1, Partitions: []TxnPartition{p0}})
	a.wantErr(ErrConcurrentTransactions, &InitTxn{ID: "tx", TimeoutMs: 60000, ProducerID: -1, Epoch: -1})
	a.wantErr(ErrInvalidTxnState, &EndTxn{ID: "tx", ProducerID: pid, Epoch: 1, Commit: false})
	if tx, err = a.txn(&EndTxn{ID: "tx", ProducerID: pid, Epoch: 1, Commit: true}); err != nil || tx.State != TxnPrepareCommit {
		t.Fatalf("a retried commit: %+v %v", tx, err)
	}
	a.wantErr(ErrProducerFenced, &CompleteTxn{ID: "tx", ProducerID: pid, Epoch: 0})
	if tx, err = a.txn(&CompleteTxn{ID: "tx", ProducerID: pid, Epoch: 1}); err != nil || tx.State != TxnCompleteCommit || len(tx.Partitions)+len(tx.Groups) != 0 {
		t.Fatalf("complete: %+v %v", tx, err)
	}
	if tx, err = a.txn(&CompleteTxn{ID: "tx", ProducerID: pid, Epoch: 1}); err != nil || tx.State != TxnCompleteCommit {
		t.Fatalf("a repeated completion: %+v %v", tx, err)
	}
	if tx, err = a.txn(&EndTxn{ID: "tx", ProducerID: pid, Epoch: 1, Commit: true}); err != nil || tx.State != TxnCompleteCommit {
		t.Fatalf("a commit retried after completion: %+v %v", tx, err)
	}

	// A new transaction, then a new producer takes the id over: the
	// ongoing transaction is aborted at the new epoch, and the client
	// is told to try again.
	if _, err = a.txn(&AddTxnPartitions{ID: "tx", ProducerID: pid, Epoch: 1, Partitions: []TxnPartition{p1}, NowMs: 20}); err != nil {
		t.Fatal(err)
	}
	tx, err = a.txn(&InitTxn{ID: "tx", TimeoutMs: 60000, ProducerID: -1, Epoch: -1, NowMs: 21})
	if !errors.Is(err, ErrConcurrentTransactions) || tx == nil || tx.State != TxnPrepareAbort || tx.Epoch != 2 || len(tx.Partitions) != 1 {
		t.Fatalf("init over an ongoing transaction: %+v %v", tx, err)
	}
	a.wantErr(ErrProducerFenced, &EndTxn{ID: "tx", ProducerID: pid, Epoch: 1, Commit: true})
	if tx, err = a.txn(&CompleteTxn{ID: "tx", ProducerID: pid, Epoch: 2}); err != nil || tx.State != TxnCompleteAbort {
		t.Fatalf("the abort completed: %+v %v", tx, err)
	}
	if tx, err = a.txn(&InitTxn{ID: "tx", TimeoutMs: 60000, ProducerID: -1, Epoch: -1}); err != nil || tx.Epoch != 3 || tx.State != TxnEmpty {
		t.Fatalf("init after the abort: %+v %v", tx, err)
	}
	// Nothing to end: an abort is a no-op, a commit refused.
	if tx, err = a.txn(&EndTxn{ID: "tx", ProducerID: pid, Epoch: 3}); err != nil || tx.State != TxnEmpty {
		t.Fatalf("abort of nothing: %+v %v", tx, err)
	}
	a.wantErr(ErrInvalidTxnState, &EndTxn{ID: "tx", ProducerID: pid, Epoch: 3, Commit: true})
	a.wantErr(ErrInvalidTxnState, &EndTxn{ID: "tx", ProducerID: pid, Epoch: 4})
	a.wantErr(ErrInvalidRequest, &InitTxn{ID: "", TimeoutMs: 1})
	a.wantErr(ErrInvalidRequest, &InitTxn{ID: "x", TimeoutMs: 0})
	a.wantErr(ErrUnknownTransactionalID, &CompleteTxn{ID: "nobody"})
}

// TestTxnInitRetries: KIP-360. An init naming the current producer id
// and epoch bumps it; one naming the epoch just before answers the same
// (a retry of the init that bumped it); an older epoch or another
// producer id is fenced.
func TestTxnInitRetries(t *testing.T) {
	a := &applier{t: t, f: openTestFSM(t, t.TempDir())}
	first, _ := a.txn(&InitTxn{ID: "tx", TimeoutMs: 1000, ProducerID: -1, Epoch: -1})
	pid := first.ProducerID
	bumped, err := a.txn(&InitTxn{ID: "tx", TimeoutMs: 1000, ProducerID: pid, Epoch: 0})
	if err != nil || bumped.Epoch != 1 {
		t.Fatalf("init from epoch 0: %+v %v", bumped, err)
	}
	retried, err := a.txn(&InitTxn{ID: "tx", TimeoutMs: 1000, ProducerID: pid, Epoch: 0})
	if err != nil || retried.Epoch != 1 || retried.ProducerID != pid {
		t.Fatalf("a retry of that init: %+v %v", retried, err)
	}
	a.wantErr(ErrProducerFenced, &InitTxn{ID: "tx", TimeoutMs: 1000, ProducerID: pid + 7, Epoch: 1})
	a.mustApply(&InitTxn{ID: "tx", TimeoutMs: 1000, ProducerID: -1, Epoch: -1})
	a.wantErr(ErrProducerFenced, &InitTxn{ID: "tx", TimeoutMs: 1000, ProducerID: pid, Epoch: 0})
}

// TestTxnEpochExhausted: past the last epoch, an init hands out a new
// producer id at epoch 0, and the old one is fenced.
func TestTxnEpochExhausted(t *testing.T) {
	a := &applier{t: t, f: openTestFSM(t, t.TempDir())}
	first, _ := a.txn(&InitTxn{ID: "tx", TimeoutMs: 1000, ProducerID: -1, Epoch: -1})
	cmds := make([]Command, math.MaxInt16) // epochs 1 to 32766, then a new producer id
	for i := range cmds {
		cmds[i] = &InitTxn{ID: "tx", TimeoutMs: 1000, ProducerID: -1, Epoch: -1}
	}
	a.mustApply(cmds...)
	if s := a.stateOf("tx"); s.ProducerID == first.ProducerID || s.Epoch != 0 {
		t.Fatalf("after %d inits: producer %d epoch %d, want a new producer id at epoch 0", len(cmds)+1, s.ProducerID, s.Epoch)
	}
	a.wantErr(ErrInvalidProducerIDMapping, &AddTxnPartitions{ID: "tx", ProducerID: first.ProducerID, Epoch: math.MaxInt16 - 1})
	// The idempotent producers' counter moved past it too.
	got := a.apply(&AllocateProducerIDs{Count: 1})[0]
	if got.Value <= a.stateOf("tx").ProducerID {
		t.Fatalf("an idempotent producer got id %d, not above the transactional %d", got.Value, a.stateOf("tx").ProducerID)
	}
}

// TestTxnRandom drives a few transactional ids with random commands from
// current, fenced and unknown producers, and checks after each that the
// state is one Kafka allows: producer ids and epochs only move forward,
// a completed or empty transaction holds no partitions, a prepared one
// came from an ongoing one and keeps its partitions, and every refused
// command changed nothing.
func TestTxnRandom(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed))
	a := &applier{t: t, f: openTestFSM(t, t.TempDir())}
	a.mustApply(testTopic("orders", 3, 1))
	ids := []string{"a", "b", "c"}
	last := map[string]Transaction{}
	for step := range 3000 {
		id := ids[rng.IntN(len(ids))]
		cur, known := last[id]
		pid, epoch := cur.ProducerID, cur.Epoch
		switch rng.IntN(5) { // mostly the current producer
		case 0:
			epoch -= int16(rng.IntN(2))
		case 1:
			pid += int64(rng.IntN(2))
		case 2:
			if rng.IntN(2) == 0 && cur.PrevProducerID >= 0 {
				pid, epoch = cur.PrevProducerID, cur.PrevEpoch // a retry of a v2 end
			} else {
				pid, epoch = cur.ClientProducer()
			}
		}
		var cmd Command
		switch rng.IntN(6) {
		case 0:
			if rng.IntN(2) == 0 {
				cmd = &InitTxn{ID: id, TimeoutMs: 1000, ProducerID: -1, Epoch: -1, NowMs: int64(step)}
			} else {
				cmd = &InitTxn{ID: id, TimeoutMs: 1000, ProducerID: pid, Epoch: epoch, NowMs: int64(step)}
			}
		case 1, 2:
			cmd = &AddTxnPartitions{ID: id, ProducerID: pid, Epoch: epoch, NowMs: int64(step),
				Partitions: []TxnPartition{{Topic: "orders", Partition: int32(rng.IntN(3))}}}
		case 3:
			cmd = &EndTxn{ID: id, ProducerID: pid, Epoch: epoch, Commit: rng.IntN(2) == 0, NowMs: int64(step), V2: rng.IntN(2) == 0}
		case 4:
			cmd = &TxnCommitOffsets{ID: id, ProducerID: pid, Epoch: epoch, Group: "g", NowMs: int64(step), AddGroup: rng.IntN(2) == 0,
				Offsets: []Offset{{Topic: "orders", Partition: int32(rng.IntN(3)), Offset: int64(step)}}}
		default:
			cmd = &CompleteTxn{ID: id, ProducerID: pid, Epoch: epoch, NowMs: int64(step)}
		}
		r := a.apply(cmd)[0]
		v := a.f.View()
		now, ok, err := v.Transaction(id)
		v.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			if known {
				t.Fatalf("step %d: %s vanished", step, id)
			}
			continue
		}
		before := cur
		switch {
		case r.Err != nil && !errors.Is(r.Err, ErrConcurrentTransactions) && known && !equalTxn(before, now):
			t.Fatalf("step %d: %T refused (%v) but changed %s:\n%+v\n%+v", step, cmd, r.Err, id, before, now)
		case known && now.ProducerID < before.ProducerID:
			t.Fatalf("step %d: %s's producer id went back from %d to %d", step, id, before.ProducerID, now.ProducerID)
		case known && now.ProducerID == before.ProducerID && now.Epoch < before.Epoch:
			t.Fatalf("step %d: %s's epoch went back from %d to %d", step, id, before.Epoch, now.Epoch)
		case (now.State == TxnEmpty || now.State == TxnCompleteCommit || now.State == TxnCompleteAbort) && len(now.Partitions)+len(now.Groups) > 0:
			t.Fatalf("step %d: %s is %s with partitions %v", step, id, now.State, now.Partitions)
		case (now.State == TxnPrepareCommit || now.State == TxnPrepareAbort) && before.State != now.State &&
			before.State != TxnOngoing:
			t.Fatalf("step %d: %s went from %s to %s", step, id, before.State, now.State)
		case (now.State == TxnPrepareCommit || now.State == TxnPrepareAbort) && before.State == TxnOngoing && len(now.Partitions) != len(before.Partitions):
			t.Fatalf("step %d: %s lost partitions preparing", step, id)
		case now.NextProducerID >= 0 && now.State != TxnPrepareCommit && now.State != TxnPrepareAbort:
			t.Fatalf("step %d: %s is %s with a next producer id %d", step, id, now.State, now.NextProducerID)
		case known && (before.State == TxnOngoing) != (now.State == TxnOngoing) && r.Err == nil && now.Epoch == before.Epoch &&
			now.ProducerID == before.ProducerID && (now.State == TxnPrepareCommit || now.State == TxnPrepareAbort) && cmdV2(cmd):
			t.Fatalf("step %d: a v2 end of %s kept epoch %d", step, id, now.Epoch)
		}
		last[id] = now
	}
}

func cmdV2(c Command) bool {
	e, ok := c.(*EndTxn)
	return ok && e.V2
}

// TestTxnV2 walks transactions v2 (KIP-890 part 2): every end bumps the
// epoch, a retry names the old one, an abort with nothing in progress
// bumps it too, TxnOffsetCommit adds its group itself, and an exhausted
// epoch moves to a new producer id only once the markers (which carry
// the old one) are written.
func TestTxnV2(t *testing.T) {
	a := &applier{t: t, f: openTestFSM(t, t.TempDir())}
	a.mustApply(testTopic("orders", 2, 1))
	p0 := TxnPartition{Topic: "orders", Partition: 0}
	init, err := a.txn(&InitTxn{ID: "tx", TimeoutMs: 60000, ProducerID: -1, Epoch: -1})
	if err != nil {
		t.Fatal(err)
	}
	pid := init.ProducerID
	add := func(epoch int16) { // what a produce of v12 does for its partition
		t.Helper()
		if _, err := a.txn(&AddTxnPartitions{ID: "tx", ProducerID: pid, Epoch: epoch, Partitions: []TxnPartition{p0}}); err != nil {
			t.Fatal(err)
		}
	}
	add(0)
	end := &EndTxn{ID: "tx", ProducerID: pid, Epoch: 0, Commit: true, V2: true}
	tx, err := a.txn(end)
	if err != nil || tx.State != TxnPrepareCommit || tx.Epoch != 1 || tx.PrevEpoch != 0 {
		t.Fatalf("v2 commit: %+v %v, want PrepareCommit at epoch 1", tx, err)
	}
	if id, e := tx.ClientProducer(); id != pid || e != 1 {
		t.Fatalf("the client is told producer %d epoch %d, want %d/1", id, e, pid)
	}
	if again, err := a.txn(end); err != nil || again.Epoch != 1 {
		t.Fatalf("retried v2 commit: %+v %v", again, err)
	}
	a.wantErr(ErrProducerFenced, &EndTxn{ID: "tx", ProducerID: pid, Epoch: 0, Commit: false, V2: true})
	a.wantErr(ErrConcurrentTransactions, &AddTxnPartitions{ID: "tx", ProducerID: pid, Epoch: 1, Partitions: []TxnPartition{p0}})
	a.wantErr(ErrProducerFenced, &AddTxnPartitions{ID: "tx", ProducerID: pid, Epoch: 0, Partitions: []TxnPartition{p0}})
	if _, err := a.txn(&CompleteTxn{ID: "tx", ProducerID: pid, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	if again, err := a.txn(end); err != nil || again.State != TxnCompleteCommit || again.Epoch != 1 {
		t.Fatalf("v2 commit retried after completion: %+v %v", again, err)
	}

	// An abort with nothing in progress bumps the epoch; a commit of
	// nothing is refused.
	tx, err = a.txn(&EndTxn{ID: "tx", ProducerID: pid, Epoch: 1, V2: true})
	if err != nil || tx.State != TxnCompleteAbort || tx.Epoch != 2 {
		t.Fatalf("empty v2 abort: %+v %v, want CompleteAbort at epoch 2", tx, err)
	}
	a.wantErr(ErrInvalidTxnState, &EndTxn{ID: "tx", ProducerID: pid, Epoch: 2, Commit: true, V2: true})

	// TxnOffsetCommit v5 adds its group and starts the transaction.
	if _, err := a.txn(&TxnCommitOffsets{ID: "tx", ProducerID: pid, Epoch: 2, Group: "g", AddGroup: true,
		Offsets: []Offset{{Topic: "orders", Partition: 1, Offset: 9}}}); err != nil {
		t.Fatal(err)
	}
	if s := a.stateOf("tx"); s.State != TxnOngoing || len(s.Groups) != 1 {
		t.Fatalf("after an implicit group add: %+v", s)
	}
	a.mustApply(&EndTxn{ID: "tx", ProducerID: pid, Epoch: 2, Commit: true, V2: true}, &CompleteTxn{ID: "tx", ProducerID: pid, Epoch: 3, NowMs: 5})
	if got := a.offsets("g"); len(got) != 1 || got[0].Offset != 9 {
		t.Fatalf("offsets after the v2 commit: %+v", got)
	}

	// Timed out: the coordinator's abort fences the producer, whose own
	// v2 abort is then answered as a retry.
	add(3)
	if _, err := a.txn(&ExpireTxn{ID: "tx", ProducerID: pid, Epoch: 3}); err != nil {
		t.Fatal(err)
	}
	if tx, err := a.txn(&EndTxn{ID: "tx", ProducerID: pid, Epoch: 3, V2: true}); err != nil || tx.Epoch != 4 {
		t.Fatalf("the producer's abort after expiry: %+v %v", tx, err)
	}
	a.wantErr(ErrProducerFenced, &EndTxn{ID: "tx", ProducerID: pid, Epoch: 3, Commit: true, V2: true})
}

// TestTxnEpochExhaustedWithMarkers: a transaction ended (v2), aborted by
// a new producer or expired at the last epoch writes its markers with
// the producer id that wrote its data; the next producer id takes over
// once they are written.
func TestTxnEpochExhaustedWithMarkers(t *testing.T) {
	for _, how := range []string{"v2 end", "init", "expire"} {
		t.Run(how, func(t *testing.T) {
			a := &applier{t: t, f: openTestFSM(t, t.TempDir())}
			a.mustApply(testTopic("orders", 1, 1))
			first, _ := a.txn(&InitTxn{ID: "tx", TimeoutMs: 1000, ProducerID: -1, Epoch: -1})
			pid := first.ProducerID
			cmds := make([]Command, math.MaxInt16-1) // to epoch 32766, the last before exhaustion
			for i := range cmds {
				cmds[i] = &InitTxn{ID: "tx", TimeoutMs: 1000, ProducerID: -1, Epoch: -1}
			}
			a.mustApply(cmds...)
			last := int16(math.MaxInt16 - 1)
			a.mustApply(&AddTxnPartitions{ID: "tx", ProducerID: pid, Epoch: last, Partitions: []TxnPartition{{Topic: "orders"}}})
			var cmd Command
			switch how {
			case "v2 end":
				cmd = &EndTxn{ID: "tx", ProducerID: pid, Epoch: last, Commit: true, V2: true}
			case "init":
				cmd = &InitTxn{ID: "tx", TimeoutMs: 1000, ProducerID: -1, Epoch: -1}
			case "expire":
				cmd = &ExpireTxn{ID: "tx", ProducerID: pid, Epoch: last}
			}
			a.apply(cmd)
			tx := a.stateOf("tx")
			if tx.ProducerID != pid || tx.Epoch != math.MaxInt16 || tx.NextProducerID < 0 || tx.NextProducerID == pid {
				t.Fatalf("prepared at the last epoch: %+v, want the markers at producer %d epoch %d and a next producer id", tx, pid, math.MaxInt16)
			}
			next := tx.NextProducerID
			a.wantErr(ErrConcurrentTransactions, &AddTxnPartitions{ID: "tx", ProducerID: next, Epoch: 0, Partitions: []TxnPartition{{Topic: "orders"}}})
			a.mustApply(&CompleteTxn{ID: "tx", ProducerID: pid, Epoch: math.MaxInt16})
			if tx := a.stateOf("tx"); tx.ProducerID != next || tx.Epoch != 0 || tx.NextProducerID != -1 {
				t.Fatalf("completed: %+v, want producer %d at epoch 0", tx, next)
			}
			if how == "v2 end" {
				if tx, err := a.txn(cmd); err != nil || tx.ProducerID != next {
					t.Fatalf("the v2 end retried: %+v %v", tx, err)
				}
			}
			a.mustApply(&AddTxnPartitions{ID: "tx", ProducerID: next, Epoch: 0, Partitions: []TxnPartition{{Topic: "orders"}}})
		})
	}
}

func equalTxn(a, b Transaction) bool {
	if a.ProducerID != b.ProducerID || a.Epoch != b.Epoch || a.State != b.State || len(a.Partitions) != len(b.Partitions) || len(a.Groups) != len(b.Groups) {
		return false
	}
	for i := range a.Partitions {
		if a.Partitions[i] != b.Partitions[i] {
			return false
		}
	}
	return true
}

// TestTxnOffsets: offsets committed in a transaction wait in it; a
// commit writes them to the group, an abort drops them; a group the
// transaction has not added is refused. A transaction past its timeout
// expires: its producer is fenced and it aborts.
func TestTxnOffsets(t *testing.T) {
	a := &applier{t: t, f: openTestFSM(t, t.TempDir())}
	a.mustApply(testTopic("orders", 2, 1))
	init, err := a.txn(&InitTxn{ID: "tx", TimeoutMs: 60000, ProducerID: -1, Epoch: -1})
	if err != nil {
		t.Fatal(err)
	}
	pid := init.ProducerID
	off := func(p int32, o int64) Offset { return Offset{Topic: "orders", Partition: p, Offset: o} }
	a.wantErr(ErrInvalidTxnState, &TxnCommitOffsets{ID: "tx", ProducerID: pid, Epoch: 0, Group: "g", Offsets: []Offset{off(0, 1)}})
	if _, err := a.txn(&AddTxnPartitions{ID: "tx", ProducerID: pid, Epoch: 0, Groups: []string{"g"}}); err != nil {
		t.Fatal(err)
	}
	a.wantErr(ErrInvalidTxnState, &TxnCommitOffsets{ID: "tx", ProducerID: pid, Epoch: 0, Group: "other", Offsets: []Offset{off(0, 1)}})
	a.wantErr(ErrProducerFenced, &TxnCommitOffsets{ID: "tx", ProducerID: pid, Epoch: -1, Group: "g", Offsets: []Offset{off(0, 1)}})
	for _, o := range []Offset{off(0, 1), off(1, 7), off(0, 3)} {
		if _, err := a.txn(&TxnCommitOffsets{ID: "tx", ProducerID: pid, Epoch: 0, Group: "g", Offsets: []Offset{o}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.offsets("g"); len(got) != 0 {
		t.Fatalf("pending offsets visible before the commit: %+v", got)
	}
	if _, err := a.txn(&EndTxn{ID: "tx", ProducerID: pid, Epoch: 0, Commit: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.txn(&CompleteTxn{ID: "tx", ProducerID: pid, Epoch: 0, NowMs: 50}); err != nil {
		t.Fatal(err)
	}
	got := a.offsets("g")
	if len(got) != 2 || got[0].Offset != 3 || got[1].Offset != 7 || got[0].Group != "g" || got[0].CommitTimeMs != 50 {
		t.Fatalf("committed offsets: %+v, want partition 0 at 3 and 1 at 7", got)
	}

	// Aborted: nothing of it reaches the group.
	if _, err := a.txn(&AddTxnPartitions{ID: "tx", ProducerID: pid, Epoch: 0, Groups: []string{"g"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.txn(&TxnCommitOffsets{ID: "tx", ProducerID: pid, Epoch: 0, Group: "g", Offsets: []Offset{off(0, 100)}}); err != nil {
		t.Fatal(err)
	}
	a.wantErr(ErrInvalidTxnState, &ExpireTxn{ID: "tx", ProducerID: pid, Epoch: 1})
	tx, err := a.txn(&ExpireTxn{ID: "tx", ProducerID: pid, Epoch: 0})
	if err != nil || tx.State != TxnPrepareAbort || tx.Epoch != 1 {
		t.Fatalf("expiry: %+v %v", tx, err)
	}
	a.wantErr(ErrProducerFenced, &EndTxn{ID: "tx", ProducerID: pid, Epoch: 0, Commit: true})
	if _, err := a.txn(&CompleteTxn{ID: "tx", ProducerID: pid, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	if got := a.offsets("g"); got[0].Offset != 3 {
		t.Fatalf("an aborted transaction's offset reached the group: %+v", got)
	}
}

// TestForgetTxn: an idle transactional id is removed only at rest and
// unchanged since the coordinator read it.
func TestForgetTxn(t *testing.T) {
	a := &applier{t: t, f: openTestFSM(t, t.TempDir())}
	a.mustApply(testTopic("orders", 1, 1))
	init, err := a.txn(&InitTxn{ID: "tx", TimeoutMs: 60000, ProducerID: -1, Epoch: -1, NowMs: 5})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.txn(&AddTxnPartitions{ID: "tx", ProducerID: init.ProducerID, Epoch: 0, Partitions: []TxnPartition{{Topic: "orders", Partition: 0}}, NowMs: 6}); err != nil {
		t.Fatal(err)
	}
	a.wantErr(ErrInvalidTxnState, &ForgetTxn{ID: "tx", UpdateMs: 6}) // ongoing
	if _, err := a.txn(&EndTxn{ID: "tx", ProducerID: init.ProducerID, Epoch: 0, NowMs: 7}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.txn(&CompleteTxn{ID: "tx", ProducerID: init.ProducerID, Epoch: 0, NowMs: 8}); err != nil {
		t.Fatal(err)
	}
	a.wantErr(ErrInvalidTxnState, &ForgetTxn{ID: "tx", UpdateMs: 7}) // changed since
	a.mustApply(&ForgetTxn{ID: "tx", UpdateMs: 8})
	v := a.f.View()
	_, ok, err := v.Transaction("tx")
	v.Close()
	if err != nil || ok {
		t.Fatalf("the transactional id is still there: %v %v", ok, err)
	}
	a.wantErr(ErrUnknownTransactionalID, &ForgetTxn{ID: "tx", UpdateMs: 8})
	// A new producer with the id starts afresh, with a new producer id.
	again, err := a.txn(&InitTxn{ID: "tx", TimeoutMs: 60000, ProducerID: -1, Epoch: -1, NowMs: 9})
	if err != nil || again.ProducerID == init.ProducerID || again.Epoch != 0 {
		t.Fatalf("init after forgetting: %+v %v", again, err)
	}
}
