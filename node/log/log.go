package log

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Options are a log's collaborators. Zero fields get the real thing.
type Options struct {
	FS     FS
	Clock  Clock
	Logger *slog.Logger
	// OnSegmentClosed is called each time a segment is sealed by a roll,
	// with the appender's lock held: it must not block or call back into
	// the log.
	OnSegmentClosed func(SegmentInfo)
	// Removable, when set, has the last word on every segment retention
	// or DeleteRecordsBefore would delete: a segment it refuses stays,
	// and so does every segment after it (the log only deletes from its
	// start). It is asked with the appender's lock held, in the same
	// critical section as the deletion, so its answer is never stale; it
	// must not block for long or call back into the log. A tiered
	// partition answers whether the manifest covers the segment. Nil:
	// every segment is removable.
	Removable func(SegmentInfo) bool
	// Decompress, when set, lets OffsetForTimestamp and MaxTimestamp find
	// the exact record inside a compressed batch; it returns the
	// concatenated records of the batch body. Without it those lookups
	// answer with the batch's first offset.
	Decompress func(codec int, body []byte) ([]byte, error)
}

// Log is one partition's log: an ordered list of segments in a
// directory. See doc.go for the locking.
type Log struct {
	dir             string
	fs              FS
	clock           Clock
	logger          *slog.Logger
	onSegmentClosed func(SegmentInfo)
	removable       func(SegmentInfo) bool
	decompress      func(int, []byte) ([]byte, error)

	// appendMu serializes everything that writes: Append, roll,
	// retention, truncation, flush, Close. Readers never take it.
	appendMu sync.Mutex
	cfg      Config     // guarded by appendMu
	epochs   epochCache // guarded by appendMu
	// unflushedRecords counts records appended since the last fsync.
	unflushedRecords int64     // guarded by appendMu
	lastFlush        time.Time // guarded by appendMu
	// flushedOffset is the offset below which the active segment is
	// durable. Invariant: flushedOffset <= endOffset.
	flushedOffset int64 // guarded by appendMu
	recoveryPoint int64 // guarded by appendMu; last one written to disk

	// segMu is held shared by readers while they touch segment files and
	// exclusively by whoever closes, removes or truncates them. Appends
	// and rolls do not take it. Lock order: appendMu, then segMu.
	segMu sync.RWMutex

	// Published state, for readers.
	segments      atomic.Pointer[[]*segment] // sorted by base offset; never empty while open
	startOffset   atomic.Int64               // Invariant: startOffset <= endOffset
	endOffset     atomic.Int64
	highWatermark atomic.Int64 // -1: none set, retention may use the whole log
	epochView     atomic.Pointer[[]EpochEntry]
	failure       atomic.Pointer[error]
	closed        atomic.Bool

	scratch sync.Pool // *[]byte for header scans
}

// AppendResult is what an append assigned.
type AppendResult struct {
	FirstOffset int64
	LastOffset  int64
	// AppendTime is the log's clock at the append. It is the batch's
	// timestamp only for LogAppendTime topics; Kafka answers -1 for the
	// others.
	AppendTime     time.Time
	LogStartOffset int64
}

// SegmentInfo describes a segment for hooks and status.
type SegmentInfo struct {
	BaseOffset    int64
	NextOffset    int64 // one past the last offset
	Size          int64
	MaxTimestamp  int64 // math.MinInt64 when empty
	Sealed        bool
	LogPath       string
	IndexPath     string
	TimeIndexPath string
}

// Open opens the log in dir, creating it if needed, and recovers it: after
// an unclean shutdown every segment past the recovery point is scanned,
// its torn or corrupt tail cut off (with the bytes dropped logged) and its
// indexes rebuilt. Indexes that fail their sanity check are rebuilt too.
func Open(dir string, cfg Config, opts Options) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Log{
		dir:             dir,
		fs:              opts.FS,
		clock:           opts.Clock,
		logger:          opts.Logger,
		onSegmentClosed: opts.OnSegmentClosed,
		removable:       opts.Removable,
		decompress:      opts.Decompress,
		cfg:             cfg,
	}
	if l.fs == nil {
		l.fs = OSFS{}
	}
	if l.clock == nil {
		l.clock = systemClock{}
	}
	if l.logger == nil {
		l.logger = slog.New(slog.DiscardHandler)
	}
	l.logger = l.logger.With("dir", dir)
	l.scratch.New = func() any { b := make([]byte, 0, 8<<10); return &b }
	l.highWatermark.Store(-1)
	if err := l.fs.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := l.load(); err != nil {
		if segs := l.segments.Load(); segs != nil {
			for _, s := range *segs {
				s.close()
			}
		}
		return nil, err
	}
	return l, nil
}

