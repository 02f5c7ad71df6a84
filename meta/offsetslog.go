package meta

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"unicode/utf16"

	"github.com/dgraph-io/badger/v4"
)

// Committed offsets live in the state, but lag tools read Kafka's
// internal topic __consumer_offsets. The state gives each commit an
// offset in a partition of that topic, as Kafka's group coordinator
// appends it to one: the partition is Kafka's (the group id's Java hash
// modulo OffsetsTopicPartitions), and each partition counts its commits.
// A partition's records are then the latest commit of each key, at the
// offset it was written: the view a compacted __consumer_offsets gives.

// OffsetsTopicPartitions is the number of __consumer_offsets partitions
// (Kafka's offsets.topic.num.partitions default).
const OffsetsTopicPartitions = 50

// OffsetsTopic is the internal topic's name, and OffsetsTopicID its id:
// fixed, as there is one per cluster.
const OffsetsTopic = "__consumer_offsets"

var OffsetsTopicID = func() [16]byte {
	h := sha256.Sum256([]byte("strata " + OffsetsTopic))
	var id [16]byte
	copy(id[:], h[:])
	return id
}()

// keyOffsetsLog holds each partition's next offset (8 bytes):
// ol/<partition:4>.
const keyOffsetsLog = "ol/"

func offsetsLogKey(p int32) []byte {
	return binary.BigEndian.AppendUint32([]byte(keyOffsetsLog), uint32(p))
}

// OffsetsPartition is the __consumer_offsets partition of a group, as
// Kafka computes it: abs(groupId.hashCode()) % partitions, with Java's
// String.hashCode over UTF-16 code units and Kafka's Utils.abs (which
// maps MinInt32 to 0).
func OffsetsPartition(group string) int32 {
	var h int32
	for _, u := range utf16.Encode([]rune(group)) {
		h = 31*h + int32(u)
	}
	if h == -1<<31 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % OffsetsTopicPartitions
}

// putOffset records a commit at the next offset of its group's
// partition.
func (w *writer) putOffset(o Offset) error {
	p := OffsetsPartition(o.Group)
	next, err := w.offsetsLogEnd(p)
	if err != nil {
		return err
	}
	o.LogOffset = next
	if err := w.dropTombstone(o.Group, o.Topic, o.Partition); err != nil {
		return err
	}
	if err := w.set(offsetKey(o.Group, o.Topic, o.Partition), o.encode()); err != nil {
		return err
	}
	return w.set(offsetsLogKey(p), binary.BigEndian.AppendUint64(nil, uint64(next+1)))
}

// Deleting a key's offsets writes a tombstone at the next offset of its
// partition, as Kafka's coordinator appends one: a lag monitor reading
// the view learns the group or partition is gone. A tombstone stays
// until its key is committed again, or until maxTombstones newer ones in
// its partition push it out (Kafka's cleaner drops them after
// delete.retention.ms; the metadata has no clock of its own).
//
//	ot/<partition:4><log offset:8>  -> the key, as an Offset record
//	otk/<group>\x00<topic>\x00<partition:4> -> its log offset (8 bytes)
//	otn/<partition:4>                -> the partition's tombstones (8 bytes)
const (
	keyTombstone      = "ot/"
	keyTombstoneByKey = "otk/"
	keyTombstoneCount = "otn/"
)

// maxTombstones bounds a partition's tombstones (a variable for tests).
var maxTombstones int64 = 10_000

func tombstonePrefix(p int32) []byte {
	return binary.BigEndian.AppendUint32([]byte(keyTombstone), uint32(p))
}
func tombstoneKey(p int32, logOffset int64) []byte {
	return binary.BigEndian.AppendUint64(tombstonePrefix(p), uint64(logOffset))
}
func tombstoneIndexKey(group, topic string, part int32) []byte {
	return append([]byte(keyTombstoneByKey), offsetKey(group, topic, part)[len(keyOffset):]...)
}
func tombstoneCountKey(p int32) []byte {
	return binary.BigEndian.AppendUint32([]byte(keyTombstoneCount), uint32(p))
}

// deleteOffset deletes a committed offset (its key k) and writes its
// tombstone.
func (w *writer) deleteOffset(k []byte, group, topic string, part int32) error {
	p := OffsetsPartition(group)
	next, err := w.offsetsLogEnd(p)
	if err != nil {
		return err
	}
	if err := w.dropTombstone(group, topic, part); err != nil {
		return err
	}
	o := Offset{Group: group, Topic: topic, Partition: part, Offset: -1, LogOffset: next}
	if err := w.set(tombstoneKey(p, next), o.encode()); err != nil {
		return err
	}
	if err := w.set(tombstoneIndexKey(group, topic, part), binary.BigEndian.AppendUint64(nil, uint64(next))); err != nil {
		return err
	}
	if err := w.set(offsetsLogKey(p), binary.BigEndian.AppendUint64(nil, uint64(next+1))); err != nil {
		return err
	}
	n, err := w.counter(tombstoneCountKey(p))
	if err != nil {
		return err
	}
	if n+1 > maxTombstones { // the oldest goes
		if oldest := w.firstKey(tombstonePrefix(p)); oldest != nil {
			o, _, err := getRecord(w.txn, oldest, decodeOffset)
			if err != nil {
				return err
			}
			if err := w.delete(oldest); err != nil {
				return err
			}
			if err := w.delete(tombstoneIndexKey(o.Group, o.Topic, o.Partition)); err != nil {
				return err
			}
			n--
		}
	}
	if err := w.set(tombstoneCountKey(p), binary.BigEndian.AppendUint64(nil, uint64(n+1))); err != nil {
		return err
	}
	return w.delete(k)
}

