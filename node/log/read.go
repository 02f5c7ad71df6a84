package log

import (
	"fmt"
	"io"
	"math"
	"slices"
)

// Reads: lock-free against appends. They load the published segment list,
// sizes and index counts, and hold segMu shared only while they touch
// files that retention or truncation could close.

// Read appends to dst whole stored batches, verbatim, starting with the
// batch that holds offset: at most maxBytes of them, except that the
// first batch is returned whole even when it alone is larger, so a reader
// always makes progress. No batch starting at or beyond maxOffset is
// returned (pass the high watermark, or -1 for the log end). An offset
// outside [StartOffset, EndOffset] returns ErrOffsetOutOfRange; at the
// end, nothing. Reads do not wait for appends. Safe for concurrent use.
func (l *Log) Read(dst []byte, offset int64, maxBytes int, maxOffset int64) ([]byte, error) {
	return l.read(dst, nil, offset, maxBytes, maxOffset)
}

// ReadAlloc is Read into a buffer from alloc, called only when there are
// bytes to read, with their size (twice for a first batch larger than
// maxBytes): for callers that pool buffers. It returns nil when nothing
// was read and alloc was not called.
func (l *Log) ReadAlloc(alloc func(n int) []byte, offset int64, maxBytes int, maxOffset int64) ([]byte, error) {
	return l.read(nil, alloc, offset, maxBytes, maxOffset)
}

func (l *Log) read(dst []byte, alloc func(int) []byte, offset int64, maxBytes int, maxOffset int64) ([]byte, error) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if err := l.Err(); err != nil {
		return dst, err
	}
	end := l.endOffset.Load()
	start := l.startOffset.Load()
	if offset < start || offset > end {
		return dst, fmt.Errorf("%w: offset %d not in [%d, %d]", ErrOffsetOutOfRange, offset, start, end)
	}
	if maxOffset < 0 || maxOffset > end {
		maxOffset = end
	}
	if offset >= maxOffset {
		return dst, nil
	}
	scratch := l.scratch.Get().(*[]byte)
	defer l.scratch.Put(scratch)
	segs := *l.segments.Load()
	for i := floorSegment(segs, offset); i < len(segs); i++ {
		s := segs[i]
		limit := s.size.Load()
		pos, h, found, err := s.findBatch(offset, limit, *scratch)
		if err != nil {
			return dst, l.fail(fmt.Errorf("read offset %d: %w", offset, err))
		}
		if !found {
			continue
		}
		if h.BaseOffset >= maxOffset {
			return dst, nil
		}
		out, err := s.read(dst, alloc, pos, limit, maxBytes, maxOffset)
		if err != nil {
			return dst, l.fail(fmt.Errorf("read offset %d: %w", offset, err))
		}
		return out, nil
	}
	return dst, nil
}

// floorSegment returns the index of the last segment whose base offset is
// <= offset, or 0.
func floorSegment(segs []*segment, offset int64) int {
	lo, hi := 0, len(segs)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if segs[mid].baseOffset <= offset {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return max(lo-1, 0)
}

// OffsetForTimestamp returns the first offset, below maxOffset (-1: the
// log end), whose record timestamp is >= timestamp, and that record's
// timestamp (Kafka's ListOffsets by time). found is false when no record
// is that new. Inside a compressed batch it needs Options.Decompress to
// be exact; without it the batch's first offset and max timestamp answer.
func (l *Log) OffsetForTimestamp(timestamp, maxOffset int64) (offset, recordTimestamp int64, found bool, err error) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if err := l.Err(); err != nil {
		return 0, 0, false, err
	}
	start := l.startOffset.Load()
	if maxOffset < 0 || maxOffset > l.endOffset.Load() {
		maxOffset = l.endOffset.Load()
	}
	scratch := l.scratch.Get().(*[]byte)
	defer l.scratch.Put(scratch)
	for _, s := range *l.segments.Load() {
		if s.maxTimestamp.Load() < timestamp || s.nextOffset.Load() <= start {
			continue
		}
		from := max(s.timeIndex.lookup(timestamp), start)
		_, pos := s.index.lookup(from)
		limit := s.size.Load()
		sc := newScanner(s.log, pos, limit, 8<<10, false, *scratch)
		for {
			pos, h, _, err := sc.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return 0, 0, false, l.fail(fmt.Errorf("offset for timestamp %d: %w", timestamp, err))
			}
			if h.BaseOffset >= maxOffset {
				return 0, 0, false, nil
			}
			if h.MaxTimestamp < timestamp || h.LastOffset() < start {
				continue
			}
			off, ts, err := l.firstRecordAtOrAfter(s, pos, h, timestamp, start)
			if err != nil {
				return 0, 0, false, err
			}
			return off, ts, true, nil
		}
	}
	return 0, 0, false, nil
}

// MaxTimestamp returns the largest timestamp in the log and the offset of
// the first record that carries it (Kafka's ListOffsets MAX_TIMESTAMP).
func (l *Log) MaxTimestamp() (timestamp, offset int64, found bool, err error) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if err := l.Err(); err != nil {
		return 0, 0, false, err
	}
	var best *segment
	start := l.startOffset.Load()
	for _, s := range *l.segments.Load() {
		if s.nextOffset.Load() > start && (best == nil || s.maxTimestamp.Load() > best.maxTimestamp.Load()) {
			best = s
		}
	}
	if best == nil || best.maxTimestamp.Load() == math.MinInt64 {
		return 0, 0, false, nil
	}
	ts := best.maxTimestamp.Load()
	scratch := l.scratch.Get().(*[]byte)
	defer l.scratch.Put(scratch)
	pos, h, ok, err := best.findBatch(best.maxTimestampBase.Load(), best.size.Load(), *scratch)
	if err != nil || !ok {
		return 0, 0, false, l.fail(fmt.Errorf("max timestamp batch at %d: %v", best.maxTimestampBase.Load(), err))
	}
	off, _, err := l.firstRecordAtOrAfter(best, pos, h, ts, start)
	return ts, off, err == nil, err
}

