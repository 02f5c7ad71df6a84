package replica

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var t0 = time.Unix(1_700_000_000, 0)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// TestLeaderTable walks one leadership of replicas 1 (leader), 2, 3 by
// hand.
func TestLeaderTable(t *testing.T) {
	l := NewLeader(1, []int32{1, 2, 3}, []int32{1, 2, 3}, 0, at(0), 10*time.Second)
	check := func(step string, leo, wantHW int64) {
		t.Helper()
		if hw, _ := l.Advance(leo); hw != wantHW {
			t.Fatalf("%s: high watermark %d, want %d", step, hw, wantHW)
		}
	}
	check("nobody fetched", 100, 0)
	l.Fetched(2, 40, 100, at(1))
	check("3 not heard from", 100, 0)
	l.Fetched(3, 70, 100, at(2))
	check("min over the ISR", 100, 40)
	l.Fetched(2, 100, 100, at(3))
	check("2 caught up, 3 at 70", 100, 70)
	l.Fetched(3, 50, 100, at(4)) // a follower that truncated
	check("never backwards", 100, 70)
	if isr, changed := l.WantISR(at(5000)); changed {
		t.Fatalf("ISR change within the lag limit: %v", isr)
	}
	// 3 keeps fetching behind the log end, which keeps moving: it is
	// caught up at its previous fetch as long as it reaches the log end
	// that fetch saw.
	l.Fetched(3, 100, 150, at(6000))  // reaches 100, the leader's end at its fetch at 4: caught up at 4
	l.Fetched(3, 150, 200, at(12000)) // reaches 150: caught up at 6000
	l.Fetched(2, 200, 200, at(12000))
	if isr, changed := l.WantISR(at(15000)); changed {
		t.Fatalf("3 caught up at 6000, lag limit 10s: %v", isr)
	}
	if isr, changed := l.WantISR(at(16001)); !changed || !slices.Equal(isr, []int32{1, 2}) {
		t.Fatalf("3 last caught up at 6000: ISR at 16001 %v %v, want [1 2]", isr, changed)
	}
	l.SetReplicas([]int32{1, 2, 3}, []int32{1, 2}, at(16001))
	check("3 out of the ISR no longer holds it", 200, 200)
	l.Fetched(3, 190, 200, at(16500))
	if _, changed := l.WantISR(at(16500)); changed {
		t.Fatal("3 rejoined below the high watermark")
	}
	l.Fetched(3, 200, 200, at(17000))
	if isr, changed := l.WantISR(at(17000)); !changed || !slices.Equal(isr, []int32{1, 2, 3}) {
		t.Fatalf("3 at the high watermark: %v %v, want [1 2 3]", isr, changed)
	}
	// Alone in the ISR, the leader's log end is the high watermark.
	solo := NewLeader(1, []int32{1}, []int32{1}, 5, at(0), time.Second)
	if hw, moved := solo.Advance(9); hw != 9 || !moved {
		t.Fatalf("single replica: %d %v", hw, moved)
	}
}

// TestLeaderOracle drives a leader with random fetches, appends, clock
// steps and committed ISR changes, and checks every answer against a
// naive oracle that recomputes from the whole history.
func TestLeaderOracle(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 99))
		replicas := []int32{1, 2, 3, 4}[:2+rng.IntN(3)]
		lagMax := time.Duration(1+rng.IntN(5)) * time.Second
		now := at(0)
		o := newOracle(replicas, now, lagMax)
		l := NewLeader(1, replicas, replicas, 0, now, lagMax)
		leo := int64(0)
		// ctrlISR is the ISR the controller holds: any of its members may
		// be elected at any moment. pending is a change it committed that
		// this leader has not seen yet (nil: none).
		ctrlISR := slices.Clone(replicas)
		var pending []int32
		for step := range 300 {
			if pending != nil && rng.IntN(4) == 0 { // the metadata arrives
				l.SetReplicas(replicas, pending, now)
				o.setISR(pending, now)
				pending = nil
			}
			switch rng.IntN(5) {
			case 0:
				leo += int64(rng.IntN(20))
			case 1:
				now = now.Add(time.Duration(rng.IntN(1500)) * time.Millisecond)
			case 2:
				id := replicas[1+rng.IntN(len(replicas)-1)]
				off := int64(rng.IntN(int(leo) + 1))
				if rng.IntN(3) > 0 { // mostly near the end
					off = max(0, leo-int64(rng.IntN(5)))
				}
				l.Fetched(id, off, leo, now)
				o.fetched(id, off, leo, now)
			case 3:
				want, changed := l.WantISR(now)
				oracleISR := o.wantISR(now)
				if !slices.Equal(want, oracleISR) || changed != !o.sameISR(oracleISR) {
					t.Fatalf("seed %d step %d: WantISR %v %v, oracle %v (committed %v)", seed, step, want, changed, oracleISR, o.isr)
				}
				if changed {
					l.Proposing(want)
					o.propose(want)
					switch fate := rng.IntN(4); {
					case fate == 0 && pending == nil: // the controller commits it, seen at once
						l.ProposalCommitted(want)
						l.SetReplicas(replicas, want, now)
						o.setISR(want, now)
						ctrlISR = slices.Clone(want)
					case fate == 1: // it refuses it (a stale epoch, say)
						l.ProposalFailed()
						o.failed()
					case fate == 2 && pending == nil: // it commits it; the metadata comes later
						l.ProposalCommitted(want)
						o.committedChange(want)
						ctrlISR, pending = slices.Clone(want), slices.Clone(want)
					} // else its fate is not known yet
				}
			case 4:
				hw, _ := l.Advance(leo)
				if want := o.advance(leo); hw != want {
					t.Fatalf("seed %d step %d: high watermark %d, oracle %d", seed, step, hw, want)
				}
				if hw > leo {
					t.Fatalf("seed %d step %d: high watermark %d past the log end %d", seed, step, hw, leo)
				}
				// Safety: everything acknowledged is on every replica the
				// controller could elect now.
				for _, id := range ctrlISR {
					if id != 1 && hw > o.maxLEO(id) && hw > o.hwAtJoin(id) {
						t.Fatalf("seed %d step %d: high watermark %d, but %d, in the controller's ISR %v, has only %d",
							seed, step, hw, id, ctrlISR, o.leo(id))
					}
				}
			}
		}
	}
}

