// Package share holds the state of KIP-932 share groups' partitions: which
// records are in flight, who holds them, how often each was delivered, and
// where the share-partition starts (SPSO). It is pure state, without I/O:
// the leader that serves ShareFetch and ShareAcknowledge drives it, and
// persists its Snapshot after each change that must survive a failover.
package share

import (
	"cmp"
	"errors"
	"slices"
	"time"
)

// State is a record's delivery state, numbered as Kafka's RecordState.
type State int8

const (
	Available    State = 0 // may be acquired (again)
	Acquired     State = 1 // locked by one member until acknowledged or its lock expires
	Acknowledged State = 2 // accepted: done
	Archived     State = 4 // rejected, delivered too often, or a gap: done
)

func (s State) String() string {
	switch s {
	case Available:
		return "available"
	case Acquired:
		return "acquired"
	case Acknowledged:
		return "acknowledged"
	case Archived:
		return "archived"
	}
	return "unknown"
}

// AckType is an acknowledgement's type, numbered as on the wire
// (ShareAcknowledge, ShareFetch; KIP-932 and KIP-1222).
type AckType int8

const (
	Gap     AckType = 0 // no record at this offset
	Accept  AckType = 1
	Release AckType = 2 // deliver again (to anyone)
	Reject  AckType = 3
	Renew   AckType = 4 // keep the lock for another lock duration
)

// ErrInvalidRecordState: an acknowledgement for a record the member does
// not hold (Kafka's INVALID_RECORD_STATE).
var ErrInvalidRecordState = errors.New("share: the record is not acquired by this member")

// ErrInvalidAckType: an acknowledgement type outside the ones above.
var ErrInvalidAckType = errors.New("share: unknown acknowledgement type")

// Config holds the group's share settings.
type Config struct {
	// DeliveryLimit is share.delivery.count.limit: a record delivered
	// this many times is archived instead of made available again
	// (default 5).
	DeliveryLimit int32
	// LockDuration is share.record.lock.duration.ms (default 30 s).
	LockDuration time.Duration
	// MaxInFlight is group.share.partition.max.record.locks: at most
	// this many records between the start and the end (default 2000).
	MaxInFlight int
	// DeadLetters keeps the records archived by a REJECT or at the
	// delivery limit for TakeDead (a dead-letter topic is configured).
	DeadLetters bool
}

// Dead is a record archived as undeliverable: rejected by a member, or
// delivered DeliveryLimit times.
type Dead struct {
	Offset     int64
	Deliveries int32
	Rejected   bool
}

func (c *Config) defaults() {
	if c.DeliveryLimit <= 0 {
		c.DeliveryLimit = 5
	}
	if c.LockDuration <= 0 {
		c.LockDuration = 30 * time.Second
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 2000
	}
}

type record struct {
	state      State
	deliveries int32
	member     string
	lockUntil  time.Time
}

// Partition is one share-partition: the records from Start (SPSO) up to
// End (one past the last record ever acquired) are in flight; those
// below Start are done, those from End on never delivered.
type Partition struct {
	cfg   Config
	start int64
	end   int64
	recs  map[int64]*record // every offset in [start, end)
	dead  []Dead            // since the last TakeDead, with DeadLetters
}

// TakeDead returns the records archived as undeliverable since the last
// call (with Config.DeadLetters), in the order they were.
func (p *Partition) TakeDead() []Dead {
	d := p.dead
	p.dead = nil
	slices.SortFunc(d, func(a, b Dead) int { return cmp.Compare(a.Offset, b.Offset) })
	return d
}

// New starts a share-partition at offset start (from
// share.auto.offset.reset, or a reset of the group's offsets).
func New(cfg Config, start int64) *Partition {
	cfg.defaults()
	return &Partition{cfg: cfg, start: start, end: start, recs: map[int64]*record{}}
}

// Start is the share-partition start offset (SPSO).
func (p *Partition) Start() int64 { return p.start }

// End is one past the last record acquired (SPEO).
func (p *Partition) End() int64 { return p.end }

// InFlight counts the records between Start and End not yet done.
func (p *Partition) InFlight() int {
	n := 0
	for _, r := range p.recs {
		if r.state == Available || r.state == Acquired {
			n++
		}
	}
	return n
}

// Held counts the records acquired now (locked by a member).
func (p *Partition) Held() int {
	n := 0
	for _, r := range p.recs {
		if r.state == Acquired {
			n++
		}
	}
	return n
}

