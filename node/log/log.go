package log

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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
	// compacted: the log may have gaps (compactedFile exists). Set
	// once, never cleared.
	compacted atomic.Bool
	// cleanMu: one clean at a time (clean.go). Taken before appendMu.
	cleanMu sync.Mutex

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
	// AbortedTxns are the transactions whose abort markers the segment
	// holds (its aborted transaction index).
	AbortedTxns []AbortedTxn
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
	if err := l.recoverCleaning(); err != nil {
		return err
	}
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
		case name == compactedFile:
			l.compacted.Store(true)
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
			err = s.loadTrusted(scratch, l.compacted.Load())
			if err == nil {
				s.sealed = true
				if err := s.txn.load(l.fs, s.nextOffset.Load()); err != nil {
					s.close()
					return nil, 0, fmt.Errorf("aborted transaction index of segment %d: %w", base, err)
				}
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
	dropped, err := s.recover(scratch, l.compacted.Load(), func(h BatchHeader) error {
		if !checkpointed.allows(h.LeaderEpoch, h.BaseOffset) {
			return fmt.Errorf("%w: batch at offset %d has leader epoch %d, the epoch checkpoint disagrees", ErrCorrupt, h.BaseOffset, h.LeaderEpoch)
		}
		l.epochs.assign(h.LeaderEpoch, h.BaseOffset)
		return nil
	})
	if err == nil {
		if err = s.txn.load(l.fs, s.nextOffset.Load()); err != nil {
			err = fmt.Errorf("aborted transaction index of segment %d: %w", base, err)
		}
	}
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
	for _, p := range []string{logPath, indexPath, timeIndexPath, txnIndexPath(l.dir, base)} {
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

// markCompacted records, durably and before any gap is written, that the
// log may have gaps between batches from now on. Called with appendMu
// held.
func (l *Log) markCompacted() error {
	if l.compacted.Load() {
		return nil
	}
	f, err := l.fs.OpenFile(filepath.Join(l.dir, compactedFile), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return err
	}
	l.compacted.Store(true)
	return nil
}
