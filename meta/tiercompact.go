package meta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"
)

// Compaction of uploaded segments. The partition leader's remote cleaner
// rewrites a run of consecutive manifest entries into one new object set
// (new keys: nothing in the store is ever overwritten), then switches the
// manifest to it with ReplaceTierSegments, in one command. The replaced
// entries' objects are retired, not deleted: they stay in the store, and
// count as referenced for the reconciler, until the leader deletes them
// once the topic's file.delete.delay.ms has passed since the switch, and
// forgets them (ForgetRetiredObjects). A reader that took an old entry
// just before the switch thus still finds its objects.
//
// MarkTierCleaned records how far a clean reached and when: the remote
// cleaner's checkpoint (where the dirty part starts) and the history
// the tombstone horizon is computed from, as the local cleaner keeps in
// its cleaner-offset-checkpoint file.

// Command types of remote compaction.
const (
	TypeReplaceTierSegments  CommandType = 28
	TypeForgetRetiredObjects CommandType = 29
	TypeMarkTierCleaned      CommandType = 30
)

// ErrManifestChanged: a manifest switch names entries the manifest no
// longer holds as named (retention, another switch or a new upload got
// there first). The cleaner drops its work and tries again later.
var ErrManifestChanged = errors.New("meta: the tier manifest changed")

// State keys of remote compaction.
const (
	keyRetired     = "rt/" // rt/<topic>\x00<partition:4><object key> -> retired at (ms, 8 bytes)
	keyTierCleaner = "tc/" // tc/<topic>\x00<partition:4> -> TierCleanerState
)

func retiredTopicPrefix(topic string) []byte { return append(append([]byte(keyRetired), topic...), 0) }
func retiredPrefix(topic string, p int32) []byte {
	return binary.BigEndian.AppendUint32(retiredTopicPrefix(topic), uint32(p))
}
func retiredKey(topic string, p int32, objectKey string) []byte {
	return append(retiredPrefix(topic, p), objectKey...)
}
func tierCleanerTopicPrefix(topic string) []byte {
	return append(append([]byte(keyTierCleaner), topic...), 0)
}
func tierCleanerKey(topic string, p int32) []byte {
	return binary.BigEndian.AppendUint32(tierCleanerTopicPrefix(topic), uint32(p))
}

// ReplaceTierSegments switches consecutive manifest entries (by base
// offset, each still with the object key given) for one entry, New, that
// starts where the first did and leaves no offset of theirs uncovered. It
// is fenced by New.LeaderEpoch, as AddTierSegment. The old entries'
// objects are retired as of AtMs.
type ReplaceTierSegments struct {
	OldBases []int64
	OldKeys  []string
	New      TierSegment
	AtMs     int64
}

// ForgetRetiredObjects drops retired objects' records once their objects
// are deleted.
type ForgetRetiredObjects struct {
	Topic     string
	Partition int32
	Keys      []string
}

// MarkTierCleaned records a finished remote clean: every entry below
// Offset is clean (each key once), as of AtMs.
type MarkTierCleaned struct {
	Topic     string
	Partition int32
	Offset    int64
	AtMs      int64
}

func (ReplaceTierSegments) Type() CommandType  { return TypeReplaceTierSegments }
func (ForgetRetiredObjects) Type() CommandType { return TypeForgetRetiredObjects }
func (MarkTierCleaned) Type() CommandType      { return TypeMarkTierCleaned }

func (c *ReplaceTierSegments) encode(e *encoder) {
	e.uvarint(uint64(len(c.OldBases)))
	for _, b := range c.OldBases {
		e.varint(b)
	}
	e.strings(c.OldKeys)
	c.New.encodeTo(e)
	e.varint(c.AtMs)
}

func (c *ReplaceTierSegments) decode(d *decoder) {
	if n := d.length(); n > 0 {
		c.OldBases = make([]int64, n)
		for i := range c.OldBases {
			c.OldBases[i] = d.varint()
		}
	}
	c.OldKeys = d.strings()
	c.New.decode(d)
	c.AtMs = d.varint()
}

func (c *ForgetRetiredObjects) encode(e *encoder) {
	e.string(c.Topic)
	e.varint(int64(c.Partition))
	e.strings(c.Keys)
}

