package node

import (
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
//	| magic "SPS" | version 1 | CRC-32C of the rest uint32 | offset int64 | count uint32 |
//	count × | producer id int64 | epoch int16 | last sequence int32 | n uint8 |
//	         n × | first sequence int32 | last sequence int32 | first offset int64 |
//
// Big-endian, n at most recentBatches. A snapshot is written to a
// temporary file, fsynced and renamed. One that fails its checks, lies
// past the log end, or starts before the log start (the batches between
// it and the start are gone, and with them what they said) is not used.
// Truncation removes every snapshot past the new end first, and a log
// emptied and restarted elsewhere removes them all: a snapshot must never
// describe batches that are not the log's. The two newest are kept.

const (
	producerSnapshotSuffix  = ".producers"
	producerSnapshotVersion = 1
	producerSnapshotHeader  = 4 + 4 + 8 + 4
	producerEntryMinBytes   = 8 + 2 + 4 + 1
	seqBatchBytes           = 4 + 4 + 8
)

var producerSnapshotMagic = []byte("SPS")

// errBadProducerSnapshot: a snapshot file failed its checks.
var errBadProducerSnapshot = errors.New("node: bad producer state snapshot")

func encodeProducerSnapshot(offset int64, ps producerStates) []byte {
	b := make([]byte, producerSnapshotHeader, producerSnapshotHeader+len(ps)*(producerEntryMinBytes+recentBatches*seqBatchBytes))
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
	}
	binary.BigEndian.PutUint32(b[4:], crc32.Checksum(b[8:], castagnoli))
	return b
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func decodeProducerSnapshot(b []byte) (int64, producerStates, error) {
	if len(b) < producerSnapshotHeader || string(b[:3]) != string(producerSnapshotMagic) || b[3] != producerSnapshotVersion {
		return 0, nil, fmt.Errorf("%w: no version %d header", errBadProducerSnapshot, producerSnapshotVersion)
	}
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

// writeProducerSnapshot writes a snapshot of ps at offset, then keeps
// only it and the one before.
func writeProducerSnapshot(dir string, offset int64, ps producerStates) error {
	path := producerSnapshotPath(dir, offset)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(encodeProducerSnapshot(offset, ps))
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
			os.Remove(producerSnapshotPath(dir, off))
		}
	}
	return nil
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
	dir := l.Dir()
	offs := producerSnapshots(dir)
	for i := len(offs) - 1; i >= 0; i-- {
		off := offs[i]
		if off > l.EndOffset() {
			os.Remove(producerSnapshotPath(dir, off)) // the log was cut below it
			continue
		}
		if off < l.StartOffset() {
			break
		}
		b, err := os.ReadFile(producerSnapshotPath(dir, off))
		if err != nil {
			continue
		}
		at, ps, err := decodeProducerSnapshot(b)
		if err != nil || at != off {
			continue
		}
		if off < l.EndOffset() {
			err = l.ScanBatches(off, func(h plog.BatchHeader) bool {
				ps.record(h, h.BaseOffset)
				return true
			})
		}
		return ps, off, err
	}
	ps, err := rebuildProducers(l)
	return ps, -1, err
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
	ps := make(producerStates, len(ol.producers))
	for id, st := range ol.producers {
		ps[id] = &producerState{epoch: st.epoch, lastSeq: st.lastSeq, recent: slices.Clone(st.recent)}
	}
	before := ol.snapshotAt
	ol.snapshotAt = offset
	ol.appendMu.Unlock()
	if err := writeProducerSnapshot(ol.Dir(), offset, ps); err != nil {
		ol.appendMu.Lock()
		ol.snapshotAt = before // try again next tick
		ol.appendMu.Unlock()
		return err
	}
	return nil
}