// load reads the directory and recovers the segments.
func (l *Log) load() error {
	entries, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return err
	}
	var bases []int64
	clean, marker := false, false
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == cleanShutdownFile:
			clean, marker = true, true
		case strings.HasSuffix(name, checkpointTmpSuffix):
			_ = l.fs.Remove(filepath.Join(l.dir, name)) // an interrupted checkpoint write
		case strings.HasSuffix(name, logSuffix):
			base, err := strconv.ParseInt(strings.TrimSuffix(name, logSuffix), 10, 64)
			if err != nil || base < 0 || len(name) != 20+len(logSuffix) {
				l.logger.Warn("ignoring file that is not a segment", "file", name)
				continue
			}
			bases = append(bases, base)
		}
	}
	slices.Sort(bases)

	recoveryPoint, err := readOffsetCheckpoint(l.fs, l.dir, recoveryPointFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		l.logger.Warn("recovery point unreadable, recovering every segment", "error", err)
	}
	logStart, err := readOffsetCheckpoint(l.fs, l.dir, logStartOffsetFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		l.logger.Warn("log start offset checkpoint unreadable, using the first segment", "error", err)
	}
	// The epoch history is rebuilt by scanning every batch when it cannot
	// be read: recovery reassigns epochs from the batches it scans.
	lines, err := readCheckpoint(l.fs, l.dir, leaderEpochFile)
	if err == nil {
		l.epochs.entries, err = parseEpochEntries(lines)
	}
	if err != nil && len(bases) > 0 {
		l.logger.Warn("leader epoch checkpoint unreadable, rebuilding it from the log", "error", err)
		l.epochs.entries = nil
		recoveryPoint, clean = 0, false
	}

	scratch := make([]byte, 0, 1<<20)
	segs := make([]*segment, 0, len(bases))
	checkpointed := epochCache{entries: slices.Clone(l.epochs.entries)}
	for i, base := range bases {
		last := i == len(bases)-1
		trusted := clean || (!last && bases[i+1] <= recoveryPoint)
		s, dropped, err := l.openSegment(base, trusted, scratch, &checkpointed)
		if err != nil {
			for _, s := range segs {
				s.close()
			}
			return err
		}
		segs = append(segs, s)
		if dropped > 0 || (!last && s.nextOffset.Load() != bases[i+1]) {
			var later int64
			for _, b := range bases[i+1:] {
				later += l.removeSegmentFiles(b)
			}
			l.logger.Warn("log recovered: dropped a torn or corrupt tail",
				"segment", base, "bytes_dropped", dropped, "later_segments_dropped", len(bases)-i-1, "later_bytes_dropped", later)
			break
		}
	}
	if len(segs) == 0 {
		s, err := createSegment(l.fs, l.dir, logStart, l.cfg.indexEntries(), l.cfg.IndexIntervalBytes)
		if err != nil {
			return err
		}
		segs = append(segs, s)
	}
	for _, s := range segs[:len(segs)-1] {
		if !s.sealed {
			if err := s.seal(); err != nil {
				l.logger.Warn("could not trim recovered index", "segment", s.baseOffset, "error", err)
			}
		}
		s.synced = true
	}
	active := segs[len(segs)-1]
	if active.sealed {
		if err := active.unseal(l.cfg.indexEntries()); err != nil {
			return err
		}
	}
	if ts, ok := active.firstBatchTimestamp(); ok {
		active.rollStart = time.UnixMilli(ts)
	}
	l.segments.Store(&segs)
	end := active.nextOffset.Load()
	l.endOffset.Store(end)
	l.flushedOffset = end
	l.recoveryPoint = end
	start := max(logStart, segs[0].baseOffset)
	l.startOffset.Store(min(start, end))
	if start > end {
		// Recovery cut below a DeleteRecords point: start afresh there, as
		// Kafka does, rather than re-expose or invent records.
		if err := l.truncateFullyAndStartAtLocked(start); err != nil {
			return err
		}
	}
	l.epochs.truncateFromEnd(l.endOffset.Load())
	l.epochs.truncateFromStart(l.startOffset.Load())
	if err := l.writeEpochsLocked(); err != nil {
		return err
	}
	if marker {
		if err := l.fs.Remove(filepath.Join(l.dir, cleanShutdownFile)); err != nil {
			return err
		}
		if err := l.fs.SyncDir(l.dir); err != nil {
			return err
		}
	}
	l.lastFlush = l.clock.Now()
	l.logger.Debug("log opened", "clean", clean, "segments", len(segs),
		"log_start_offset", l.startOffset.Load(), "log_end_offset", l.endOffset.Load())
	return nil
}

