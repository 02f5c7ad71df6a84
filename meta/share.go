package meta

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/dgraph-io/badger/v4"
)

// Share groups (KIP-932) keep, per group and partition, which records are
// in flight and how often each was delivered (package share). The
// partition's leader holds that state and writes it here after each
// change that must survive a failover, fenced by its leader epoch, as
// Kafka's share-partition leader writes its share coordinator's state.

// Command types of share groups.
const (
	TypeWriteShareState  CommandType = 31
	TypeDeleteShareState CommandType = 32
	TypeResetShareState  CommandType = 34
)

// keyShare holds a share-partition's state:
// sh/<group>\x00<topic>\x00<partition:4>.
const keyShare = "sh/"

func shareGroupPrefix(group string) []byte { return append(append([]byte(keyShare), group...), 0) }
func shareKey(group, topic string, p int32) []byte {
	return binary.BigEndian.AppendUint32(append(append(shareGroupPrefix(group), topic...), 0), uint32(p))
}

// parseShareKey splits a share state key.
func parseShareKey(k []byte) (group, topic string, p int32, ok bool) {
	rest, found := bytes.CutPrefix(k, []byte(keyShare))
	if !found {
		return "", "", 0, false
	}
	g, rest, found := bytes.Cut(rest, []byte{0})
	if !found {
		return "", "", 0, false
	}
	t, rest, found := bytes.Cut(rest, []byte{0})
	if !found || len(rest) != 4 {
		return "", "", 0, false
	}
	return string(g), string(t), int32(binary.BigEndian.Uint32(rest)), true
}

// ShareBatch is a run of offsets in one state with one delivery count
// (share.Batch; State numbered as Kafka's RecordState).
type ShareBatch struct {
	First, Last int64
	State       int8
	Deliveries  int32
}

// ShareState is a share-partition's durable state.
type ShareState struct {
	Group     string
	Topic     string
	Partition int32
	// LeaderEpoch is the epoch of the leader that wrote it.
	LeaderEpoch int32
	// Start is the share-partition start offset (SPSO).
	Start   int64
	Batches []ShareBatch
	// UpdateMs is the writer's clock.
	UpdateMs int64
	// StateEpoch moves when the state is reset from outside its leader
	// (AlterShareGroupOffsets, DeleteShareGroupOffsets): a leader's write
	// must carry the epoch of the state it loaded.
	StateEpoch int32
}

// Uninitialized is a share-partition start that is not set: its leader
// starts it from share.auto.offset.reset on first use.
const Uninitialized = -1

// WriteShareState replaces a share-partition's state. It is refused
// (ErrStaleEpoch) unless written in the partition's current leader epoch.
type WriteShareState struct{ State ShareState }

// ResetShareState sets share-partitions' starts from outside their
// leaders (AlterShareGroupOffsets; Uninitialized for
// DeleteShareGroupOffsets), forgetting what was in flight and moving each
// one's state epoch, so that its leader's next write is refused and it
// loads the new state.
type ResetShareState struct {
	Group  string
	Topic  string
	Starts map[int32]int64 // by partition
	NowMs  int64
}

// DeleteShareState forgets a group's share state: one topic's, or, with
// Topic empty, all of it.
type DeleteShareState struct {
	Group string
	Topic string
}

func (WriteShareState) Type() CommandType  { return TypeWriteShareState }
func (DeleteShareState) Type() CommandType { return TypeDeleteShareState }
func (ResetShareState) Type() CommandType  { return TypeResetShareState }

func (c *ResetShareState) encode(e *encoder) {
	e.string(c.Group)
	e.string(c.Topic)
	e.uvarint(uint64(len(c.Starts)))
	for _, p := range slices.Sorted(maps.Keys(c.Starts)) {
		e.varint(int64(p))
		e.varint(c.Starts[p])
	}
	e.varint(c.NowMs)
}

func (c *ResetShareState) decode(d *decoder) {
	c.Group, c.Topic = d.string(), d.string()
	if n := d.length(); n > 0 {
		c.Starts = make(map[int32]int64, n)
		for range n {
			p := d.int32()
			c.Starts[p] = d.varint()
		}
	}
	c.NowMs = d.varint()
}

func (w *writer) resetShareState(c *ResetShareState) (*ApplyResult, error) {
	if c.Group == "" {
		return rejected(fmt.Errorf("%w: empty group id", ErrInvalidRequest))
	}
	for _, p := range slices.Sorted(maps.Keys(c.Starts)) {
		if _, err := w.partitionOrReject(c.Topic, p); err != nil {
			return nil, err
		}
		if c.Starts[p] < Uninitialized {
			return rejected(fmt.Errorf("%w: share start offset %d", ErrInvalidRequest, c.Starts[p]))
		}
	}
	w.shareReset = true
	for _, p := range slices.Sorted(maps.Keys(c.Starts)) {
		old, _, err := getRecord(w.txn, shareKey(c.Group, c.Topic, p), decodeShareState)
		if err != nil {
			return nil, err
		}
		part, _ := w.partitionOrReject(c.Topic, p)
		s := ShareState{Group: c.Group, Topic: c.Topic, Partition: p, LeaderEpoch: part.LeaderEpoch,
			Start: c.Starts[p], UpdateMs: c.NowMs, StateEpoch: old.StateEpoch + 1}
		if err := w.set(shareKey(c.Group, c.Topic, p), s.encode()); err != nil {
			return nil, err
		}
	}
	return &ApplyResult{}, nil
}

