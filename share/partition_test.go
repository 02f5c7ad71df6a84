package share

import (
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestPartitionRandom drives a share-partition with random members
// fetching, accepting, releasing, rejecting, renewing and dying, locks
// expiring and failovers (Snapshot, Restore) in between, over a log with
// gaps, and checks each step against a model kept from the answers alone:
//   - no record is held by two members at once;
//   - a record's delivery count is the number of times it was handed out,
//     and never exceeds the limit;
//   - a record accepted or rejected is never handed out again;
//   - the start never passes a record that is not done, and never goes
//     back;
//   - an acknowledgement of a record the member does not hold is refused
//     and changes nothing;
//   - a restored partition has the same durable state;
//   - in the end, with every member accepting, the start reaches the end
//     of the log.
func TestPartitionRandom(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		testPartitionRandom(t, seed)
	}
}

func testPartitionRandom(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	cfg := Config{DeliveryLimit: int32(1 + rng.IntN(5)), LockDuration: time.Second, MaxInFlight: 5 + rng.IntN(60), DeadLetters: rng.IntN(2) == 0}
	// The log: offsets 0..n-1 with some missing (compacted away).
	n := 50 + rng.IntN(300)
	var log []int64
	for off := range int64(n) {
		if rng.IntN(10) > 0 {
			log = append(log, off)
		}
	}
	p := New(cfg, 0)
	now := time.Unix(1000, 0)
	members := []string{"a", "b", "c", "d"}
	holder := map[int64]string{}       // the model: who holds each offset
	delivered := map[int64]int32{}     // how often each was handed out
	done := map[int64]bool{}           // accepted or rejected by a member
	held := map[string][]int64{}       // per member, what it was handed and may acknowledge
	lockUntil := map[int64]time.Time{} // each held offset's lock
	lastStart := p.Start()
	wantDead := map[int64]bool{} // rejected, or let go at the delivery limit
	gotDead := map[int64]bool{}
	letGo := func(off int64) { // released, expired or lost in a failover
		if delivered[off] >= cfg.DeliveryLimit {
			wantDead[off] = true
		}
	}

	fetch := func(m string, max int) {
		var offs []int64
		for _, off := range log {
			if off >= p.Start() {
				offs = append(offs, off)
			}
		}
		for _, r := range p.Acquire(m, spans(offs), max, now) {
			for off := r.First; off <= r.Last; off++ {
				if h, ok := holder[off]; ok {
					t.Fatalf("seed %d: offset %d handed to %s while %s holds it", seed, off, m, h)
				}
				if done[off] {
					t.Fatalf("seed %d: offset %d handed out after it was done", seed, off)
				}
				if !slices.Contains(log, off) {
					t.Fatalf("seed %d: offset %d handed out but the log has no record there", seed, off)
				}
				delivered[off]++
				if delivered[off] != r.Deliveries || r.Deliveries > cfg.DeliveryLimit {
					t.Fatalf("seed %d: offset %d delivery %d, model %d, limit %d", seed, off, r.Deliveries, delivered[off], cfg.DeliveryLimit)
				}
				holder[off], lockUntil[off] = m, now.Add(cfg.LockDuration)
				held[m] = append(held[m], off)
			}
		}
	}
	drop := func(m string, off int64) {
		delete(holder, off)
		delete(lockUntil, off)
		held[m] = slices.DeleteFunc(held[m], func(o int64) bool { return o == off })
	}
	ack := func(m string, typ AckType) {
		if len(held[m]) == 0 {
			return
		}
		off := held[m][rng.IntN(len(held[m]))]
		if err := p.Acknowledge(m, []Ack{{off, off, []AckType{typ}}}, now); err != nil {
			t.Fatalf("seed %d: %s acknowledges its offset %d: %v", seed, m, off, err)
		}
		switch typ {
		case Accept, Reject:
			done[off] = true
			drop(m, off)
			if typ == Reject {
				wantDead[off] = true
			}
		case Release:
			letGo(off)
			drop(m, off)
		case Renew:
			lockUntil[off] = now.Add(cfg.LockDuration)
		}
	}
	check := func(step int) {
		t.Helper()
		if p.Start() < lastStart {
			t.Fatalf("seed %d step %d: start went back from %d to %d", seed, step, lastStart, p.Start())
		}
		lastStart = p.Start()
		for off := range holder {
			if off < p.Start() {
				t.Fatalf("seed %d step %d: start %d passed held offset %d", seed, step, p.Start(), off)
			}
			if st, _ := p.StateOf(off); st != Acquired {
				t.Fatalf("seed %d step %d: held offset %d is %s", seed, step, off, st)
			}
		}
		for _, off := range log {
			if off >= p.Start() {
				break
			}
			if !done[off] && delivered[off] < cfg.DeliveryLimit {
				t.Fatalf("seed %d step %d: start %d passed offset %d, neither done nor delivered %d times", seed, step, p.Start(), off, cfg.DeliveryLimit)
			}
		}
		next := p.End()
		for _, off := range log {
			if off >= p.Start() && off < p.End() && holder[off] == "" && !done[off] && delivered[off] < cfg.DeliveryLimit {
				next = off
				break
			}
		}
		if got := p.NextOffset(); got != next {
			t.Fatalf("seed %d step %d: next offset %d, model %d", seed, step, got, next)
		}
		if p.End()-p.Start() > int64(cfg.MaxInFlight) {
			t.Fatalf("seed %d step %d: %d records in the window, max %d", seed, step, p.End()-p.Start(), cfg.MaxInFlight)
		}
	}
	for step := range 2000 {
		m := members[rng.IntN(len(members))]
		switch r := rng.IntN(100); {
		case r < 35:
			fetch(m, 1+rng.IntN(8))
		case r < 60:
			ack(m, Accept)
		case r < 68:
			ack(m, Release)
		case r < 73:
			ack(m, Reject)
		case r < 76:
			ack(m, Renew)
		case r < 82:
			// A member acknowledges a record it does not hold: refused,
			// and nothing changes.
			off := int64(rng.IntN(n))
			if holder[off] == m {
				break
			}
			before := p.Snapshot()
			if err := p.Acknowledge(m, []Ack{{off, off, []AckType{Accept}}}, now); err != ErrInvalidRecordState {
				t.Fatalf("seed %d: %s acknowledges offset %d held by %q: %v", seed, m, off, holder[off], err)
			}
			if !reflect.DeepEqual(before, p.Snapshot()) {
				t.Fatalf("seed %d: a refused acknowledgement changed the state", seed)
			}
		case r < 90:
			now = now.Add(time.Duration(rng.IntN(800)) * time.Millisecond)
			p.Expire(now)
			for off, until := range lockUntil {
				if !now.Before(until) {
					letGo(off)
					drop(holder[off], off)
				}
			}
		case r < 93:
			p.ReleaseMember(m)
			for _, off := range slices.Clone(held[m]) {
				letGo(off)
				drop(m, off)
			}
		default:
			// Failover: only the snapshot survives; every lock is lost,
			// as if each holder had released what it held.
			p = Restore(cfg, p.Snapshot())
			for off := range holder {
				letGo(off)
				drop(holder[off], off)
			}
			// Restoring what a restore built changes nothing.
			s := p.Snapshot()
			if got := Restore(cfg, s).Snapshot(); !reflect.DeepEqual(got, s) {
				t.Fatalf("seed %d: restored %+v from %+v", seed, got, s)
			}
		}
		for _, d := range p.TakeDead() {
			if gotDead[d.Offset] || d.Deliveries != delivered[d.Offset] {
				t.Fatalf("seed %d step %d: dead letter %+v twice, or with the wrong count (model %d)", seed, step, d, delivered[d.Offset])
			}
			gotDead[d.Offset] = true
		}
		check(step)
	}
	if !cfg.DeadLetters && len(wantDead) > 0 {
		wantDead = map[int64]bool{}
	}
	if !maps.Equal(gotDead, wantDead) {
		t.Fatalf("seed %d: dead letters %v, model %v", seed, slices.Sorted(maps.Keys(gotDead)), slices.Sorted(maps.Keys(wantDead)))
	}
	// Drain: everyone accepts whatever it gets.
	for range 100000 {
		if p.Start() > log[len(log)-1] {
			break
		}
		now = now.Add(2 * time.Second) // every lock left over expires
		p.Expire(now)
		for off := range holder {
			drop(holder[off], off)
		}
		for _, m := range members {
			fetch(m, 16)
			for len(held[m]) > 0 {
				ack(m, Accept)
			}
		}
		check(-1)
	}
	if p.Start() <= log[len(log)-1] {
		t.Fatalf("seed %d: the start is stuck at %d, the log ends at %d", seed, p.Start(), log[len(log)-1])
	}
	if p.InFlight() != 0 {
		t.Fatalf("seed %d: %d records still in flight", seed, p.InFlight())
	}
}