// openSegment opens the segment at base. A trusted segment keeps its
// indexes if they pass their checks; any other is recovered by a full
// scan, which also replays leader epochs from its batches. A batch whose
// leader epoch (outside the CRC) disagrees with the checkpointed history,
// which is written before the data, counts as corrupt.
func (l *Log) openSegment(base int64, trusted bool, scratch []byte, checkpointed *epochCache) (*segment, int64, error) {
	capacity := l.cfg.indexEntries()
	if trusted {
		s, err := openSegmentFiles(l.fs, l.dir, base, -1, -1, 0, l.cfg.IndexIntervalBytes)
		if err == nil {
			err = s.loadTrusted(scratch)
			if err == nil {
				s.sealed = true
				return s, 0, nil
			}
			s.close()
		}
		if !errors.Is(err, ErrCorrupt) {
			return nil, 0, err
		}
		l.logger.Warn("rebuilding index", "segment", base, "reason", err)
	}
	logPath, _, _ := segmentPaths(l.dir, base)
	f, err := l.fs.OpenFile(logPath, os.O_RDONLY, 0)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	f.Close()
	if err != nil {
		return nil, 0, err
	}
	interval := int64(max(l.cfg.IndexIntervalBytes, minBatchLength))
	capacity = max(capacity, int(fi.Size()/interval)+2)
	s, err := openSegmentFiles(l.fs, l.dir, base, 0, 0, capacity, l.cfg.IndexIntervalBytes)
	if err != nil {
		return nil, 0, err
	}
	dropped, err := s.recover(scratch, func(h BatchHeader) error {
		if !checkpointed.allows(h.LeaderEpoch, h.BaseOffset) {
			return fmt.Errorf("%w: batch at offset %d has leader epoch %d, the epoch checkpoint disagrees", ErrCorrupt, h.BaseOffset, h.LeaderEpoch)
		}
		l.epochs.assign(h.LeaderEpoch, h.BaseOffset)
		return nil
	})
	if err != nil {
		s.close()
		return nil, 0, err
	}
	return s, dropped, nil
}

// removeSegmentFiles deletes a segment's files, returning the log bytes.
func (l *Log) removeSegmentFiles(base int64) int64 {
	logPath, indexPath, timeIndexPath := segmentPaths(l.dir, base)
	var size int64
	if f, err := l.fs.OpenFile(logPath, os.O_RDONLY, 0); err == nil {
		if fi, err := f.Stat(); err == nil {
			size = fi.Size()
		}
		f.Close()
	}
	for _, p := range []string{logPath, indexPath, timeIndexPath} {
		if err := l.fs.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.logger.Warn("could not remove segment file", "file", p, "error", err)
		}
	}
	return size
}

// Dir is the partition directory.
func (l *Log) Dir() string { return l.dir }

// StartOffset is the log start offset: the first offset a reader may ask
// for. Safe for concurrent use.
func (l *Log) StartOffset() int64 { return l.startOffset.Load() }

// EndOffset is the log end offset: the offset the next append gets. Safe
// for concurrent use.
func (l *Log) EndOffset() int64 { return l.endOffset.Load() }

// SetHighWatermark tells retention how far consumers may read: it never
// deletes a segment that ends above the high watermark. Until it is set
// the whole log counts.
func (l *Log) SetHighWatermark(offset int64) { l.highWatermark.Store(offset) }

// Err returns nil while the log is healthy, or an error wrapping
// ErrFailed or ErrClosed.
func (l *Log) Err() error {
	if p := l.failure.Load(); p != nil {
		return *p
	}
	if l.closed.Load() {
		return ErrClosed
	}
	return nil
}

// fail marks the log failed: every later call returns the error.
func (l *Log) fail(cause error) error {
	err := fmt.Errorf("%w: %v", ErrFailed, cause)
	if l.failure.CompareAndSwap(nil, &err) {
		l.logger.Error("partition log failed; it serves nothing until reopened", "error", cause)
	}
	return *l.failure.Load()
}

// Config returns the log's current settings.
func (l *Log) Config() Config {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	return l.cfg
}

// SetConfig changes the settings. Segment and index sizes apply from the
// next segment on; retention and flush settings at the next Maintain.
func (l *Log) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.cfg = cfg
	return nil
}

