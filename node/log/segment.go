package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// File name suffixes of a segment.
const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
)

// segmentName is the 20-digit, zero-padded base offset Kafka uses.
func segmentName(baseOffset int64) string { return fmt.Sprintf("%020d", baseOffset) }

// segment is one .log file and its two indexes. The appender writes; any
// number of readers read the bytes below the published size.
type segment struct {
	baseOffset int64
	// intervalBytes is index.interval.bytes as it was when the segment
	// was created or opened; fixed for the segment's life.
	intervalBytes int
	logPath       string
	log           File
	index         offsetIndex
	timeIndex     timeIndex
	txn           txnIndex // aborted transactions (txnindex.go)

	// Published state: written by the appender, read by anyone.
	// Invariant: every batch that starts below size is whole and valid,
	// and nextOffset is one past the last of them (baseOffset if none).
	size         atomic.Int64
	nextOffset   atomic.Int64
	maxTimestamp atomic.Int64 // largest batch max timestamp; math.MinInt64 when empty
	// maxTimestampBase is the base offset of the first batch that carried
	// maxTimestamp.
	maxTimestampBase atomic.Int64

	// Appender-only state.
	bytesSinceIndex int64
	rollStart       time.Time // when the first batch arrived; zero when empty
	sealed          bool
	synced          bool // sealed and fsynced

	// removed is set, with segMu held exclusively, when the segment's
	// files are closed and deleted.
	removed atomic.Bool
}

func segmentPaths(dir string, baseOffset int64) (logPath, indexPath, timeIndexPath string) {
	base := filepath.Join(dir, segmentName(baseOffset))
	return base + logSuffix, base + indexSuffix, base + timeIndexSuffix
}