func (s *ShareState) encodeTo(e *encoder) {
	e.string(s.Group)
	e.string(s.Topic)
	e.varint(int64(s.Partition))
	e.varint(int64(s.LeaderEpoch))
	e.varint(s.Start)
	e.uvarint(uint64(len(s.Batches)))
	for _, b := range s.Batches {
		e.varint(b.First)
		e.varint(b.Last)
		e.varint(int64(b.State))
		e.varint(int64(b.Deliveries))
	}
	e.varint(s.UpdateMs)
	e.varint(int64(s.StateEpoch))
}

func (s *ShareState) decode(d *decoder) {
	s.Group, s.Topic, s.Partition, s.LeaderEpoch, s.Start = d.string(), d.string(), d.int32(), d.int32(), d.varint()
	if n := d.length(); n > 0 {
		s.Batches = make([]ShareBatch, n)
		for i := range s.Batches {
			b := &s.Batches[i]
			b.First, b.Last, b.State, b.Deliveries = d.varint(), d.varint(), int8(d.varint()), d.int32()
		}
	}
	s.UpdateMs = d.varint()
	if len(d.b) > 0 { // absent from states written before state epochs
		s.StateEpoch = d.int32()
	}
}

func (s *ShareState) encode() []byte {
	e := encoder{}
	e.byte(stateVersion)
	s.encodeTo(&e)
	return e.b
}

func decodeShareState(b []byte) (ShareState, error) {
	d := decoder{b: b}
	var s ShareState
	if v := d.byte(); v != stateVersion {
		return s, fmt.Errorf("%w: share state record version %d", ErrUnknownCommand, v)
	}
	s.decode(&d)
	return s, d.finish("share state")
}

func (c *WriteShareState) encode(e *encoder) { c.State.encodeTo(e) }
func (c *WriteShareState) decode(d *decoder) { c.State.decode(d) }

func (c *DeleteShareState) encode(e *encoder) {
	e.string(c.Group)
	e.string(c.Topic)
}
func (c *DeleteShareState) decode(d *decoder) { c.Group, c.Topic = d.string(), d.string() }

func (w *writer) writeShareState(c *WriteShareState) (*ApplyResult, error) {
	s := c.State
	p, err := w.partitionOrReject(s.Topic, s.Partition)
	if err != nil {
		return nil, err
	}
	switch {
	case s.Group == "":
		return rejected(fmt.Errorf("%w: empty group id", ErrInvalidRequest))
	case s.LeaderEpoch != p.LeaderEpoch:
		return rejected(fmt.Errorf("%w: %s-%d share state from leader epoch %d, current %d", ErrStaleEpoch, s.Topic, s.Partition, s.LeaderEpoch, p.LeaderEpoch))
	}
	old, found, err := getRecord(w.txn, shareKey(s.Group, s.Topic, s.Partition), decodeShareState)
	if err != nil {
		return nil, err
	}
	if found && old.StateEpoch != s.StateEpoch {
		return rejected(fmt.Errorf("%w: %s-%d share state of %s in state epoch %d, current %d (reset meanwhile)", ErrStaleEpoch, s.Topic, s.Partition, s.Group, s.StateEpoch, old.StateEpoch))
	}
	for i, b := range s.Batches {
		if b.Last < b.First || b.First < s.Start || i > 0 && b.First <= s.Batches[i-1].Last {
			return rejected(fmt.Errorf("%w: share state batches out of order", ErrInvalidRequest))
		}
	}
	return &ApplyResult{}, w.set(shareKey(s.Group, s.Topic, s.Partition), s.encode())
}

func (w *writer) deleteShareState(c *DeleteShareState) (*ApplyResult, error) {
	w.shareReset = true
	for _, k := range w.keys(shareGroupPrefix(c.Group)) {
		if _, topic, _, ok := parseShareKey(k); ok && (c.Topic == "" || topic == c.Topic) {
			if err := w.delete(k); err != nil {
				return nil, err
			}
		}
	}
	return &ApplyResult{}, nil
}

// shareTopicKeys lists every group's share state keys of a topic (the
// topic is being deleted).
func (w *writer) shareTopicKeys(topic string) [][]byte {
	var out [][]byte
	for _, k := range w.keys([]byte(keyShare)) {
		if _, t, _, ok := parseShareKey(k); ok && t == topic {
			out = append(out, k)
		}
	}
	w.shareReset = w.shareReset || len(out) > 0
	return out
}

// ShareState reads one share-partition's state.
func (v *View) ShareState(group, topic string, p int32) (ShareState, bool, error) {
	return getRecord(v.txn, shareKey(group, topic, p), decodeShareState)
}

// ShareStates lists a group's share-partition states.
func (v *View) ShareStates(group string) ([]ShareState, error) {
	return listRecords(v.txn, shareGroupPrefix(group), decodeShareState)
}

// ShareGroups lists the groups with share state.
func (v *View) ShareGroups() ([]string, error) {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = []byte(keyShare)
	it := v.txn.NewIterator(opts)
	defer it.Close()
	var out []string
	for it.Rewind(); it.Valid(); it.Next() {
		if g, _, _, ok := parseShareKey(it.Item().Key()); ok && (len(out) == 0 || out[len(out)-1] != g) {
			out = append(out, g)
		}
	}
	return out, nil
}