// Append validates one RecordBatch, assigns it offsets from the log end
// and the given partition leader epoch (rewriting those header fields in
// place, and for LogAppendTime topics the timestamp and CRC), and appends
// it. Bad input returns an error wrapping ErrCorrupt, ErrTooLarge or
// ErrInvalidRecord and changes nothing. An I/O error returns an error
// wrapping ErrIO if the log could be put back as it was, ErrFailed if not.
func (l *Log) Append(batch []byte, leaderEpoch int32) (AppendResult, error) {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.Err(); err != nil {
		return AppendResult{}, err
	}
	info, err := ValidateBatch(batch, l.cfg.MaxMessageBytes)
	if err != nil {
		return AppendResult{}, err
	}
	if int64(len(batch)) > l.cfg.SegmentBytes {
		return AppendResult{}, fmt.Errorf("%w: batch of %d bytes exceeds segment.bytes %d", ErrTooLarge, len(batch), l.cfg.SegmentBytes)
	}
	if latest, ok := l.epochs.latest(); ok && leaderEpoch < latest.Epoch {
		return AppendResult{}, fmt.Errorf("%w: append with epoch %d, log has epoch %d", ErrFencedLeaderEpoch, leaderEpoch, latest.Epoch)
	}
	now := l.clock.Now()
	h := info.Header
	h.BaseOffset = l.endOffset.Load()
	h.LeaderEpoch = leaderEpoch
	putBatchOffsetAndEpoch(batch, h.BaseOffset, leaderEpoch)
	if l.cfg.LogAppendTime {
		setLogAppendTime(batch, now.UnixMilli())
		h.MaxTimestamp = now.UnixMilli()
		h.Attributes |= attrTimestampType
	}
	if err := l.appendLocked(batch, &h, now); err != nil {
		return AppendResult{}, err
	}
	return AppendResult{FirstOffset: h.BaseOffset, LastOffset: h.LastOffset(), AppendTime: now, LogStartOffset: l.startOffset.Load()}, nil
}

// AppendReplicated appends batches a leader already assigned offsets to,
// as a follower does: one or more whole batches, each validated, the first
// starting at or after the log end and each after the one before. Their
// offsets and leader epochs are kept.
func (l *Log) AppendReplicated(batches []byte) (AppendResult, error) {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.Err(); err != nil {
		return AppendResult{}, err
	}
	// Validate everything first so a bad batch appends nothing.
	next := l.endOffset.Load()
	minEpoch := int32(-1)
	if latest, ok := l.epochs.latest(); ok {
		minEpoch = latest.Epoch
	}
	for rest := batches; len(rest) > 0; {
		h, err := checkBatchFrame(rest)
		if err != nil {
			return AppendResult{}, err
		}
		if h.Size() > int64(len(rest)) {
			return AppendResult{}, fmt.Errorf("%w: batch of %d bytes, %d remain", ErrCorrupt, h.Size(), len(rest))
		}
		if _, err := ValidateBatch(rest[:h.Size()], 0); err != nil {
			return AppendResult{}, err
		}
		if h.BaseOffset != next {
			return AppendResult{}, fmt.Errorf("%w: replicated batch at offset %d, expected %d", ErrOffsetOutOfRange, h.BaseOffset, next)
		}
		if h.LeaderEpoch < minEpoch {
			return AppendResult{}, fmt.Errorf("%w: replicated batch at offset %d has epoch %d after epoch %d", ErrFencedLeaderEpoch, h.BaseOffset, h.LeaderEpoch, minEpoch)
		}
		minEpoch = h.LeaderEpoch
		next = h.LastOffset() + 1
		rest = rest[h.Size():]
	}
	now := l.clock.Now()
	res := AppendResult{FirstOffset: -1, LastOffset: -1, AppendTime: now}
	for rest := batches; len(rest) > 0; {
		h, _ := ParseBatchHeader(rest)
		b := rest[:h.Size()]
		rest = rest[h.Size():]
		if err := l.appendLocked(b, &h, now); err != nil {
			return res, err
		}
		if res.FirstOffset < 0 {
			res.FirstOffset = h.BaseOffset
		}
		res.LastOffset = h.LastOffset()
	}
	res.LogStartOffset = l.startOffset.Load()
	return res, nil
}

