package replica

import (
	"slices"
	"time"
)

// Leader is a partition leader's view of its replicas: each follower's
// log end offset (the offset its last fetch asked for), when each was last
// caught up, the ISR and the high watermark. Time comes in as an
// argument, so the arithmetic is deterministic and testable; the caller
// serializes calls.
//
// The rules are Kafka's:
//   - high watermark = min log end offset over the ISR (the leader's own
//     included); it never moves back while this leadership lasts, and an
//     ISR member not heard from since the leadership began holds it still;
//   - a follower is caught up at a fetch asking for at least the leader's
//     log end offset, or at its previous fetch if this one asks for at
//     least the log end the leader had then (a follower that keeps up
//     under steady produce never equals the moving log end);
//   - an ISR follower not caught up for longer than the lag limit
//     (replica.lag.time.max.ms) leaves the ISR; a follower outside it
//     whose log end reaches the high watermark, at a fetch made since it
//     left, joins it;
//   - while an ISR change is proposed (Proposing) and until it is
//     seen committed (SetReplicas) or fails (ProposalFailed), the high
//     watermark counts the maximal ISR: the committed one and every
//     replica the proposal adds; a change known to have committed
//     (ProposalCommitted) counts until SetReplicas, even when a later
//     proposal fails. The controller may elect a replica from
//     the new ISR as soon as it commits, before this leader hears of it:
//     a record acknowledged meanwhile by the old, smaller ISR would be
//     missing on that new leader, and lost.
type Leader struct {
	self     int32
	replicas []int32
	isr      []int32
	adding   []int32 // replicas a proposed ISR change adds
	// committed are replicas a change known to have committed adds, not
	// yet seen here (SetReplicas): they count whatever later proposals do.
	committed []int32
	lagMax    time.Duration
	hw        int64
	followers map[int32]*follower
}

type follower struct {
	leo              int64 // -1: not heard from since the leadership began
	lastCaughtUp     time.Time
	lastFetch        time.Time
	leaderLEOAtFetch int64
	// leftISR is when it last left the ISR: it rejoins only after a
	// fetch since then (a silent follower's old log end proves nothing).
	leftISR time.Time
}

// NewLeader starts a leadership: replicas in assignment order, the ISR
// from metadata, the high watermark the log had. ISR followers count as
// caught up now, so none leaves the ISR before it had a chance to fetch.
func NewLeader(self int32, replicas, isr []int32, hw int64, now time.Time, lagMax time.Duration) *Leader {
	l := &Leader{self: self, lagMax: lagMax, hw: hw, followers: map[int32]*follower{}}
	l.SetReplicas(replicas, isr, now)
	return l
}

// SetReplicas takes a committed change of the replica set or ISR.
// Followers keep what is known of them; new ones start unknown, and those
// entering the ISR count as caught up now.
func (l *Leader) SetReplicas(replicas, isr []int32, now time.Time) {
	before := l.isr
	l.replicas, l.isr, l.adding, l.committed = slices.Clone(replicas), slices.Clone(isr), nil, nil
	for _, id := range replicas {
		if id == l.self {
			continue
		}
		f, ok := l.followers[id]
		if !ok {
			f = &follower{leo: -1}
			l.followers[id] = f
		}
		if slices.Contains(isr, id) && !slices.Contains(before, id) && f.lastCaughtUp.Before(now) {
			f.lastCaughtUp = now
		}
		if !slices.Contains(isr, id) && slices.Contains(before, id) {
			f.leftISR = now
		}
	}
	for id := range l.followers {
		if !slices.Contains(replicas, id) {
			delete(l.followers, id)
		}
	}
}