// createSegment makes a new, empty segment whose indexes can hold
// capacity entries.
func createSegment(fs FS, dir string, baseOffset int64, capacity, intervalBytes int) (*segment, error) {
	logPath, indexPath, timeIndexPath := segmentPaths(dir, baseOffset)
	// A leftover file from an interrupted roll or a truncation is stale:
	// start from empty files.
	for _, p := range []string{logPath, indexPath, timeIndexPath, txnIndexPath(dir, baseOffset)} {
		if err := fs.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	s, err := openSegmentFiles(fs, dir, baseOffset, 0, 0, capacity, intervalBytes)
	if err != nil {
		return nil, err
	}
	if err := fs.SyncDir(dir); err != nil {
		return nil, errors.Join(err, s.close())
	}
	return s, nil
}

// openSegmentFiles opens the three files of a segment, mapping indexes
// with the given valid entry counts and capacity. It does not read the
// log; the caller sets the published state.
func openSegmentFiles(fs FS, dir string, baseOffset int64, indexEntries, timeIndexEntries, capacity, intervalBytes int) (*segment, error) {
	logPath, indexPath, timeIndexPath := segmentPaths(dir, baseOffset)
	lf, err := fs.OpenFile(logPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	ix, err := openMmapIndex(fs, indexPath, offsetIndexEntryBytes, indexEntries, capacity)
	if err != nil {
		return nil, errors.Join(err, lf.Close())
	}
	tix, err := openMmapIndex(fs, timeIndexPath, timeIndexEntryBytes, timeIndexEntries, capacity)
	if err != nil {
		return nil, errors.Join(err, lf.Close(), ix.close())
	}
	s := &segment{
		baseOffset:    baseOffset,
		intervalBytes: intervalBytes,
		logPath:       logPath,
		log:           lf,
		index:         offsetIndex{mmapIndex: ix, baseOffset: baseOffset},
		timeIndex:     timeIndex{mmapIndex: tix, baseOffset: baseOffset},
		txn:           txnIndex{path: txnIndexPath(dir, baseOffset)},
	}
	s.nextOffset.Store(baseOffset)
	s.maxTimestamp.Store(math.MinInt64)
	s.maxTimestampBase.Store(baseOffset)
	return s, nil
}

// canHold reports whether a batch of size bytes ending at lastOffset fits
// this segment without a roll: relative offsets and positions must fit
// their uint32 index fields and the indexes must have room.
func (s *segment) canHold(size int64, lastOffset int64, cfg *Config) bool {
	cur := s.size.Load()
	if cur == 0 {
		return lastOffset-s.baseOffset <= math.MaxUint32 && !s.index.full()
	}
	return cur+size <= cfg.SegmentBytes &&
		lastOffset-s.baseOffset <= math.MaxUint32 &&
		!s.index.full() && !s.timeIndex.full()
}

// append writes one validated batch (its offsets already assigned) at the
// end of the segment and publishes it. On a write error nothing is
// published; the caller decides whether the log survives.
func (s *segment) append(batch []byte, h *BatchHeader, now time.Time) error {
	pos := s.size.Load()
	if _, err := s.log.WriteAt(batch, pos); err != nil {
		return err
	}
	s.indexBatch(pos, h)
	if s.rollStart.IsZero() {
		s.rollStart = now
	}
	// Publish: readers that load the new size see the bytes, the index
	// entries and the timestamps written above.
	s.nextOffset.Store(h.LastOffset() + 1)
	s.size.Store(pos + h.Size())
	return nil
}

// indexBatch updates the indexes and max timestamp for a batch at pos.
// Appender and recovery only.
func (s *segment) indexBatch(pos int64, h *BatchHeader) {
	s.noteTimestamp(h)
	if s.bytesSinceIndex >= int64(s.intervalBytes) && !s.index.full() {
		s.index.append(h.BaseOffset, pos)
		s.timeIndex.append(s.maxTimestamp.Load(), s.maxTimestampBase.Load())
		s.bytesSinceIndex = 0
	}
	s.bytesSinceIndex += h.Size()
}

// noteTimestamp tracks the segment's max timestamp and the first batch
// that reached it. The base is stored before the timestamp so a reader
// that sees the new timestamp finds its batch.
func (s *segment) noteTimestamp(h *BatchHeader) {
	if h.MaxTimestamp > s.maxTimestamp.Load() {
		s.maxTimestampBase.Store(h.BaseOffset)
		s.maxTimestamp.Store(h.MaxTimestamp)
	}
}

// seal ends appends to the segment: the final time index entry, indexes
// trimmed to their entries.
func (s *segment) seal() error {
	if s.sealed {
		return nil
	}
	if ts := s.maxTimestamp.Load(); ts != math.MinInt64 {
		s.timeIndex.append(ts, s.maxTimestampBase.Load())
	}
	s.sealed = true
	return errors.Join(s.index.trim(), s.timeIndex.trim())
}

// unseal makes a sealed segment the active one again after a truncation.
// Readers must be held off (the index mappings change).
func (s *segment) unseal(capacity int) error {
	s.sealed, s.synced = false, false
	return errors.Join(
		s.index.remap(max(capacity, int(s.index.entries.Load()))),
		s.timeIndex.remap(max(capacity, int(s.timeIndex.entries.Load()))))
}

// sync makes the segment durable: log bytes and indexes.
func (s *segment) sync() error {
	return errors.Join(s.log.Sync(), s.index.sync(), s.timeIndex.sync())
}

func (s *segment) close() error {
	return errors.Join(s.log.Close(), s.index.close(), s.timeIndex.close(), s.txn.close())
}

// remove closes the segment and deletes its files.
func (s *segment) remove(fs FS) error {
	s.removed.Store(true)
	err := s.close()
	for _, p := range []string{s.logPath, s.index.path, s.timeIndex.path, s.txn.path} {
		if rmErr := fs.Remove(p); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
			err = errors.Join(err, rmErr)
		}
	}
	return err
}

// recover rebuilds the segment's state from its .log file: every batch is
// checked (frame and CRC) and indexed afresh; the first bad batch and
// everything after it are cut off. It returns how many bytes it dropped.
// Indexes must be empty on entry.
func (s *segment) recover(scratch []byte, gaps bool, onBatch func(BatchHeader) error) (dropped int64, err error) {
	fi, err := s.log.Stat()
	if err != nil {
		return 0, err
	}
	fileSize := fi.Size()
	sc := newScanner(s.log, 0, fileSize, 1<<20, true, scratch)
	next := s.baseOffset
	var valid int64
	for {
		pos, h, _, err := sc.next()
		if err == io.EOF {
			break
		}
		// Offsets are contiguous unless the log was compacted (gaps:
		// they only increase), so a base offset, which the CRC does not
		// cover, is checked against the batch before.
		if err == nil && (h.BaseOffset < next || !gaps && h.BaseOffset != next || h.LastOffsetDelta < 0 || h.LastOffset()-s.baseOffset > math.MaxUint32) {
			err = fmt.Errorf("%w: batch at position %d has offsets [%d, %d], expected from %d", ErrCorrupt, pos, h.BaseOffset, h.LastOffset(), next)
		}
		if err == nil {
			err = onBatch(h)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				return 0, err // an I/O error: do not mistake it for a torn tail
			}
			break
		}
		if s.index.full() {
			// Cannot index further: treat the rest as lost rather than
			// serve it unindexed. Only a shrunken segment.index.bytes
			// gets here, and recovery sizes the index to avoid it.
			break
		}
		s.indexBatch(pos, &h)
		valid = pos + h.Size()
		next = h.LastOffset() + 1
	}
	if valid < fileSize {
		if err := s.log.Truncate(valid); err != nil {
			return 0, err
		}
	}
	s.nextOffset.Store(next)
	s.size.Store(valid)
	return fileSize - valid, nil
}