// appendLocked writes a validated batch with assigned offsets: roll if
// due, record a new leader epoch, write, publish, flush if due.
func (l *Log) appendLocked(batch []byte, h *BatchHeader, now time.Time) error {
	seg := l.activeLocked()
	if seg.size.Load() > 0 && (!seg.canHold(h.Size(), h.LastOffset(), &l.cfg) || now.Sub(seg.rollStart) >= l.cfg.SegmentAge) {
		var err error
		if seg, err = l.rollLocked(h.BaseOffset); err != nil {
			return err
		}
	}
	if latest, ok := l.epochs.latest(); h.LeaderEpoch >= 0 && (!ok || h.LeaderEpoch > latest.Epoch) {
		// Record the epoch before the data: an epoch entry past the log
		// end is dropped at open, a batch without its epoch is not.
		l.epochs.assign(h.LeaderEpoch, h.BaseOffset)
		if err := l.writeEpochsLocked(); err != nil {
			l.epochs.truncateFromEnd(h.BaseOffset)
			l.publishEpochsLocked()
			return fmt.Errorf("%w: leader epoch checkpoint: %v", ErrIO, err)
		}
	}
	if err := seg.append(batch, h, now); err != nil {
		return l.writeFailedLocked(seg, err)
	}
	l.endOffset.Store(h.LastOffset() + 1)
	l.unflushedRecords += int64(h.RecordCount)
	if l.unflushedRecords >= l.cfg.FlushMessages || now.Sub(l.lastFlush) >= l.cfg.FlushInterval {
		if err := l.flushActiveLocked(now); err != nil {
			return err
		}
	}
	return nil
}

// writeFailedLocked handles a failed segment write. Nothing was
// published, so readers never saw the bytes; the file is cut back so a
// crash cannot resurrect them. A full disk leaves the log usable; any
// other error, or failing to cut back, fails it.
func (l *Log) writeFailedLocked(seg *segment, err error) error {
	size := seg.size.Load()
	if terr := seg.log.Truncate(size); terr != nil {
		return l.fail(fmt.Errorf("append failed (%v) and truncating back to %d failed: %w", err, size, terr))
	}
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
		return fmt.Errorf("%w: append at offset %d: %v", ErrIO, l.endOffset.Load(), err)
	}
	return l.fail(fmt.Errorf("append at offset %d: %w", l.endOffset.Load(), err))
}

func (l *Log) activeLocked() *segment {
	segs := *l.segments.Load()
	return segs[len(segs)-1]
}

// rollLocked seals the active segment and starts a new one at base. If
// the new segment cannot be created the log stays as it was.
func (l *Log) rollLocked(base int64) (*segment, error) {
	old := l.activeLocked()
	s, err := createSegment(l.fs, l.dir, base, l.cfg.indexEntries(), l.cfg.IndexIntervalBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: roll to a new segment at %d: %v", ErrIO, base, err)
	}
	if err := old.seal(); err != nil {
		// Only the trim failed; the index is still right, just longer
		// than it needs to be, and the next open rebuilds it.
		l.logger.Warn("could not trim index of sealed segment", "segment", old.baseOffset, "error", err)
	}
	segs := append(slices.Clone(*l.segments.Load()), s)
	l.segments.Store(&segs)
	l.logger.Info("segment rolled", "segment", old.baseOffset, "size_bytes", old.size.Load(), "next_segment", base)
	if l.onSegmentClosed != nil {
		l.onSegmentClosed(old.info(true))
	}
	return s, nil
}

// info describes the segment; sealed is passed in because the field is the
// appender's.
func (s *segment) info(sealed bool) SegmentInfo {
	return SegmentInfo{
		BaseOffset:    s.baseOffset,
		NextOffset:    s.nextOffset.Load(),
		Size:          s.size.Load(),
		MaxTimestamp:  s.maxTimestamp.Load(),
		Sealed:        sealed,
		LogPath:       s.logPath,
		IndexPath:     s.index.path,
		TimeIndexPath: s.timeIndex.path,
	}
}

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

func (l *Log) writeEpochsLocked() error {
	l.publishEpochsLocked()
	return writeCheckpoint(l.fs, l.dir, leaderEpochFile, l.epochs.lines())
}

