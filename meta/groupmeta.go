package meta

import (
	"encoding/binary"
	"fmt"
)

// A classic group's metadata (its protocol, generation, leader and
// members with their subscriptions and assignments) is soft state in
// the group coordinator; the coordinator records it here when a
// rebalance completes and when the group empties, as Kafka's appends a
// group metadata record to __consumer_offsets, so that a tool reading
// that topic (Burrow, for one) sees the groups as on Kafka. The record
// takes the next offset of the group's partition of the view, and is an
// Offset with no topic and partition -1, its value (Kafka's
// GroupMetadataValue, encoded) in Metadata where it is kept and in Value
// in the view:
//
//	gm/<group> -> the record
//
// Deleting the group writes a tombstone for it, as deleted offsets get.
const keyGroupMetadata = "gm/"

// GroupMetadataPartition is the partition field of a group metadata
// record and its tombstone in the __consumer_offsets view.
const GroupMetadataPartition = -1

func groupMetadataKey(group string) []byte { return append([]byte(keyGroupMetadata), group...) }

// IsGroupMetadata reports whether a record of the __consumer_offsets
// view is a group's metadata (or its tombstone), not a committed offset.
func (o Offset) IsGroupMetadata() bool { return o.Topic == "" && o.Partition == GroupMetadataPartition }

// TypePutGroupMetadata is PutGroupMetadata's command type.
const TypePutGroupMetadata CommandType = 35

// PutGroupMetadata records a classic group's metadata, Kafka's encoded
// GroupMetadataValue; an empty Value deletes it (with a tombstone).
type PutGroupMetadata struct {
	Group string
	Value []byte
	NowMs int64
}

func (PutGroupMetadata) Type() CommandType { return TypePutGroupMetadata }

func (c *PutGroupMetadata) encode(e *encoder) {
	e.string(c.Group)
	e.bytes(c.Value)
	e.varint(c.NowMs)
}

func (c *PutGroupMetadata) decode(d *decoder) {
	c.Group = d.string()
	c.Value = d.bytesCopy()
	c.NowMs = d.varint()
}

func (w *writer) putGroupMetadata(c *PutGroupMetadata) (*ApplyResult, error) {
	if c.Group == "" {
		return rejected(fmt.Errorf("%w: empty group id", ErrInvalidRequest))
	}
	k := groupMetadataKey(c.Group)
	if len(c.Value) == 0 {
		_, ok, err := getRecord(w.txn, k, decodeOffset)
		if err != nil || !ok {
			return &ApplyResult{}, err
		}
		return &ApplyResult{}, w.deleteOffset(k, c.Group, "", GroupMetadataPartition)
	}
	p := OffsetsPartition(c.Group)
	next, err := w.offsetsLogEnd(p)
	if err != nil {
		return nil, err
	}
	if err := w.dropTombstone(c.Group, "", GroupMetadataPartition); err != nil {
		return nil, err
	}
	o := Offset{Group: c.Group, Partition: GroupMetadataPartition, Offset: -1, Metadata: string(c.Value), CommitTimeMs: c.NowMs, LogOffset: next}
	if err := w.set(k, o.encode()); err != nil {
		return nil, err
	}
	return &ApplyResult{}, w.set(offsetsLogKey(p), binary.BigEndian.AppendUint64(nil, uint64(next+1)))
}

// GroupMetadata returns a group's recorded metadata value, if any.
func (v *View) GroupMetadata(group string) ([]byte, bool, error) {
	o, ok, err := getRecord(v.txn, groupMetadataKey(group), decodeOffset)
	return []byte(o.Metadata), ok, err
}
