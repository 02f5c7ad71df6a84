package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/strata-io/strata/meta"
	plog "github.com/strata-io/strata/node/log"
)

// Producer state snapshots bound what opening or taking over a partition
// costs: instead of scanning every batch header of the log for its
// idempotent producers, a partition starts from the newest snapshot and
// scans only the batches after it (Kafka keeps .snapshot files for the
// same reason). The maintenance loop writes one after each roll, to
// <partition dir>/<20-digit offset>.producers, describing every batch
// below offset:
//
//	| magic "SPS" | version 2 | CRC-32C of the rest uint32 | offset int64 | count uint32 |
//	count × | producer id int64 | epoch int16 | last sequence int32 | n uint8 |
//	         n × | first sequence int32 | last sequence int32 | first offset int64 |
//	         | transaction first offset int64 (-1: none open) | coordinator epoch int32 |
//
// Big-endian, n at most recentBatches. Version 1, written before
// transactions, lacks the last field and is still read. A snapshot is written to a
// temporary file, fsynced and renamed. One that fails its checks, lies
// past the log end, or starts before the log start (the batches between
// it and the start are gone, and with them what they said) is not used.
// Truncation removes every snapshot past the new end first, and a log
// emptied and restarted elsewhere removes them all: a snapshot must never
// describe batches that are not the log's. Snapshots are kept back to the
// oldest local segment, and the two newest always: an upload needs the
// state as of its segment's end (producerSnapshotAt), and starts from the
// newest snapshot at or below it.
//
// The state as of each uploaded segment's end goes to the store beside it
// (tier.ProducersSuffix, same format). A log that starts where an uploaded
// segment ends, without the batches before, restores that state first.

const (
	producerSnapshotSuffix  = ".producers"
	producerSnapshotVersion = 2
	producerSnapshotHeader  = 4 + 4 + 8 + 4
	producerEntryMinBytes   = 8 + 2 + 4 + 1
	txnFirstBytes           = 8 + 4
	seqBatchBytes           = 4 + 4 + 8
)

var producerSnapshotMagic = []byte("SPS")

// errBadProducerSnapshot: a snapshot file failed its checks.
var errBadProducerSnapshot = errors.New("node: bad producer state snapshot")

func encodeProducerSnapshot(offset int64, ps producerStates) []byte {
	b := make([]byte, producerSnapshotHeader, producerSnapshotHeader+len(ps)*(producerEntryMinBytes+recentBatches*seqBatchBytes+txnFirstBytes))
	copy(b, producerSnapshotMagic)
	b[3] = producerSnapshotVersion
	binary.BigEndian.PutUint64(b[8:], uint64(offset))
	binary.BigEndian.PutUint32(b[16:], uint32(len(ps)))
	for _, id := range slices.Sorted(maps.Keys(ps)) {
		st := ps[id]
		b = binary.BigEndian.AppendUint64(b, uint64(id))
		b = binary.BigEndian.AppendUint16(b, uint16(st.epoch))
		b = binary.BigEndian.AppendUint32(b, uint32(st.lastSeq))
		b = append(b, byte(len(st.recent)))
		for _, r := range st.recent {
			b = binary.BigEndian.AppendUint32(b, uint32(r.firstSeq))
			b = binary.BigEndian.AppendUint32(b, uint32(r.lastSeq))
			b = binary.BigEndian.AppendUint64(b, uint64(r.firstOffset))
		}
		txnFirst := int64(-1)
		if st.inTxn {
			txnFirst = st.txnFirst
		}
		b = binary.BigEndian.AppendUint64(b, uint64(txnFirst))
		b = binary.BigEndian.AppendUint32(b, uint32(st.coordinatorEpoch))
	}
	binary.BigEndian.PutUint32(b[4:], crc32.Checksum(b[8:], castagnoli))
	return b
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func decodeProducerSnapshot(b []byte) (int64, producerStates, error) {
	if len(b) < producerSnapshotHeader || string(b[:3]) != string(producerSnapshotMagic) || b[3] < 1 || b[3] > producerSnapshotVersion {
		return 0, nil, fmt.Errorf("%w: no version 1 to %d header", errBadProducerSnapshot, producerSnapshotVersion)
	}
	version := b[3]
	if crc32.Checksum(b[8:], castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return 0, nil, fmt.Errorf("%w: CRC mismatch", errBadProducerSnapshot)
	}
	offset := int64(binary.BigEndian.Uint64(b[8:]))
	count := int(binary.BigEndian.Uint32(b[16:]))
	rest := b[producerSnapshotHeader:]
	if offset < 0 || count > len(rest)/producerEntryMinBytes {
		return 0, nil, fmt.Errorf("%w: offset %d, %d producers in %d bytes", errBadProducerSnapshot, offset, count, len(rest))
	}
	ps := make(producerStates, count)
	for range count {
		if len(rest) < producerEntryMinBytes {
			return 0, nil, fmt.Errorf("%w: cut short", errBadProducerSnapshot)
		}
		id := int64(binary.BigEndian.Uint64(rest))
		st := &producerState{epoch: int16(binary.BigEndian.Uint16(rest[8:])), lastSeq: int32(binary.BigEndian.Uint32(rest[10:]))}
		n := int(rest[14])
		rest = rest[producerEntryMinBytes:]
		if n > recentBatches || len(rest) < n*seqBatchBytes {
			return 0, nil, fmt.Errorf("%w: %d recent batches", errBadProducerSnapshot, n)
		}
		for range n {
			st.recent = append(st.recent, seqBatch{firstSeq: int32(binary.BigEndian.Uint32(rest)),
				lastSeq: int32(binary.BigEndian.Uint32(rest[4:])), firstOffset: int64(binary.BigEndian.Uint64(rest[8:]))})
			rest = rest[seqBatchBytes:]
		}
		if version >= 2 {
			if len(rest) < txnFirstBytes {
				return 0, nil, fmt.Errorf("%w: cut short", errBadProducerSnapshot)
			}
			if first := int64(binary.BigEndian.Uint64(rest)); first >= 0 {
				st.inTxn, st.txnFirst = true, first
			}
			st.coordinatorEpoch = int32(binary.BigEndian.Uint32(rest[8:]))
			rest = rest[txnFirstBytes:]
		}
		ps[id] = st
	}
	if len(rest) != 0 {
		return 0, nil, fmt.Errorf("%w: %d bytes left over", errBadProducerSnapshot, len(rest))
	}
	return offset, ps, nil
}

func producerSnapshotPath(dir string, offset int64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", offset, producerSnapshotSuffix))
}

// producerSnapshots lists the snapshot offsets in dir, oldest first.
func producerSnapshots(dir string) []int64 {
	entries, _ := os.ReadDir(dir)
	var out []int64
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, producerSnapshotSuffix) || len(name) != 20+len(producerSnapshotSuffix) {
			continue
		}
		if off, err := strconv.ParseInt(strings.TrimSuffix(name, producerSnapshotSuffix), 10, 64); err == nil {
			out = append(out, off)
		}
	}
	slices.Sort(out)
	return out
}