func (l *Log) publishEpochsLocked() {
	e := slices.Clone(l.epochs.entries)
	if e == nil {
		e = []EpochEntry{}
	}
	l.epochView.Store(&e)
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

// DeleteRecordsBefore raises the log start offset to offset (Kafka's
// DeleteRecords) and deletes the segments wholly below it that
// Options.Removable allows. It returns the new log start offset. The caller keeps offset at
// or below the high watermark.
func (l *Log) DeleteRecordsBefore(offset int64) (int64, error) {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.Err(); err != nil {
		return 0, err
	}
	if end := l.endOffset.Load(); offset > end || offset < 0 {
		return 0, fmt.Errorf("%w: delete records before %d, log ends at %d", ErrOffsetOutOfRange, offset, end)
	}
	if offset <= l.startOffset.Load() {
		return l.startOffset.Load(), nil
	}
	if err := writeOffsetCheckpoint(l.fs, l.dir, logStartOffsetFile, offset); err != nil {
		return 0, fmt.Errorf("%w: log start offset checkpoint: %v", ErrIO, err)
	}
	l.startOffset.Store(offset)
	if l.epochs.truncateFromStart(offset) {
		if err := l.writeEpochsLocked(); err != nil {
			return 0, l.fail(fmt.Errorf("leader epoch checkpoint: %w", err))
		}
	}
	l.logger.Info("log start offset raised", "log_start_offset", offset)
	if _, err := l.retainLocked(l.clock.Now()); err != nil {
		return offset, err
	}
	return offset, nil
}

// Maintain does the log's periodic work and should be called every few
// seconds: roll a segment older than segment.ms, apply retention, fsync
// by flush.ms, and make sealed segments durable so the recovery point
// advances. It returns how many segments retention deleted.
func (l *Log) Maintain() (int, error) {
	l.appendMu.Lock()
	if err := l.Err(); err != nil {
		l.appendMu.Unlock()
		return 0, err
	}
	now := l.clock.Now()
	seg := l.activeLocked()
	if seg.size.Load() > 0 && now.Sub(seg.rollStart) >= l.cfg.SegmentAge {
		if _, err := l.rollLocked(l.endOffset.Load()); err != nil {
			l.appendMu.Unlock()
			return 0, err
		}
	}
	deleted, err := l.retainLocked(now)
	if err == nil && l.unflushedRecords > 0 && now.Sub(l.lastFlush) >= l.cfg.FlushInterval {
		err = l.flushActiveLocked(now)
	}
	unsynced := l.unsyncedLocked()
	l.appendMu.Unlock()
	if err != nil {
		return deleted, err
	}
	return deleted, l.syncSealed(unsynced)
}

// unsyncedLocked lists the sealed segments not yet fsynced.
func (l *Log) unsyncedLocked() []*segment {
	var unsynced []*segment
	segs := *l.segments.Load()
	for _, s := range segs[:len(segs)-1] {
		if !s.synced {
			unsynced = append(unsynced, s)
		}
	}
	return unsynced
}

// syncSealed fsyncs sealed segments without holding up appends, then
// advances the recovery point past them.
func (l *Log) syncSealed(segs []*segment) error {
	if len(segs) == 0 {
		return nil
	}
	l.segMu.RLock() // keeps the files open
	var err error
	synced := 0
	for _, s := range segs {
		if l.closed.Load() || s.removed.Load() {
			break
		}
		if err = s.sync(); err != nil {
			break
		}
		synced++
	}
	l.segMu.RUnlock()
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed.Load() {
		return nil // Close synced everything and wrote the last word
	}
	if err != nil {
		return l.fail(fmt.Errorf("fsync sealed segment: %w", err))
	}
	for _, s := range segs[:synced] {
		s.synced = true
	}
	return l.writeRecoveryPointLocked()
}

// writeRecoveryPointLocked records the offset below which everything is
// durable: the start of the first unsynced sealed segment, else how far
// the active segment is flushed.
func (l *Log) writeRecoveryPointLocked() error {
	segs := *l.segments.Load()
	point := max(l.flushedOffset, segs[len(segs)-1].baseOffset)
	for _, s := range segs[:len(segs)-1] {
		if !s.synced {
			point = s.baseOffset
			break
		}
	}
	if point == l.recoveryPoint {
		return nil
	}
	if err := writeOffsetCheckpoint(l.fs, l.dir, recoveryPointFile, point); err != nil {
		return l.fail(fmt.Errorf("recovery point checkpoint: %w", err))
	}
	l.recoveryPoint = point
	return nil
}

// Flush fsyncs everything appended so far.
func (l *Log) Flush() error {
	l.appendMu.Lock()
	if err := l.Err(); err != nil {
		l.appendMu.Unlock()
		return err
	}
	if err := l.flushActiveLocked(l.clock.Now()); err != nil {
		l.appendMu.Unlock()
		return err
	}
	unsynced := l.unsyncedLocked()
	l.appendMu.Unlock()
	return l.syncSealed(unsynced)
}

// flushActiveLocked fsyncs the active segment. A failed fsync fails the
// log: after one, what the page cache holds can no longer be trusted to
// reach the disk.
func (l *Log) flushActiveLocked(now time.Time) error {
	if err := l.activeLocked().log.Sync(); err != nil {
		return l.fail(fmt.Errorf("fsync: %w", err))
	}
	l.unflushedRecords = 0
	l.lastFlush = now
	l.flushedOffset = l.endOffset.Load()
	return nil
}

// retainLocked deletes segments from the start of the log while one of
// the rules applies: wholly below the log start offset, older than
// retention.ms, or beyond retention.bytes. It never deletes past the high
// watermark, and stops at the first segment Options.Removable refuses. If
// every segment goes, the active one is rolled first so the log end
// offset survives.
//
// The decision and the deletion happen under appendMu with nothing in
// between that could change the answer. A roll is such a thing (its hook
// may, say, queue the segment for upload), so after one the decision is
// made again over the new segment list.
func (l *Log) retainLocked(now time.Time) (int, error) {
	segs := *l.segments.Load()
	reasons := l.retainableLocked(segs, now)
	if len(reasons) == 0 {
		return 0, nil
	}
	if len(reasons) == len(segs) {
		if _, err := l.rollLocked(l.endOffset.Load()); err != nil {
			return 0, err
		}
		segs = *l.segments.Load()
		if reasons = l.retainableLocked(segs, now); len(reasons) == 0 {
			return 0, nil
		}
	}
	n := len(reasons)
	doomed := segs[:n]
	if invariantsEnabled {
		// Pair assertion: what is about to be deleted is still what the
		// rules allow. The new active segment is empty and never goes.
		if n == len(segs) {
			panic(fmt.Sprintf("log: retention would delete all %d segments, the active one too", n))
		}
		for _, s := range doomed {
			if l.removable != nil && !l.removable(s.info(true)) {
				panic(fmt.Sprintf("log: retention deleting segment %d, which Removable refuses", s.baseOffset))
			}
		}
	}
	rest := slices.Clone(segs[n:])
	l.segMu.Lock()
	l.segments.Store(&rest)
	if newStart := rest[0].baseOffset; newStart > l.startOffset.Load() {
		l.startOffset.Store(newStart)
	}
	var err error
	for i, s := range doomed {
		l.logger.Info("segment deleted", "segment", s.baseOffset, "size_bytes", s.size.Load(), "reason", reasons[i])
		err = errors.Join(err, s.remove(l.fs))
	}
	l.segMu.Unlock()
	if err != nil {
		l.logger.Warn("could not remove deleted segment files", "error", err)
	}
	if l.epochs.truncateFromStart(l.startOffset.Load()) {
		if err := l.writeEpochsLocked(); err != nil {
			return n, l.fail(fmt.Errorf("leader epoch checkpoint: %w", err))
		}
	}
	return n, nil
}

// retainableLocked decides which segments retention deletes: the first
// len(reasons) of segs, each for its reason.
func (l *Log) retainableLocked(segs []*segment, now time.Time) (reasons []string) {
	hw := l.highWatermark.Load()
	if hw < 0 {
		hw = l.endOffset.Load()
	}
	start := l.startOffset.Load()
	total := l.Size()
	for i, s := range segs {
		next := l.endOffset.Load()
		if i+1 < len(segs) {
			next = segs[i+1].baseOffset
		}
		size := s.size.Load()
		if size == 0 || next > hw {
			break
		}
		var reason string
		switch {
		case next <= start:
			reason = "log start offset"
		case l.cfg.RetentionAge >= 0 && s.maxTimestamp.Load() < now.Add(-l.cfg.RetentionAge).UnixMilli():
			reason = "retention.ms"
		case l.cfg.RetentionBytes >= 0 && total-size >= l.cfg.RetentionBytes:
			reason = "retention.bytes"
		}
		if reason == "" {
			break
		}
		// The active segment is never deleted as it is: when it expires
		// too, retainLocked rolls it and asks again about the closed one.
		if l.removable != nil && i+1 < len(segs) && !l.removable(s.info(true)) {
			break
		}
		reasons = append(reasons, reason)
		total -= size
	}
	return reasons
}

// TruncateTo removes everything at and after offset, as a follower does
// when its log diverged from the leader's. The cut falls at the start of
// the batch holding offset, so the new log end may be below offset.
// Holds do not protect against truncation.
func (l *Log) TruncateTo(offset int64) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.Err(); err != nil {
		return err
	}
	if offset >= l.endOffset.Load() {
		return nil
	}
	if offset <= l.startOffset.Load() {
		return l.truncateFullyAndStartAtLocked(offset)
	}
	l.segMu.Lock()
	defer l.segMu.Unlock()
	segs := *l.segments.Load()
	i := floorSegment(segs, offset)
	seg := segs[i]
	scratch := make([]byte, 0, 64<<10)
	pos, h, found, err := seg.findBatch(offset, seg.size.Load(), scratch)
	if err != nil {
		return l.fail(fmt.Errorf("truncate to %d: %w", offset, err))
	}
	newSize, newEnd := seg.size.Load(), seg.nextOffset.Load()
	if found {
		newSize, newEnd = pos, h.BaseOffset
	}
	for _, s := range segs[i+1:] {
		l.logger.Info("segment truncated away", "segment", s.baseOffset, "size_bytes", s.size.Load())
		if err := s.remove(l.fs); err != nil {
			return l.fail(fmt.Errorf("truncate to %d: %w", offset, err))
		}
	}
	rest := slices.Clone(segs[:i+1])
	l.segments.Store(&rest)
	if err := seg.truncate(newSize, newEnd, scratch); err != nil {
		return l.fail(fmt.Errorf("truncate to %d: %w", offset, err))
	}
	if seg.sealed {
		if err := seg.unseal(l.cfg.indexEntries()); err != nil {
			return l.fail(fmt.Errorf("truncate to %d: %w", offset, err))
		}
	}
	l.endOffset.Store(newEnd)
	l.flushedOffset = min(l.flushedOffset, newEnd)
	l.logger.Info("log truncated", "requested_offset", offset, "log_end_offset", newEnd)
	if l.epochs.truncateFromEnd(newEnd) {
		if err := l.writeEpochsLocked(); err != nil {
			return l.fail(fmt.Errorf("leader epoch checkpoint: %w", err))
		}
	}
	return l.writeRecoveryPointLocked()
}