// loadTrusted sets the published state from indexes a clean shutdown left
// behind, after checking them against the log. It walks the batches after
// the last index entry to find the end. Any disagreement returns an error
// wrapping ErrCorrupt and the caller rebuilds.
func (s *segment) loadTrusted(scratch []byte, gaps bool) error {
	fi, err := s.log.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if err := s.index.sane(size, math.MaxInt64); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if err := s.timeIndex.sane(math.MaxInt64); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	from := int64(0)
	next := s.baseOffset
	exact := false // the first batch must start at next exactly (an index entry names it)
	if n := int(s.index.entries.Load()); n > 0 {
		rel, pos := s.index.at(n - 1)
		from, next, exact = int64(pos), s.baseOffset+int64(rel), true
	}
	if ts, base, ok := s.timeIndex.last(); ok {
		s.maxTimestamp.Store(ts)
		s.maxTimestampBase.Store(base)
	}
	sc := newScanner(s.log, from, size, 64<<10, false, scratch)
	for {
		pos, h, _, err := sc.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		// Offsets increase; a compacted log has gaps between batches.
		if h.BaseOffset < next || (exact || !gaps) && h.BaseOffset != next {
			return fmt.Errorf("%w: batch at position %d starts at offset %d, expected from %d", ErrCorrupt, pos, h.BaseOffset, next)
		}
		exact = false
		s.noteTimestamp(&h)
		s.bytesSinceIndex += h.Size()
		next = h.LastOffset() + 1
	}
	if err := s.timeIndex.sane(next); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	s.nextOffset.Store(next)
	s.size.Store(size)
	return nil
}

// firstBatchTimestamp reads the max timestamp of the segment's first
// batch, which dates the segment for segment.ms after a restart.
func (s *segment) firstBatchTimestamp() (int64, bool) {
	if s.size.Load() < BatchHeaderBytes {
		return 0, false
	}
	var hdr [BatchHeaderBytes]byte
	if _, err := s.log.ReadAt(hdr[:], 0); err != nil {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(hdr[offMaxTimestamp:])), true
}

// findBatch returns the position of the first batch whose last offset is
// >= offset, scanning headers forward from the index's floor entry. found
// is false when no batch below limit qualifies.
func (s *segment) findBatch(offset, limit int64, scratch []byte) (pos int64, h BatchHeader, found bool, err error) {
	_, from, next := s.index.lookupSpan(offset)
	if next < 0 {
		next = limit
	}
	// Size the first read to the span the scan may cover, so the common
	// case is one pread: a short span (small batches) is read whole; a
	// long one holds one big batch, whose header is all that is needed.
	// Either way the scan reads on, an interval at a time, if it must.
	interval := max(s.intervalBytes, 512)
	sc := newScanner(s.log, from, limit, interval+BatchHeaderBytes, false, scratch)
	if span := next - from; span <= int64(2*interval) {
		sc.firstBytes = int(span) + BatchHeaderBytes
	} else {
		sc.firstBytes = BatchHeaderBytes
	}
	for {
		pos, h, _, err := sc.next()
		if err == io.EOF {
			return 0, h, false, nil
		}
		if err != nil {
			return 0, h, false, err
		}
		if h.LastOffset() >= offset {
			return pos, h, true, nil
		}
	}
}