// StateOf reports an offset's state and delivery count: below Start it
// is done (Acknowledged, count unknown: 0), from End on Available and
// never delivered.
func (p *Partition) StateOf(offset int64) (State, int32) {
	if offset < p.start {
		return Acknowledged, 0
	}
	if r, ok := p.recs[offset]; ok {
		return r.state, r.deliveries
	}
	return Available, 0
}

// Range is a run of acquired offsets, all delivered Deliveries times.
type Range struct {
	First, Last int64
	Deliveries  int32
}

// Span is a run of offsets a fetch from the log returned: a record
// batch's, which may hold fewer records (compaction keeps a batch's
// offset range).
type Span struct{ First, Last int64 }

// Acquire locks, for member, up to limit of the records in spans (what a
// fetch from the log returned, ascending): those available in flight and
// those past End. Offsets the fetch skipped between End and a record it
// returned (a compacted or aborted gap, a control batch) are archived.
// Each acquisition counts a delivery.
func (p *Partition) Acquire(member string, spans []Span, limit int, now time.Time) []Range {
	var out []Range
	took := 0
	for _, sp := range spans {
		for off := max(sp.First, p.start); off <= sp.Last; off++ {
			if took >= limit {
				p.advance()
				return out
			}
			if off >= p.end {
				if int(off-p.start) >= p.cfg.MaxInFlight {
					p.advance()
					return out // the window is full until the start moves
				}
				for gap := p.end; gap < off; gap++ {
					p.recs[gap] = &record{state: Archived}
				}
				p.recs[off] = &record{state: Available}
				p.end = off + 1
			}
			r := p.recs[off]
			if r.state != Available {
				continue
			}
			r.state, r.member, r.lockUntil = Acquired, member, now.Add(p.cfg.LockDuration)
			r.deliveries++
			took++
			if n := len(out); n > 0 && out[n-1].Last == off-1 && out[n-1].Deliveries == r.deliveries {
				out[n-1].Last = off
			} else {
				out = append(out, Range{off, off, r.deliveries})
			}
		}
	}
	p.advance()
	return out
}

// NextOffset is where a fetch for this share-partition reads the log
// from: the first record in flight that is available, else End.
func (p *Partition) NextOffset() int64 {
	for off := p.start; off < p.end; off++ {
		if r := p.recs[off]; r == nil || r.state == Available {
			return off
		}
	}
	return p.end
}

// Full reports whether nothing past End may be acquired until the start
// moves (group.share.partition.max.record.locks).
func (p *Partition) Full() bool { return p.end-p.start >= int64(p.cfg.MaxInFlight) }

// SetConfig changes the group's settings (a group config changed): they
// apply to locks and deliveries from now on.
func (p *Partition) SetConfig(cfg Config) {
	cfg.defaults()
	p.cfg = cfg
}

// Config is the partition's settings.
func (p *Partition) Config() Config { return p.cfg }

// Ack is one acknowledgement: the offsets First through Last, each with
// Types[i] (or Types[0] for all when there is one).
type Ack struct {
	First, Last int64
	Types       []AckType
}

// Acknowledge applies acks from member. Every offset they name must be
// acquired by member (a Gap, too: the member saw no record there),
// otherwise none is applied and the error is ErrInvalidRecordState.
func (p *Partition) Acknowledge(member string, acks []Ack, now time.Time) error {
	for _, a := range acks {
		if a.Last < a.First || len(a.Types) != 1 && int64(len(a.Types)) != a.Last-a.First+1 {
			return ErrInvalidRecordState
		}
		for off := a.First; off <= a.Last; off++ {
			t := a.typeAt(off)
			if t < Gap || t > Renew {
				return ErrInvalidAckType
			}
			r, ok := p.recs[off]
			if !ok || r.state != Acquired || r.member != member {
				return ErrInvalidRecordState
			}
		}
	}
	for _, a := range acks {
		for off := a.First; off <= a.Last; off++ {
			r := p.recs[off]
			switch a.typeAt(off) {
			case Accept:
				r.state, r.member = Acknowledged, ""
			case Reject:
				r.state, r.member = Archived, ""
				if p.cfg.DeadLetters {
					p.dead = append(p.dead, Dead{off, r.deliveries, true})
				}
			case Gap:
				r.state, r.member = Archived, ""
			case Release:
				p.release(off, r)
			case Renew:
				r.lockUntil = now.Add(p.cfg.LockDuration)
			}
		}
	}
	p.advance()
	return nil
}

func (a Ack) typeAt(off int64) AckType {
	if len(a.Types) == 1 {
		return a.Types[0]
	}
	return a.Types[off-a.First]
}