func (c *ForgetRetiredObjects) decode(d *decoder) {
	c.Topic, c.Partition, c.Keys = d.string(), d.int32(), d.strings()
}

func (c *MarkTierCleaned) encode(e *encoder) {
	e.string(c.Topic)
	e.varint(int64(c.Partition))
	e.varint(c.Offset)
	e.varint(c.AtMs)
}

func (c *MarkTierCleaned) decode(d *decoder) {
	c.Topic, c.Partition, c.Offset, c.AtMs = d.string(), d.int32(), d.varint(), d.varint()
}

// TierCleanerState is a partition's remote cleaner checkpoint.
type TierCleanerState struct {
	// FirstDirty: entries ending below it are clean.
	FirstDirty int64
	// History is when earlier cleans ended where, oldest first, at most
	// TierCleanerHistory of them.
	History []TierCleanMark
}

// TierCleanMark is one finished clean.
type TierCleanMark struct{ Offset, AtMs int64 }

// TierCleanerHistory bounds TierCleanerState.History.
const TierCleanerHistory = 32

// TombstoneHorizon is the offset below which tombstones may go: the
// furthest an earlier clean reached at least retentionMs before nowMs.
func (s TierCleanerState) TombstoneHorizon(nowMs, retentionMs int64) int64 {
	h := int64(0)
	for _, m := range s.History {
		if m.AtMs <= nowMs-retentionMs {
			h = max(h, m.Offset)
		}
	}
	return h
}

func (s TierCleanerState) encode() []byte {
	e := encoder{}
	e.byte(stateVersion)
	e.varint(s.FirstDirty)
	e.uvarint(uint64(len(s.History)))
	for _, m := range s.History {
		e.varint(m.Offset)
		e.varint(m.AtMs)
	}
	return e.b
}

func decodeTierCleanerState(b []byte) (TierCleanerState, error) {
	d := decoder{b: b}
	var s TierCleanerState
	if v := d.byte(); v != stateVersion {
		return s, fmt.Errorf("%w: tier cleaner record version %d", ErrUnknownCommand, v)
	}
	s.FirstDirty = d.varint()
	if n := d.length(); n > 0 {
		s.History = make([]TierCleanMark, n)
		for i := range s.History {
			s.History[i] = TierCleanMark{Offset: d.varint(), AtMs: d.varint()}
		}
	}
	return s, d.finish("tier cleaner state")
}

// RetiredObject is a replaced entry's object set (named by its .log
// key), waiting for its deletion.
type RetiredObject struct {
	ObjectKey   string
	RetiredAtMs int64
}