// writeProducerSnapshot writes a snapshot of ps at offset, then removes
// those below keepFrom but the two newest.
func writeProducerSnapshot(dir string, offset int64, ps producerStates, keepFrom int64) error {
	return writeSnapshotFile(dir, offset, encodeProducerSnapshot(offset, ps), keepFrom)
}

// writeSnapshotFile writes an encoded snapshot at offset (see
// writeProducerSnapshot).
func writeSnapshotFile(dir string, offset int64, b []byte, keepFrom int64) error {
	path := producerSnapshotPath(dir, offset)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	if offs := producerSnapshots(dir); len(offs) > 2 {
		for _, off := range offs[:len(offs)-2] {
			if off < keepFrom {
				os.Remove(producerSnapshotPath(dir, off))
			}
		}
	}
	return nil
}

// producerStateAt is the producer state as of offset next, the end of
// the closed segment [base, next) about to be uploaded: every batch below
// next, as a replica starting its log at next must know it. It starts
// from, in order:
//   - the state this computed for the segment before (uploads go oldest
//     first);
//   - the newest local snapshot at or below next, not before the log
//     start;
//   - the state uploaded with the segment that ends where the local log
//     starts (a log started after the uploaded segments, or cut by local
//     retention);
//   - nothing, at the log start (a log that starts at 0, or where
//     DeleteRecords cut it),
//
// and records the batches from there up to next.
func (n *Node) producerStateAt(ol *openLog, topic string, p int32, base, next int64) ([]byte, error) {
	chain := &ol.tier.producers
	chain.Lock()
	defer chain.Unlock()
	var ps producerStates
	from := ol.StartOffset()
	if chain.ps != nil && chain.at == base && base >= from {
		ps, from = chain.ps.clone(), base
	}
	if ps == nil {
		ps, from = localSnapshotAtOrBelow(ol.Log, next)
	}
	if ps == nil && from > 0 {
		var err error
		if ps, err = n.uploadedProducers(topic, p)(from); err != nil {
			return nil, err
		}
	}
	if ps == nil {
		ps = producerStates{}
	}
	if _, err := recordBatches(ol.Log, ps, from, next); err != nil {
		return nil, err
	}
	chain.at, chain.ps = next, ps.clone()
	return encodeProducerSnapshot(next, ps), nil
}

// localSnapshotAtOrBelow is the newest usable local snapshot at or below
// next, not before the log start, and its offset; nil and the log start
// when there is none.
func localSnapshotAtOrBelow(l *plog.Log, next int64) (producerStates, int64) {
	dir := l.Dir()
	offs := producerSnapshots(dir)
	for i := len(offs) - 1; i >= 0; i-- {
		off := offs[i]
		if off > next {
			continue
		}
		if off < l.StartOffset() {
			break
		}
		b, err := os.ReadFile(producerSnapshotPath(dir, off))
		if err != nil {
			continue
		}
		if at, ps, err := decodeProducerSnapshot(b); err == nil && at == off {
			return ps, off
		}
	}
	return nil, l.StartOffset()
}