// firstKey is the first key with prefix, nil if none.
func (w *writer) firstKey(prefix []byte) []byte {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = prefix
	it := w.txn.NewIterator(opts)
	defer it.Close()
	if it.Rewind(); it.Valid() {
		return it.Item().KeyCopy(nil)
	}
	return nil
}

// dropTombstone removes a key's tombstone, if it has one (it is
// committed, or deleted, again).
func (w *writer) dropTombstone(group, topic string, part int32) error {
	ik := tombstoneIndexKey(group, topic, part)
	lo, found, err := w.counterFound(ik)
	if err != nil || !found {
		return err
	}
	p := OffsetsPartition(group)
	if err := w.delete(tombstoneKey(p, int64(lo))); err != nil {
		return err
	}
	if err := w.delete(ik); err != nil {
		return err
	}
	n, err := w.counter(tombstoneCountKey(p))
	if err != nil {
		return err
	}
	return w.set(tombstoneCountKey(p), binary.BigEndian.AppendUint64(nil, uint64(max(n-1, 0))))
}

// counter reads an 8-byte count (0 when absent).
func (w *writer) counter(k []byte) (int64, error) {
	n, _, err := w.counterFound(k)
	return n, err
}

func (w *writer) counterFound(k []byte) (int64, bool, error) {
	item, err := w.txn.Get(k)
	if err == badger.ErrKeyNotFound {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	var n int64
	err = item.Value(func(v []byte) error {
		if len(v) == 8 {
			n = int64(binary.BigEndian.Uint64(v))
		}
		return nil
	})
	return n, true, err
}

// offsetsLogEnd is partition p's next offset. The first time, commits
// recorded before the view are given the offsets the view showed them
// at (legacyOffsets), and recorded with them.
func (w *writer) offsetsLogEnd(p int32) (int64, error) {
	item, err := w.txn.Get(offsetsLogKey(p))
	if err == nil {
		var n int64
		err = item.Value(func(v []byte) error {
			if len(v) == 8 {
				n = int64(binary.BigEndian.Uint64(v))
			}
			return nil
		})
		return n, err
	}
	if err != badger.ErrKeyNotFound {
		return 0, err
	}
	var legacy []Offset
	if err := scanOffsets(w.txn, func(o Offset) {
		if o.LogOffset < 0 && OffsetsPartition(o.Group) == p {
			legacy = append(legacy, o)
		}
	}); err != nil {
		return 0, err
	}
	for i, o := range legacy { // in key order, as the view numbered them
		o.LogOffset = int64(i)
		if err := w.set(offsetKey(o.Group, o.Topic, o.Partition), o.encode()); err != nil {
			return 0, err
		}
	}
	return int64(len(legacy)), nil
}

// scanOffsets calls fn with every committed offset, in key order.
func scanOffsets(txn *badger.Txn, fn func(Offset)) error {
	return scanOffsetRecords(txn, []byte(keyOffset), fn)
}

// scanOffsetRecords calls fn with every Offset record under prefix, in
// key order.
func scanOffsetRecords(txn *badger.Txn, prefix []byte, fn func(Offset)) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		err := it.Item().Value(func(v []byte) error {
			o, err := decodeOffset(v)
			if err == nil {
				fn(o)
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// OffsetsLog reads __consumer_offsets partitions: for each partition of
// from, the commits at or past its offset there (at most limit per
// partition, by offset), and each partition's end (next offset).
func (v *View) OffsetsLog(from map[int32]int64, limit int) (map[int32][]Offset, map[int32]int64, error) {
	out := map[int32][]Offset{}
	ends := map[int32]int64{}
	legacy := map[int32]int64{} // commits from before the view, numbered in key order
	counted := map[int32]bool{}
	for p := range from {
		item, err := v.txn.Get(offsetsLogKey(p))
		switch {
		case err == nil:
			err = item.Value(func(b []byte) error {
				if len(b) == 8 {
					ends[p] = int64(binary.BigEndian.Uint64(b))
				}
				return nil
			})
			if err != nil {
				return nil, nil, err
			}
		case err == badger.ErrKeyNotFound:
			counted[p] = true // its end is its legacy commits' count
		default:
			return nil, nil, err
		}
	}
	err := scanOffsets(v.txn, func(o Offset) {
		p := OffsetsPartition(o.Group)
		start, ok := from[p]
		if !ok {
			return
		}
		if o.LogOffset < 0 {
			o.LogOffset = legacy[p]
			legacy[p]++
		}
		if o.LogOffset >= start {
			out[p] = append(out[p], o)
		}
	})
	if err != nil {
		return nil, nil, err
	}
	err = scanOffsetRecords(v.txn, []byte(keyGroupMetadata), func(o Offset) {
		p := OffsetsPartition(o.Group)
		if start, ok := from[p]; ok && o.LogOffset >= start {
			o.Value, o.Metadata = []byte(o.Metadata), ""
			out[p] = append(out[p], o)
		}
	})
	if err != nil {
		return nil, nil, err
	}
	for p := range counted {
		ends[p] = legacy[p]
	}
	for p, start := range from {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = tombstonePrefix(p)
		it := v.txn.NewIterator(opts)
		for it.Seek(tombstoneKey(p, max(start, 0))); it.Valid(); it.Next() {
			err := it.Item().Value(func(b []byte) error {
				o, err := decodeOffset(b)
				o.Deleted = true
				out[p] = append(out[p], o)
				return err
			})
			if err != nil {
				it.Close()
				return nil, nil, err
			}
		}
		it.Close()
	}
	for p, os := range out {
		slices.SortFunc(os, func(a, b Offset) int { return cmp.Compare(a.LogOffset, b.LogOffset) })
		if len(os) > limit {
			out[p] = os[:limit]
		}
	}
	return out, ends, nil
}