// release makes an acquired record available again, or archives it once
// it has been delivered DeliveryLimit times.
func (p *Partition) release(off int64, r *record) {
	r.member, r.lockUntil = "", time.Time{}
	if r.deliveries >= p.cfg.DeliveryLimit {
		r.state = Archived
		if p.cfg.DeadLetters {
			p.dead = append(p.dead, Dead{off, r.deliveries, false})
		}
	} else {
		r.state = Available
	}
}

// Expire releases the records whose locks ran out by now; it reports how
// many.
func (p *Partition) Expire(now time.Time) int {
	n := 0
	for off, r := range p.recs {
		if r.state == Acquired && !now.Before(r.lockUntil) {
			p.release(off, r)
			n++
		}
	}
	if n > 0 {
		p.advance()
	}
	return n
}

// ReleaseMember releases every record member holds (it left or was
// fenced); it reports how many.
func (p *Partition) ReleaseMember(member string) int {
	n := 0
	for off, r := range p.recs {
		if r.state == Acquired && r.member == member {
			p.release(off, r)
			n++
		}
	}
	if n > 0 {
		p.advance()
	}
	return n
}

// NextExpiry is when the earliest lock runs out, zero with none held.
func (p *Partition) NextExpiry() time.Time {
	var t time.Time
	for _, r := range p.recs {
		if r.state == Acquired && (t.IsZero() || r.lockUntil.Before(t)) {
			t = r.lockUntil
		}
	}
	return t
}

// Reset moves the start to offset (AlterShareGroupOffsets, or the log's
// start passing it): records below it are dropped, in flight or not.
func (p *Partition) Reset(offset int64) {
	for off := range p.recs {
		if off < offset {
			delete(p.recs, off)
		}
	}
	p.start = offset
	if p.end < offset {
		p.end = offset
	}
	p.advance()
}

// advance moves the start past records that are done.
func (p *Partition) advance() {
	for p.start < p.end {
		r := p.recs[p.start]
		if r != nil && r.state != Acknowledged && r.state != Archived {
			return
		}
		delete(p.recs, p.start)
		p.start++
	}
}

// Batch is a run of offsets in one durable state with one delivery count.
type Batch struct {
	First, Last int64
	State       State
	Deliveries  int32
}

// Snapshot is what must survive a failover: the start, and each record in
// flight with its delivery count. Locks do not survive: an acquired record
// is recorded as available. One delivered the limit times is archived by
// Restore, as a release would, and so becomes a dead letter then (not
// before: its member may still accept it).
type Snapshot struct {
	Start   int64
	Batches []Batch
}

// Snapshot captures the durable state.
func (p *Partition) Snapshot() Snapshot {
	s := Snapshot{Start: p.start}
	offs := make([]int64, 0, len(p.recs))
	for off := range p.recs {
		offs = append(offs, off)
	}
	slices.Sort(offs)
	for _, off := range offs {
		r := p.recs[off]
		st := r.state
		if st == Acquired { // the lock does not survive
			st = Available
		}
		if n := len(s.Batches); n > 0 && s.Batches[n-1].Last == off-1 && s.Batches[n-1].State == st && s.Batches[n-1].Deliveries == r.deliveries {
			s.Batches[n-1].Last = off
			continue
		}
		s.Batches = append(s.Batches, Batch{off, off, st, r.deliveries})
	}
	// Records done at the front move the start past them, as after a
	// failover they would.
	for len(s.Batches) > 0 && s.Batches[0].First == s.Start && (s.Batches[0].State == Acknowledged || s.Batches[0].State == Archived) {
		s.Start = s.Batches[0].Last + 1
		s.Batches = s.Batches[1:]
	}
	if len(s.Batches) == 0 {
		s.Batches = nil
	}
	return s
}

// Restore rebuilds a partition from a snapshot (after a failover). A
// record available after as many deliveries as the limit allows was
// held when the snapshot was taken: it is released now, so archived
// (and with DeadLetters, taken by TakeDead).
func Restore(cfg Config, s Snapshot) *Partition {
	p := New(cfg, s.Start)
	for _, b := range s.Batches {
		for off := max(b.First, s.Start); off <= b.Last; off++ {
			st := b.State
			if st == Acquired {
				st = Available
			}
			r := &record{state: st, deliveries: b.Deliveries}
			p.recs[off] = r
			if st == Available && r.deliveries >= p.cfg.DeliveryLimit {
				p.release(off, r)
			}
			if off >= p.end {
				p.end = off + 1
			}
		}
	}
	// Offsets in the window no batch names were never delivered.
	for off := p.start; off < p.end; off++ {
		if p.recs[off] == nil {
			p.recs[off] = &record{state: Available}
		}
	}
	p.advance()
	return p
}