// oracle keeps every fetch and recomputes from them.
type oracle struct {
	replicas []int32
	isr      []int32
	lagMax   time.Duration
	hw       int64
	fetches  map[int32][]fetchEvent
	joined   map[int32]time.Time // when each ISR member last entered (or the leadership began)
	left     map[int32]time.Time // when each follower last left the ISR
	adding   []int32             // replicas proposed ISR changes add, fate unknown
	// committed are replicas a change known to have committed adds, not
	// seen yet; joinHW is the high watermark when each last joined the
	// controller's ISR.
	committed []int32
	joinHW    map[int32]int64
}

func (o *oracle) failed() { o.adding = nil }

func (o *oracle) committedChange(isr []int32) {
	for _, id := range isr {
		if !slices.Contains(o.isr, id) && !slices.Contains(o.committed, id) {
			o.committed = append(o.committed, id)
			o.joinHW[id] = o.hw
		}
	}
}

// maxLEO is the furthest the follower's log was known to reach (the
// random fetches may go back, as after a truncation).
func (o *oracle) maxLEO(id int32) int64 {
	best := int64(0)
	for _, f := range o.fetches[id] {
		best = max(best, min(f.offset, f.leaderLEO))
	}
	return best
}

// hwAtJoin is the high watermark when id last joined the ISR: a
// replica joins only once it has everything below it, so a member that
// has not fetched since still holds that much.
func (o *oracle) hwAtJoin(id int32) int64 { return o.joinHW[id] }

type fetchEvent struct {
	offset, leaderLEO int64
	at                time.Time
}

func newOracle(replicas []int32, now time.Time, lagMax time.Duration) *oracle {
	o := &oracle{replicas: replicas, isr: slices.Clone(replicas), lagMax: lagMax, fetches: map[int32][]fetchEvent{},
		joined: map[int32]time.Time{}, left: map[int32]time.Time{}, joinHW: map[int32]int64{}}
	for _, id := range replicas {
		o.joined[id] = now
	}
	return o
}

func (o *oracle) fetched(id int32, off, leo int64, now time.Time) {
	o.fetches[id] = append(o.fetches[id], fetchEvent{off, leo, now})
}

func (o *oracle) propose(isr []int32) {
	for _, id := range isr {
		if !slices.Contains(o.isr, id) && !slices.Contains(o.adding, id) {
			o.adding = append(o.adding, id)
		}
	}
}

func (o *oracle) setISR(isr []int32, now time.Time) {
	o.adding, o.committed = nil, nil
	for _, id := range isr {
		if !slices.Contains(o.isr, id) {
			o.joined[id] = now
			if _, ok := o.joinHW[id]; !ok {
				o.joinHW[id] = o.hw
			}
		}
	}
	for _, id := range o.isr {
		if !slices.Contains(isr, id) {
			o.left[id] = now
		}
	}
	o.isr = slices.Clone(isr)
}