func (ps producerStates) clone() producerStates {
	out := make(producerStates, len(ps))
	for id, st := range ps {
		out[id] = &producerState{epoch: st.epoch, lastSeq: st.lastSeq, recent: slices.Clone(st.recent), inTxn: st.inTxn, txnFirst: st.txnFirst,
			markers: st.markers, coordinatorEpoch: st.coordinatorEpoch}
	}
	return out
}

// checkProducerSnapshot checks that b, read from the store, is a snapshot
// at offset at.
func checkProducerSnapshot(b []byte, at int64) error {
	off, _, err := decodeProducerSnapshot(b)
	if err == nil && off != at {
		err = fmt.Errorf("%w: at offset %d, want %d", errBadProducerSnapshot, off, at)
	}
	return err
}

// removeProducerSnapshotsAbove removes the snapshots past offset: a log
// about to be truncated there must not find them afterwards.
func removeProducerSnapshotsAbove(dir string, offset int64) error {
	var err error
	for _, off := range producerSnapshots(dir) {
		if off > offset {
			err = errors.Join(err, os.Remove(producerSnapshotPath(dir, off)))
		}
	}
	return err
}

// loadProducers rebuilds a log's producer state from its newest usable
// snapshot and the batches after it, or from every batch when there is
// none. It returns the snapshot offset used (-1: none).
func loadProducers(l *plog.Log) (producerStates, int64, error) {
	return loadProducersWith(l, nil)
}

// loadProducersWith is loadProducers with, for a log without a usable
// snapshot, the state as of its start from base (nil, or a nil state:
// none; see Node.uploadedProducers).
func loadProducersWith(l *plog.Log, base func(start int64) (producerStates, error)) (producerStates, int64, error) {
	removeProducerSnapshotsAbove(l.Dir(), l.EndOffset()) // the log was cut below them
	ps, from := localSnapshotAtOrBelow(l, l.EndOffset())
	at := int64(-1)
	if ps != nil {
		at = from
	} else if base != nil && l.StartOffset() > 0 {
		var err error
		if ps, err = base(l.StartOffset()); err != nil {
			return nil, -1, err
		}
	}
	if ps == nil {
		ps = producerStates{}
	}
	aborted, err := recordBatches(l, ps, from, l.EndOffset())
	if err != nil {
		return nil, -1, err
	}
	// The index may lack what a crash took before it was written.
	for _, a := range aborted {
		if err := l.AppendAbortedTxn(a); err != nil {
			return nil, -1, err
		}
	}
	return ps, at, nil
}

// recordBatches records in ps the batches of l from offset from up to
// offset to, and returns the transactions they abort (see noteAborted).
func recordBatches(l *plog.Log, ps producerStates, from, to int64) ([]plog.AbortedTxn, error) {
	if from >= to {
		return nil, nil
	}
	var aborted []plog.AbortedTxn
	err := l.ScanBatchesControl(from, func(h plog.BatchHeader, control []byte) bool {
		if h.BaseOffset >= to {
			return false
		}
		if a := ps.record(h, h.BaseOffset, control); a != nil {
			aborted = append(aborted, ps.completeAborted(*a))
		}
		return true
	})
	return aborted, err
}

// uploadedProducers returns, for loadProducersWith, the producer state
// uploaded with the partition's segment that ends where a log starts:
// nil when no manifest entry ends there (the log starts at a deletion
// point) or it was uploaded without one.
func (n *Node) uploadedProducers(topic string, p int32) func(start int64) (producerStates, error) {
	if n.cfg.Tier == nil {
		return nil
	}
	return func(start int64) (producerStates, error) {
		segs, err := n.manifest(meta.Partition{Topic: topic, Partition: p})
		if err != nil {
			return nil, err
		}
		for _, s := range segs {
			if s.LastOffset+1 != start {
				continue
			}
			ctx, cancel := context.WithTimeout(n.base, remoteProducersTimeout)
			defer cancel()
			b, err := n.remoteProducers(ctx, s)
			if err != nil || b == nil {
				return nil, err
			}
			_, ps, err := decodeProducerSnapshot(b) // checked by remoteProducers
			return ps, err
		}
		return nil, nil
	}
}

// snapshotProducers writes a producer state snapshot at the log end once
// the log has rolled past the newest one: the state is copied under the
// append lock, where it holds every idempotent batch below the end, and
// written outside it.
func (ol *openLog) snapshotProducers() error {
	segs := ol.Segments()
	active := segs[len(segs)-1].BaseOffset
	ol.snapshotMu.Lock()
	defer ol.snapshotMu.Unlock()
	ol.appendMu.Lock()
	if ol.producersStale || active <= ol.snapshotAt {
		ol.appendMu.Unlock()
		return nil
	}
	offset := ol.EndOffset()
	ps := ol.producers.clone()
	before := ol.snapshotAt
	ol.snapshotAt = offset
	ol.appendMu.Unlock()
	if err := writeProducerSnapshot(ol.Dir(), offset, ps, segs[0].BaseOffset); err != nil {
		ol.appendMu.Lock()
		ol.snapshotAt = before // try again next tick
		ol.appendMu.Unlock()
		return err
	}
	return nil
}