func (w *writer) replaceTierSegments(c *ReplaceTierSegments) (*ApplyResult, error) {
	s := c.New
	p, err := w.partitionOrReject(s.Topic, s.Partition)
	if err != nil {
		return nil, err
	}
	if s.LeaderEpoch != p.LeaderEpoch {
		return rejected(fmt.Errorf("%w: %s-%d compacted segment %d written in leader epoch %d, current %d", ErrStaleEpoch, s.Topic, s.Partition, s.BaseOffset, s.LeaderEpoch, p.LeaderEpoch))
	}
	bad := func(format string, args ...any) (*ApplyResult, error) {
		return rejected(fmt.Errorf("%w: %s-%d: %s", ErrInvalidRequest, s.Topic, s.Partition, fmt.Sprintf(format, args...)))
	}
	switch {
	case len(c.OldBases) == 0 || len(c.OldBases) != len(c.OldKeys):
		return bad("%d entries to replace, %d keys", len(c.OldBases), len(c.OldKeys))
	case s.BaseOffset != c.OldBases[0] || s.LastOffset < s.BaseOffset || s.ObjectKey == "":
		return bad("entry [%d, %d] %q replacing entries from %d", s.BaseOffset, s.LastOffset, s.ObjectKey, c.OldBases[0])
	case slices.Contains(c.OldKeys, s.ObjectKey):
		return bad("the new entry reuses object %q", s.ObjectKey)
	}
	// Every old entry is there as named, and they are consecutive: no
	// other entry starts between them.
	maxLast := int64(-1)
	for i, base := range c.OldBases {
		e, ok, err := getRecord(w.txn, tierKey(s.Topic, s.Partition, base), decodeTierSegment)
		if err != nil {
			return nil, err
		}
		if !ok || e.ObjectKey != c.OldKeys[i] {
			return rejected(fmt.Errorf("%w: %s-%d: entry %d is not %q any more", ErrManifestChanged, s.Topic, s.Partition, base, c.OldKeys[i]))
		}
		if i > 0 {
			next, ok, err := tierSeek(w.txn, s.Topic, s.Partition, c.OldBases[i-1]+1, false)
			if err != nil {
				return nil, err
			}
			if !ok || next.BaseOffset != base {
				return rejected(fmt.Errorf("%w: %s-%d: entries %d and %d are not consecutive", ErrManifestChanged, s.Topic, s.Partition, c.OldBases[i-1], base))
			}
		}
		maxLast = max(maxLast, e.LastOffset)
	}
	// The new entry claims nothing the old ones did not hold, and leaves
	// no gap: it reaches their end, or the entry after them.
	need := maxLast
	next, ok, err := tierSeek(w.txn, s.Topic, s.Partition, c.OldBases[len(c.OldBases)-1]+1, false)
	if err != nil {
		return nil, err
	}
	if ok && next.BaseOffset <= maxLast {
		need = next.BaseOffset - 1
	}
	if s.LastOffset > maxLast || s.LastOffset < need {
		return bad("entry [%d, %d] must end in [%d, %d]", s.BaseOffset, s.LastOffset, need, maxLast)
	}
	for i, base := range c.OldBases {
		if err := w.delete(tierKey(s.Topic, s.Partition, base)); err != nil {
			return nil, err
		}
		if err := w.set(retiredKey(s.Topic, s.Partition, c.OldKeys[i]), binary.BigEndian.AppendUint64(nil, uint64(c.AtMs))); err != nil {
			return nil, err
		}
	}
	return &ApplyResult{}, w.set(tierKey(s.Topic, s.Partition, s.BaseOffset), s.encode())
}

func (w *writer) forgetRetiredObjects(c *ForgetRetiredObjects) (*ApplyResult, error) {
	if len(c.Keys) == 0 {
		return rejected(fmt.Errorf("%w: no retired object to forget", ErrInvalidRequest))
	}
	for _, k := range c.Keys {
		if err := w.delete(retiredKey(c.Topic, c.Partition, k)); err != nil {
			return nil, err
		}
	}
	return &ApplyResult{}, nil
}

func (w *writer) markTierCleaned(c *MarkTierCleaned) (*ApplyResult, error) {
	if _, err := w.partitionOrReject(c.Topic, c.Partition); err != nil {
		return nil, err
	}
	if c.Offset < 0 {
		return rejected(fmt.Errorf("%w: %s-%d cleaned to %d", ErrInvalidRequest, c.Topic, c.Partition, c.Offset))
	}
	key := tierCleanerKey(c.Topic, c.Partition)
	st, _, err := getRecord(w.txn, key, decodeTierCleanerState)
	if err != nil {
		return nil, err
	}
	st.FirstDirty = max(st.FirstDirty, c.Offset)
	st.History = append(st.History, TierCleanMark{Offset: c.Offset, AtMs: c.AtMs})
	if n := len(st.History); n > TierCleanerHistory {
		st.History = st.History[n-TierCleanerHistory:]
	}
	return &ApplyResult{}, w.set(key, st.encode())
}

// TierCleaner reads a partition's remote cleaner checkpoint (zero: never
// cleaned).
func (v *View) TierCleaner(topic string, p int32) (TierCleanerState, error) {
	st, _, err := getRecord(v.txn, tierCleanerKey(topic, p), decodeTierCleanerState)
	return st, err
}

// RetiredObjects lists a partition's retired objects.
func (v *View) RetiredObjects(topic string, p int32) ([]RetiredObject, error) {
	prefix := retiredPrefix(topic, p)
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	it := v.txn.NewIterator(opts)
	defer it.Close()
	var out []RetiredObject
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		err := item.Value(func(val []byte) error {
			if len(val) != 8 {
				return fmt.Errorf("meta: retired object record of %d bytes", len(val))
			}
			out = append(out, RetiredObject{ObjectKey: string(item.Key()[len(prefix):]), RetiredAtMs: int64(binary.BigEndian.Uint64(val))})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