// Fetched records a follower's fetch at fetchOffset while the leader's
// log ends at leaderLEO. A fetch from a replica not assigned is ignored.
func (l *Leader) Fetched(id int32, fetchOffset, leaderLEO int64, now time.Time) {
	f, ok := l.followers[id]
	if !ok {
		return
	}
	f.leo = min(fetchOffset, leaderLEO)
	switch {
	case fetchOffset >= leaderLEO:
		f.lastCaughtUp = latest(f.lastCaughtUp, now)
	case !f.lastFetch.IsZero() && fetchOffset >= f.leaderLEOAtFetch:
		f.lastCaughtUp = latest(f.lastCaughtUp, f.lastFetch)
	}
	f.lastFetch, f.leaderLEOAtFetch = now, leaderLEO
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Proposing records that isr is being proposed to the controller: until
// a committed change arrives (SetReplicas) or the proposals are known to
// have failed (ProposalFailed), the replicas it adds count for the high
// watermark, with those of earlier proposals whose fate is unknown.
func (l *Leader) Proposing(isr []int32) {
	for _, id := range isr {
		if !slices.Contains(l.isr, id) && !slices.Contains(l.adding, id) {
			l.adding = append(l.adding, id)
		}
	}
}

// ProposalCommitted records that a proposed change to isr committed: the
// replicas it adds count for the high watermark until SetReplicas brings
// it (or a later change), whatever becomes of later proposals. The
// controller may elect one of them the moment it commits.
func (l *Leader) ProposalCommitted(isr []int32) {
	for _, id := range isr {
		if !slices.Contains(l.isr, id) && !slices.Contains(l.committed, id) {
			l.committed = append(l.committed, id)
		}
	}
}

// ProposalFailed records that no proposed ISR change was made (the
// controller rejected it); one whose fate is unknown (a timeout) may yet
// commit and must not be reported here. Replicas of changes known to
// have committed keep counting (ProposalCommitted).
func (l *Leader) ProposalFailed() { l.adding = nil }

// Advance recomputes the high watermark for a leader log ending at
// leaderLEO and reports whether it moved. It counts the maximal ISR (see
// Proposing).
func (l *Leader) Advance(leaderLEO int64) (hw int64, moved bool) {
	low := leaderLEO
	for _, id := range slices.Concat(l.isr, l.adding, l.committed) {
		if id == l.self {
			continue
		}
		f, ok := l.followers[id]
		if !ok || f.leo < 0 {
			return l.hw, false // an ISR member not heard from holds it
		}
		low = min(low, f.leo)
	}
	if low > l.hw {
		l.hw = low
		return l.hw, true
	}
	return l.hw, false
}

// HighWatermark is the offset below which every ISR member has the log.
func (l *Leader) HighWatermark() int64 { return l.hw }

// Replicas are the assigned replicas, in assignment order.
func (l *Leader) Replicas() []int32 { return slices.Clone(l.replicas) }

// Adding are the replicas proposed ISR changes add, counted for the high
// watermark until they resolve: those of changes in flight, and those of
// changes committed but not seen here yet.
func (l *Leader) Adding() []int32 { return slices.Concat(l.adding, l.committed) }

// ISR is the in-sync set as last committed.
func (l *Leader) ISR() []int32 { return slices.Clone(l.isr) }

// LogEndOffset is what the leader knows of a follower's log end (-1:
// unknown).
func (l *Leader) LogEndOffset(id int32) int64 {
	if f, ok := l.followers[id]; ok {
		return f.leo
	}
	return -1
}

// WantISR is the ISR the leader should ask the controller for now:
// lagging members out, caught-up replicas in, in assignment order; changed
// is false when it is the committed one.
func (l *Leader) WantISR(now time.Time) (isr []int32, changed bool) {
	for _, id := range l.replicas {
		if id == l.self {
			isr = append(isr, id)
			continue
		}
		f := l.followers[id]
		in := slices.Contains(l.isr, id)
		switch {
		case in && now.Sub(f.lastCaughtUp) <= l.lagMax:
			isr = append(isr, id)
		case !in && f.leo >= 0 && f.leo >= l.hw && f.lastFetch.After(f.leftISR):
			isr = append(isr, id)
		}
	}
	if !slices.Contains(isr, l.self) {
		isr = append([]int32{l.self}, isr...) // a leader that is not an assigned replica (reassignment) still leads
	}
	return isr, !sameSet(isr, l.isr)
}

func sameSet(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