// TestAcknowledgeBatch: a batch with one type per offset, a gap among
// them, applies all or nothing.
func TestAcknowledgeBatch(t *testing.T) {
	now := time.Unix(0, 0)
	p := New(Config{}, 10)
	got := p.Acquire("a", []Span{{10, 11}, {13, 14}}, 10, now) // 12 is a gap in the log
	if want := []Range{{10, 11, 1}, {13, 14, 1}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("acquired %v, want %v", got, want)
	}
	if st, _ := p.StateOf(12); st != Archived {
		t.Fatalf("the gap is %s", st)
	}
	// One offset of the batch is not b's: nothing applies.
	if err := p.Acknowledge("b", []Ack{{10, 11, []AckType{Accept}}}, now); err != ErrInvalidRecordState {
		t.Fatal(err)
	}
	if err := p.Acknowledge("a", []Ack{{10, 11, []AckType{Accept, Release}}, {13, 14, []AckType{9}}}, now); err != ErrInvalidAckType {
		t.Fatal(err)
	}
	if st, _ := p.StateOf(10); st != Acquired {
		t.Fatalf("a refused batch applied: offset 10 is %s", st)
	}
	if err := p.Acknowledge("a", []Ack{{10, 11, []AckType{Accept, Release}}, {13, 14, []AckType{Reject}}}, now); err != nil {
		t.Fatal(err)
	}
	if p.Start() != 11 {
		t.Fatalf("start %d, want 11 (offset 11 was released)", p.Start())
	}
	if got := p.Acquire("b", []Span{{11, 11}, {13, 15}}, 10, now); !reflect.DeepEqual(got, []Range{{11, 11, 2}, {15, 15, 1}}) {
		t.Fatalf("redelivery: %v", got)
	}
}

// spans turns offsets into the spans a fetch returns: runs of
// consecutive ones.
func spans(offs []int64) []Span {
	var out []Span
	for _, off := range offs {
		if n := len(out); n > 0 && out[n-1].Last == off-1 {
			out[n-1].Last = off
		} else {
			out = append(out, Span{off, off})
		}
	}
	return out
}