// read appends to dst the whole batches from position pos up to limit:
// at most maxBytes of them, but always the first one whole, and none that
// starts at or beyond maxOffset.
func (s *segment) read(dst []byte, alloc func(int) []byte, pos, limit int64, maxBytes int, maxOffset int64) ([]byte, error) {
	n := int(min(int64(max(maxBytes, BatchHeaderBytes)), limit-pos))
	if n <= 0 {
		return dst, nil
	}
	start := len(dst)
	dst = grow(dst, n, alloc)
	got, err := s.log.ReadAt(dst[start:start+n], pos)
	if got < n {
		if err == nil || errors.Is(err, io.EOF) {
			err = errTorn
		}
		return dst[:start], err
	}
	// Keep whole batches only.
	p := 0
	for p+BatchHeaderBytes <= n {
		h, err := checkBatchFrame(dst[start+p:])
		if err != nil {
			return dst[:start], fmt.Errorf("log: segment %d position %d: %w", s.baseOffset, pos+int64(p), err)
		}
		if h.BaseOffset >= maxOffset {
			break
		}
		end := p + int(h.Size())
		if end > n {
			if p == 0 && pos+h.Size() <= limit {
				// The first batch alone exceeds maxBytes: return it whole
				// anyway so the reader can always make progress.
				dst = grow(dst[:start+n], int(h.Size())-n, alloc)
				if got, err := s.log.ReadAt(dst[start+n:start+int(h.Size())], pos+int64(n)); got < int(h.Size())-n {
					if err == nil || errors.Is(err, io.EOF) {
						err = errTorn
					}
					return dst[:start], err
				}
				p = int(h.Size())
			}
			break
		}
		if invariantsEnabled {
			if _, err := checkStoredBatch(dst[start+p : start+end]); err != nil {
				panic(fmt.Sprintf("log: segment %d position %d: %v", s.baseOffset, pos+int64(p), err))
			}
		}
		p = end
	}
	return dst[:start+p], nil
}

// grow extends dst by n bytes, reallocating only when capacity runs out:
// from alloc (a buffer with room for at least the size asked) when not
// nil.
func grow(dst []byte, n int, alloc func(int) []byte) []byte {
	if need := len(dst) + n; need > cap(dst) {
		var bigger []byte
		if alloc != nil {
			bigger = alloc(need)[:len(dst)]
		} else {
			bigger = make([]byte, len(dst), max(need, 2*cap(dst)))
		}
		copy(bigger, dst)
		dst = bigger
	}
	return dst[:len(dst)+n]
}

// checkStoredBatch verifies a stored batch's frame and CRC: the read side
// of the pair of checks around the disk.
func checkStoredBatch(b []byte) (BatchHeader, error) { return VerifyBatch(b) }

// VerifyBatch checks that b is exactly one stored RecordBatch whose frame
// is sound and whose CRC matches: what a reader of segment bytes from
// elsewhere (the object store) checks before serving them.
func VerifyBatch(b []byte) (BatchHeader, error) {
	h, err := checkBatchFrame(b)
	if err != nil {
		return h, err
	}
	if h.Size() != int64(len(b)) {
		return h, fmt.Errorf("%w: length %d, have %d bytes", ErrCorrupt, h.Size(), len(b))
	}
	if sum := crcOf(b); sum != h.CRC {
		return h, fmt.Errorf("%w: CRC mismatch", ErrCorrupt)
	}
	return h, nil
}

// truncate cuts the segment to size bytes ending before offset next, and
// recomputes what the appender tracks. Readers must be held off.
func (s *segment) truncate(size, next int64, scratch []byte) error {
	if err := s.log.Truncate(size); err != nil {
		return err
	}
	s.index.truncateTo(next)
	s.timeIndex.truncateTo(next)
	if err := s.txn.truncateTo(next); err != nil {
		return err
	}
	// The max timestamp is the last remaining time index entry's, or a
	// newer one among the batches after it.
	s.maxTimestamp.Store(math.MinInt64)
	s.maxTimestampBase.Store(s.baseOffset)
	from := int64(0)
	if ts, base, ok := s.timeIndex.last(); ok {
		s.maxTimestamp.Store(ts)
		s.maxTimestampBase.Store(base)
		_, from = s.index.lookup(base)
	}
	sc := newScanner(s.log, from, size, 64<<10, false, scratch)
	for {
		_, h, _, err := sc.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		s.noteTimestamp(&h)
	}
	s.bytesSinceIndex = size
	if n := int(s.index.entries.Load()); n > 0 {
		_, pos := s.index.at(n - 1)
		s.bytesSinceIndex = size - int64(pos)
	}
	if size == 0 {
		s.rollStart = time.Time{}
	}
	s.nextOffset.Store(next)
	s.size.Store(size)
	return nil
}