// firstRecordAtOrAfter finds, in the batch at pos, the first record at or
// after offset start whose timestamp is >= timestamp.
func (l *Log) firstRecordAtOrAfter(s *segment, pos int64, h BatchHeader, timestamp, start int64) (int64, int64, error) {
	if h.Compression() != CompressionNone && l.decompress == nil {
		return max(h.BaseOffset, start), h.MaxTimestamp, nil
	}
	b := make([]byte, h.Size())
	if _, err := s.log.ReadAt(b, pos); err != nil {
		return 0, 0, l.fail(fmt.Errorf("read batch at position %d: %w", pos, err))
	}
	off, ts := RecordAtOrAfter(b, h, timestamp, start, l.decompress)
	return off, ts, nil
}

// RecordAtOrAfter finds, in batch b (with header h), the first record at
// or after offset start whose timestamp is >= timestamp, and its
// timestamp. A compressed batch needs decompress (nil: the batch's first
// offset at or after start and its max timestamp answer).
func RecordAtOrAfter(b []byte, h BatchHeader, timestamp, start int64, decompress func(codec int, body []byte) ([]byte, error)) (offset, recordTimestamp int64) {
	fallback := max(h.BaseOffset, start)
	records := b[BatchHeaderBytes:]
	if h.Compression() != CompressionNone {
		if decompress == nil {
			return fallback, h.MaxTimestamp
		}
		var err error
		if records, err = decompress(h.Compression(), records); err != nil {
			return fallback, h.MaxTimestamp
		}
	}
	off, ts := fallback, h.MaxTimestamp
	recordTimestamps(records, h, func(delta int32, recTs int64) bool {
		if o := h.BaseOffset + int64(delta); o >= start && recTs >= timestamp {
			off, ts = o, recTs
			return false
		}
		return true
	})
	return off, ts
}

// LatestEpoch returns the newest leader epoch in the log, or -1.
func (l *Log) LatestEpoch() int32 {
	if e := *l.epochView.Load(); len(e) > 0 {
		return e[len(e)-1].Epoch
	}
	return -1
}

// Epochs returns the leader epoch history (copy).
func (l *Log) Epochs() []EpochEntry { return slices.Clone(*l.epochView.Load()) }

// EndOffsetForEpoch answers OffsetForLeaderEpoch for this log: the largest
// epoch <= epoch it knows and the offset where that epoch ended (the log
// end for the latest epoch), or (-1, -1). Safe for concurrent use.
func (l *Log) EndOffsetForEpoch(epoch int32) (int32, int64) {
	c := epochCache{entries: *l.epochView.Load()}
	return c.endOffsetFor(epoch, l.endOffset.Load())
}

// Segments describes the segments, oldest first.
func (l *Log) Segments() []SegmentInfo {
	segs := *l.segments.Load()
	out := make([]SegmentInfo, len(segs))
	for i, s := range segs {
		out[i] = s.info(i < len(segs)-1)
	}
	return out
}

// Size is the total bytes of the log's segments.
func (l *Log) Size() int64 {
	var n int64
	for _, s := range *l.segments.Load() {
		n += s.size.Load()
	}
	return n
}

// ScanBatches calls fn with the header of every batch from the one holding
// offset from to the log end, in order, until fn returns false. It reads
// headers only. Safe for concurrent use; appends made during the scan may
// or may not be seen.
func (l *Log) ScanBatches(from int64, fn func(BatchHeader) bool) error {
	return l.ScanBatchesControl(from, func(h BatchHeader, _ []byte) bool { return fn(h) })
}

// maxControlBatch bounds what ScanBatchesControl reads of a control
// batch: a marker is one record of a few bytes.
const maxControlBatch = 4 << 10

// ScanBatchesControl is ScanBatches that also passes each control batch
// (a transaction marker) whole; nil for every other batch, and for a
// control batch too large to be a marker.
func (l *Log) ScanBatchesControl(from int64, fn func(h BatchHeader, control []byte) bool) error {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if err := l.Err(); err != nil {
		return err
	}
	from = max(from, l.startOffset.Load())
	scratch := l.scratch.Get().(*[]byte)
	defer l.scratch.Put(scratch)
	segs := *l.segments.Load()
	for i := floorSegment(segs, from); i < len(segs); i++ {
		s := segs[i]
		_, pos := s.index.lookup(from)
		sc := newScanner(s.log, pos, s.size.Load(), 64<<10, false, *scratch)
		for {
			pos, h, _, err := sc.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return l.fail(fmt.Errorf("scan batches: %w", err))
			}
			if h.LastOffset() < from {
				continue
			}
			var control []byte
			if h.Control() && h.Size() <= maxControlBatch {
				if control, err = sc.fill(pos, int(h.Size())); err != nil {
					return l.fail(fmt.Errorf("scan batches: %w", err))
				}
			}
			if !fn(h, control) {
				return nil
			}
		}
	}
	return nil
}