// TruncateFullyAndStartAt empties the log and restarts it at offset, as a
// follower does when the leader's log starts past the follower's end.
func (l *Log) TruncateFullyAndStartAt(offset int64) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.Err(); err != nil {
		return err
	}
	l.segMu.Lock()
	defer l.segMu.Unlock()
	return l.truncateFullyAndStartAtLocked(offset)
}

func (l *Log) truncateFullyAndStartAtLocked(offset int64) error {
	if offset < 0 {
		return fmt.Errorf("%w: start at %d", ErrOffsetOutOfRange, offset)
	}
	if err := writeOffsetCheckpoint(l.fs, l.dir, logStartOffsetFile, offset); err != nil {
		return l.fail(fmt.Errorf("log start offset checkpoint: %w", err))
	}
	old := *l.segments.Load()
	for _, s := range old {
		if err := s.remove(l.fs); err != nil {
			return l.fail(fmt.Errorf("truncate fully: %w", err))
		}
	}
	s, err := createSegment(l.fs, l.dir, offset, l.cfg.indexEntries(), l.cfg.IndexIntervalBytes)
	if err != nil {
		return l.fail(fmt.Errorf("truncate fully: %w", err))
	}
	segs := []*segment{s}
	l.segments.Store(&segs)
	l.startOffset.Store(offset)
	l.endOffset.Store(offset)
	l.flushedOffset = offset
	l.epochs.entries = nil
	if err := l.writeEpochsLocked(); err != nil {
		return l.fail(fmt.Errorf("leader epoch checkpoint: %w", err))
	}
	l.logger.Info("log truncated fully", "log_start_offset", offset)
	return l.writeRecoveryPointLocked()
}