func (o *oracle) sameISR(isr []int32) bool {
	a, b := slices.Clone(isr), slices.Clone(o.isr)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// leo is the follower's last fetch offset, clamped to the log end then.
func (o *oracle) leo(id int32) int64 {
	fs := o.fetches[id]
	if len(fs) == 0 {
		return -1
	}
	last := fs[len(fs)-1]
	return min(last.offset, last.leaderLEO)
}

// caughtUp is the latest time the follower was caught up, from scratch.
func (o *oracle) caughtUp(id int32) time.Time {
	best := o.joined[id]
	fs := o.fetches[id]
	for k, f := range fs {
		var c time.Time
		if f.offset >= f.leaderLEO {
			c = f.at
		} else if k > 0 && f.offset >= fs[k-1].leaderLEO {
			c = fs[k-1].at
		}
		if c.After(best) {
			best = c
		}
	}
	return best
}

// fetchedSince reports a fetch by id after t.
func (o *oracle) fetchedSince(id int32, t time.Time) bool {
	fs := o.fetches[id]
	return len(fs) > 0 && fs[len(fs)-1].at.After(t)
}

func (o *oracle) advance(leo int64) int64 {
	low := leo
	for _, id := range slices.Concat(o.isr, o.adding, o.committed) {
		if id == 1 {
			continue
		}
		f := o.leo(id)
		if f < 0 {
			return o.hw
		}
		low = min(low, f)
	}
	o.hw = max(o.hw, low)
	return o.hw
}

func (o *oracle) wantISR(now time.Time) []int32 {
	var isr []int32
	for _, id := range o.replicas {
		in := slices.Contains(o.isr, id)
		switch {
		case id == 1:
			isr = append(isr, id)
		case in && now.Sub(o.caughtUp(id)) <= o.lagMax:
			isr = append(isr, id)
		case !in && o.leo(id) >= 0 && o.leo(id) >= o.hw && o.fetchedSince(id, o.left[id]):
			isr = append(isr, id)
		}
	}
	return isr
}

// TestLeaderCountsJoiningReplica is the loss the fault suite found:
// leader 3 (ISR [3 2]) proposes to add replica 1, caught up to the high
// watermark at 169; the controller commits it and at once elects 1
// leader, before 3 hears of the commit. Records 3 acknowledged meanwhile
// on the strength of [3 2] alone were missing on 1 and were lost. While
// the proposal is out, the high watermark must wait for 1 too.
func TestLeaderCountsJoiningReplica(t *testing.T) {
	now := at(0)
	l := NewLeader(3, []int32{1, 2, 3}, []int32{3, 2}, 169, now, 10*time.Second)
	l.Fetched(1, 169, 169, now)
	l.Fetched(2, 169, 169, now)
	proposeJoiner(t, l, 1, now)
	l.Fetched(2, 229, 229, now) // 2 has the next 60 records, 1 not yet
	if hw, _ := l.Advance(229); hw != 169 {
		t.Fatalf("high watermark %d while 1, proposed into the ISR, has only 169", hw)
	}
	l.Fetched(1, 229, 229, now)
	if hw, _ := l.Advance(229); hw != 229 {
		t.Fatalf("high watermark %d once 1 has it too", hw)
	}
	// A refused proposal stops counting 1.
	l.ProposalFailed()
	l.Fetched(2, 300, 300, now)
	if hw, _ := l.Advance(300); hw != 300 {
		t.Fatalf("high watermark %d after the proposal was refused", hw)
	}
}

// TestLeaderKeepsCommittedJoinerAfterRefusal is seed 17006's loss:
// leader 1 (ISR [1 2]) proposed adding 3, caught up at 5736, and the
// controller committed it; before the metadata reached 1, a second
// proposal from its older view was refused as stale, and the refusal
// stopped 3 counting. 1 then acknowledged 5736-5750 on 2's word alone,
// the controller elected 3, and the records were lost.
func TestLeaderKeepsCommittedJoinerAfterRefusal(t *testing.T) {
	now := at(0)
	l := NewLeader(1, []int32{3, 1, 2}, []int32{1, 2}, 5736, now, 10*time.Second)
	l.Fetched(2, 5736, 5736, now)
	l.Fetched(3, 5736, 5736, now)
	isr := proposeJoiner(t, l, 3, now)
	l.ProposalCommitted(isr) // the controller may elect 3 from now on
	l.Proposing(isr)         // from the view that does not show it yet
	l.ProposalFailed()       // refused: a stale partition epoch
	l.Fetched(2, 5751, 5751, now)
	if hw, _ := l.Advance(5751); hw != 5736 {
		t.Fatalf("high watermark %d while 3, in the committed ISR, has 5736", hw)
	}
	l.SetReplicas([]int32{3, 1, 2}, []int32{3, 1, 2}, now) // the metadata arrives
	l.Fetched(3, 5751, 5751, now)
	if hw, _ := l.Advance(5751); hw != 5751 {
		t.Fatalf("high watermark %d once 3 has everything", hw)
	}
}

// proposeJoiner has l propose the ISR it wants now, which must add id,
// caught up; it returns that ISR.
func proposeJoiner(t *testing.T, l *Leader, id int32, now time.Time) []int32 {
	t.Helper()
	isr, changed := l.WantISR(now)
	if !changed || !slices.Contains(isr, id) {
		t.Fatalf("want ISR %v (changed %v): %d is caught up", isr, changed, id)
	}
	l.Proposing(isr)
	return isr
}