// Close flushes the log, trims the active segment's indexes, writes the
// recovery point and the clean-shutdown marker, and closes every file.
// A failed log is closed without the marker, so the next open recovers
// it.
func (l *Log) Close() error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed.Load() {
		return nil
	}
	var err error
	if l.failure.Load() == nil {
		segs := *l.segments.Load()
		for _, s := range segs {
			err = errors.Join(err, s.sync())
		}
		active := segs[len(segs)-1]
		err = errors.Join(err, active.index.trim(), active.timeIndex.trim())
		if err == nil {
			l.flushedOffset = l.endOffset.Load()
			for _, s := range segs {
				s.synced = true
			}
			err = l.writeRecoveryPointLocked()
		}
		if err == nil {
			err = writeCheckpoint(l.fs, l.dir, cleanShutdownFile, nil)
		}
	}
	l.segMu.Lock()
	l.closed.Store(true)
	for _, s := range *l.segments.Load() {
		err = errors.Join(err, s.close())
	}
	l.segMu.Unlock()
	return err
}

// ScanBatches calls fn with the header of every batch from the one holding
// offset from to the log end, in order, until fn returns false. It reads
// headers only. Safe for concurrent use; appends made during the scan may
// or may not be seen.
func (l *Log) ScanBatches(from int64, fn func(BatchHeader) bool) error {
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
			_, h, _, err := sc.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return l.fail(fmt.Errorf("scan batches: %w", err))
			}
			if h.LastOffset() < from {
				continue
			}
			if !fn(h) {
				return nil
			}
		}
	}
	return nil
}
