package log

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The cleaner: log compaction (cleanup.policy=compact) of one log, as
// Kafka's LogCleaner does it. A clean
//
//  1. maps each key of the dirty part (from the cleaner checkpoint to
//     CleanOptions.UpTo, whole sealed segments only) to the offset of its
//     latest record, within a memory bound;
//  2. rewrites the segments from the log start to the end of what it
//     mapped, a group of consecutive segments (at most segment.bytes of
//     them) at a time, keeping each record that is the latest of its key
//     (or newer than the map knows), dropping records without a key,
//     records of aborted transactions, and tombstones older than the
//     delete horizon; control batches stay, and so do each idempotent
//     producer's last batch and each group's last batch (empty if need
//     be: the segment keeps its end). Offsets are kept: reads see gaps;
//  3. swaps each rewritten group in for its segments.
//
// The swap, crash-safe: the new segment's four files (log, indexes,
// aborted transaction index) are written and fsynced in .cleaning/, which
// is then renamed to .swap-<base>-<end> (the commit point: end is one
// past the group's last offset). The old segments are deleted, the new
// files renamed into place, and the swap directory removed. Open rolls
// back a .cleaning/ (removes it) and finishes a .swap-*: deletes every
// segment with a base in (base, end), renames what the swap still holds
// over the files of base, removes it. So a crash leaves the old segments
// or the new one, never a mix or a gap.
//
// Only one clean runs per log at a time (cleanMu). The cleaner reads
// sealed segments, which appends do not touch, taking segMu shared per
// segment; it gives up, rolling back, if retention, truncation or Close
// removed a segment meanwhile.

const (
	cleanerCheckpointFile = "cleaner-offset-checkpoint"
	cleaningDir           = ".cleaning"
	swapDirPrefix         = ".swap-"
	// cleanerHistory bounds the clean times the checkpoint keeps for
	// the tombstone horizon.
	cleanerHistory = 32
)

// ErrCleanerMapTooSmall is returned by Clean when the key map filled
// before it held the keys of one whole dirty segment.
var ErrCleanerMapTooSmall = errors.New("log: the cleaner's key map cannot hold one segment's keys; raise its memory")

// CleanOptions configure one clean.
type CleanOptions struct {
	// UpTo is the first offset not to clean: the smallest of the active
	// segment's base, the last stable offset, the high watermark and
	// what min.compaction.lag.ms allows. Only whole segments below it
	// are cleaned.
	UpTo int64
	// MapBytes bounds the key map (log.cleaner.dedupe.buffer.size).
	MapBytes int
	// DeleteRetention is delete.retention.ms: a tombstone stays at least
	// this long after the clean that first reached it.
	DeleteRetention time.Duration
	// LastBatches maps each idempotent producer to the base offset of its
	// last batch in the log: kept (empty if all its records go) so that
	// the producer's sequence survives a rebuild from the log.
	LastBatches map[int64]int64
	// Codec rewrites compressed batches with their own codec.
	Codec Codec
	// Throttle, when set, is called with the bytes of each batch read,
	// and may sleep to pace the clean's I/O.
	Throttle func(bytes int)
}

// CleanResult is what a clean did.
type CleanResult struct {
	// FirstDirty and CleanedTo: the dirty range cleaned was
	// [FirstDirty, CleanedTo); CleanedTo is the new checkpoint.
	FirstDirty, CleanedTo int64
	// BytesBefore and BytesAfter are the sizes of the segments rewritten.
	BytesBefore, BytesAfter int64
	RecordsRemoved          int64
	SegmentsRewritten       int
	Keys                    int
}

// cleanerState is the cleaner checkpoint: where the dirty part starts,
// and when each earlier clean ended where (for the tombstone horizon).
type cleanerState struct {
	firstDirty int64
	history    []cleanMark // oldest first
}

type cleanMark struct{ offset, atMs int64 }

func (l *Log) readCleanerState() cleanerState {
	lines, err := readCheckpoint(l.fs, l.dir, cleanerCheckpointFile)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			l.logger.Warn("cleaner checkpoint unreadable, cleaning the whole log", "error", err)
		}
		return cleanerState{}
	}
	var st cleanerState
	for i, line := range lines {
		f := strings.Fields(line)
		a, errA := strconv.ParseInt(f[0], 10, 64)
		if i == 0 && len(f) == 1 && errA == nil {
			st.firstDirty = a
			continue
		}
		if len(f) != 2 || errA != nil {
			l.logger.Warn("cleaner checkpoint line unreadable, ignoring it", "line", line)
			continue
		}
		b, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		st.history = append(st.history, cleanMark{a, b})
	}
	return st
}

func (l *Log) writeCleanerState(st cleanerState) error {
	if len(st.history) > cleanerHistory {
		st.history = st.history[len(st.history)-cleanerHistory:]
	}
	lines := []string{strconv.FormatInt(st.firstDirty, 10)}
	for _, m := range st.history {
		lines = append(lines, fmt.Sprintf("%d %d", m.offset, m.atMs))
	}
	return writeCheckpoint(l.fs, l.dir, cleanerCheckpointFile, lines)
}

// tombstoneHorizon is the offset below which tombstones may go: the
// furthest an earlier clean reached at least retention ago.
func (st cleanerState) tombstoneHorizon(now time.Time, retention time.Duration) int64 {
	h := int64(0)
	for _, m := range st.history {
		if m.atMs+retention.Milliseconds() <= now.UnixMilli() {
			h = max(h, m.offset)
		}
	}
	return h
}

// DirtyRatio reports the cleanable part of the log (whole sealed segments
// below upTo) and how much of it is dirty (not yet cleaned), in bytes:
// what min.cleanable.dirty.ratio is compared with, and the cleaner
// checkpoint.
func (l *Log) DirtyRatio(upTo int64) (dirty, cleanable, firstDirty int64) {
	st := l.readCleanerState()
	firstDirty = max(st.firstDirty, l.startOffset.Load())
	segs := *l.segments.Load()
	for _, s := range segs[:len(segs)-1] {
		if s.nextOffset.Load() > upTo {
			break
		}
		size := s.size.Load()
		cleanable += size
		if s.nextOffset.Load() > firstDirty {
			dirty += size
		}
	}
	return dirty, cleanable, firstDirty
}

// Clean compacts the log once (see the top of this file). It returns
// what it did; a clean with nothing dirty to do returns a zero result.
func (l *Log) Clean(o CleanOptions) (CleanResult, error) {
	l.cleanMu.Lock()
	defer l.cleanMu.Unlock()
	if err := l.Err(); err != nil {
		return CleanResult{}, err
	}
	st := l.readCleanerState()
	segs := *l.segments.Load()
	var cands []*segment // whole sealed segments below UpTo
	for _, s := range segs[:len(segs)-1] {
		if s.nextOffset.Load() > o.UpTo {
			break
		}
		cands = append(cands, s)
	}
	res := CleanResult{FirstDirty: max(st.firstDirty, l.startOffset.Load())}
	if len(cands) == 0 || cands[len(cands)-1].nextOffset.Load() <= res.FirstDirty {
		return res, nil
	}
	c := NewCompactor(CompactorOptions{MapBytes: o.MapBytes, FirstDirty: res.FirstDirty, Aborted: l.AbortedTxns(0, o.UpTo),
		TombstoneHorizon: st.tombstoneHorizon(l.clock.Now(), o.DeleteRetention), LastBatches: o.LastBatches, Codec: o.Codec})

	buf := new([]byte) // the segment reads' buffer, reused
	// 1. The key map over the dirty segments, as many whole ones as fit.
	end := res.FirstDirty // one past the last segment mapped whole
	full := false
	for _, s := range cands {
		if s.nextOffset.Load() <= res.FirstDirty {
			continue
		}
		err := l.scanSegment(s, o.Throttle, buf, func(h BatchHeader, b []byte) error {
			f, err := c.Map(h, b)
			if f {
				full = true
				return errMapFull
			}
			return err
		})
		if errors.Is(err, errMapFull) {
			break
		}
		if err != nil {
			return res, err
		}
		end = s.nextOffset.Load()
	}
	if end <= res.FirstDirty {
		if full {
			return res, ErrCleanerMapTooSmall
		}
		return res, nil
	}
	res.CleanedTo, res.Keys = end, c.Keys()

	// 2 and 3. Rewrite and swap group by group, from the log start.
	l.appendMu.Lock()
	err := l.markCompacted()
	cfg := l.cfg
	l.appendMu.Unlock()
	if err != nil {
		return res, fmt.Errorf("%w: marking the log compacted: %v", ErrIO, err)
	}
	for i := 0; i < len(cands) && cands[i].nextOffset.Load() <= end; {
		group := []*segment{cands[i]}
		size := cands[i].size.Load()
		for i++; i < len(cands) && cands[i].nextOffset.Load() <= end; i++ {
			next := cands[i]
			if size+next.size.Load() > cfg.SegmentBytes || next.nextOffset.Load()-group[0].baseOffset > MaxGroupSpan {
				break
			}
			group = append(group, next)
			size += next.size.Load()
		}
		g, err := l.cleanGroup(group, cfg, o, buf, c)
		if err != nil {
			return res, err
		}
		res.BytesBefore += g.BytesBefore
		res.BytesAfter += g.BytesAfter
		res.RecordsRemoved += g.RecordsRemoved
		res.SegmentsRewritten++
	}
	st.firstDirty = end
	st.history = append(st.history, cleanMark{end, l.clock.Now().UnixMilli()})
	if err := l.writeCleanerState(st); err != nil {
		return res, fmt.Errorf("%w: cleaner checkpoint: %v", ErrIO, err)
	}
	l.logger.Info("log cleaned", "first_dirty", res.FirstDirty, "cleaned_to", res.CleanedTo, "keys", res.Keys,
		"bytes_before", res.BytesBefore, "bytes_after", res.BytesAfter, "records_removed", res.RecordsRemoved, "segments", res.SegmentsRewritten)
	return res, nil
}

// ErrCleanAbandoned: a segment being cleaned went away (retention,
// truncation, Close); the clean stops and is tried again later.
var ErrCleanAbandoned = errors.New("log: a segment being cleaned was removed; the clean was abandoned")

// scanSegment calls fn with every batch of sealed segment s, whole and
// checked, holding segMu shared, pacing with throttle (if set).
func (l *Log) scanSegment(s *segment, throttle func(int), buf *[]byte, fn func(BatchHeader, []byte) error) error {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if s.removed.Load() || l.closed.Load() {
		return ErrCleanAbandoned
	}
	sc := newScanner(s.log, 0, s.size.Load(), 1<<20, true, *buf)
	defer func() { *buf = sc.buf[:0] }() // keep what it grew to
	for {
		_, h, b, err := sc.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if throttle != nil {
			throttle(len(b))
		}
		if err := fn(h, b); err != nil {
			return err
		}
	}
}

// cleanGroup rewrites a group of consecutive sealed segments into one
// and swaps it in.
func (l *Log) cleanGroup(group []*segment, cfg Config, o CleanOptions, buf *[]byte, c *Compactor) (CleanResult, error) {
	var res CleanResult
	base := group[0].baseOffset
	end := group[len(group)-1].nextOffset.Load()
	tmp := filepath.Join(l.dir, cleaningDir)
	if err := removeDir(l.fs, tmp); err != nil {
		return res, fmt.Errorf("%w: %v", ErrIO, err)
	}
	if err := l.fs.MkdirAll(tmp, 0o755); err != nil {
		return res, fmt.Errorf("%w: %v", ErrIO, err)
	}
	var size int64
	for _, s := range group {
		size += s.size.Load()
	}
	interval := int64(max(cfg.IndexIntervalBytes, minBatchLength))
	ns, err := createSegment(l.fs, tmp, base, max(cfg.indexEntries(), int(size/interval)+2), cfg.IndexIntervalBytes)
	if err != nil {
		return res, fmt.Errorf("%w: %v", ErrIO, err)
	}
	fail := func(err error) (CleanResult, error) {
		ns.close()
		removeDir(l.fs, tmp)
		if errors.Is(err, ErrCleanAbandoned) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrIO) {
			return res, err
		}
		return res, fmt.Errorf("%w: %v", ErrIO, err)
	}
	now := l.clock.Now()
	for _, s := range group {
		res.BytesBefore += s.size.Load()
		err := l.scanSegment(s, o.Throttle, buf, func(h BatchHeader, b []byte) error {
			out, removed, err := c.Filter(h, b, end)
			if err != nil {
				return err
			}
			res.RecordsRemoved += int64(removed)
			if out == nil {
				return nil
			}
			nh, err := ParseBatchHeader(out)
			if err != nil {
				return err
			}
			return ns.append(out, &nh, now)
		})
		if err != nil {
			return fail(err)
		}
		for _, e := range s.txn.snapshot() {
			if err := ns.txn.add(l.fs, e); err != nil {
				return fail(err)
			}
		}
	}
	res.BytesAfter = ns.size.Load()
	// Every one of the four files exists, so the swap replaces all of
	// base's (an old aborted transaction index cannot outlive it).
	if f, err := l.fs.OpenFile(ns.txn.path, os.O_CREATE|os.O_WRONLY, 0o644); err != nil {
		return fail(err)
	} else if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := errors.Join(ns.seal(), ns.sync(), ns.close()); err != nil {
		removeDir(l.fs, tmp)
		return res, fmt.Errorf("%w: %v", ErrIO, err)
	}
	if err := l.fs.SyncDir(tmp); err != nil {
		removeDir(l.fs, tmp)
		return res, fmt.Errorf("%w: %v", ErrIO, err)
	}
	return res, l.swapIn(group, base, end)
}

// swapIn commits a cleaned group (in .cleaning/) and puts it in the
// place of group's segments, with readers held off.
func (l *Log) swapIn(group []*segment, base, end int64) error {
	tmp := filepath.Join(l.dir, cleaningDir)
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.segMu.Lock()
	defer l.segMu.Unlock()
	segs := *l.segments.Load()
	at := slices.Index(segs, group[0])
	if l.closed.Load() || l.Err() != nil || at < 0 || at+len(group) >= len(segs) || !slices.Equal(segs[at:at+len(group)], group) {
		removeDir(l.fs, tmp)
		return ErrCleanAbandoned
	}
	swap := filepath.Join(l.dir, fmt.Sprintf("%s%d-%d", swapDirPrefix, base, end))
	if err := l.fs.Rename(tmp, swap); err != nil {
		removeDir(l.fs, tmp)
		return fmt.Errorf("%w: %v", ErrIO, err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		// Not known to be committed: the next open decides, and until
		// then this log serves nothing.
		return l.fail(fmt.Errorf("committing a cleaned segment: %w", err))
	}
	// Committed: from here a failure leaves the swap for Open to finish.
	for _, s := range group {
		if err := s.removeFiles(l.fs, base); err != nil {
			return l.fail(fmt.Errorf("replacing cleaned segments: %w", err))
		}
	}
	if err := finishSwap(l.fs, l.dir, swap); err != nil {
		return l.fail(fmt.Errorf("replacing cleaned segments: %w", err))
	}
	ns, err := openSegmentFiles(l.fs, l.dir, base, -1, -1, 0, l.cfg.IndexIntervalBytes)
	if err == nil {
		if err = ns.loadTrusted(nil, true); err == nil {
			err = ns.txn.load(l.fs, ns.nextOffset.Load())
		}
		if err != nil {
			ns.close()
		}
	}
	if err != nil {
		return l.fail(fmt.Errorf("opening a cleaned segment: %w", err))
	}
	ns.sealed, ns.synced = true, true
	next := make([]*segment, 0, len(segs)-len(group)+1)
	next = append(append(append(next, segs[:at]...), ns), segs[at+len(group):]...)
	l.segments.Store(&next)
	return nil
}

// removeFiles closes a segment replaced by a cleaned one and deletes its
// files, except those the cleaned segment (at base) replaces by rename.
func (s *segment) removeFiles(fs FS, base int64) error {
	if s.baseOffset != base {
		return s.remove(fs)
	}
	s.removed.Store(true)
	return s.close()
}

// finishSwap completes a committed swap directory: the segments it
// replaces (bases in (base, end)) deleted, its files renamed into dir,
// the directory removed. Idempotent: Open runs it again after a crash.
func finishSwap(fs FS, dir, swap string) error {
	base, end, ok := parseSwapDir(filepath.Base(swap))
	if !ok {
		return fmt.Errorf("%w: swap directory %s", ErrCorrupt, swap)
	}
	entries, err := fs.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		stem, suffix, found := strings.Cut(name, ".")
		if !found || len(stem) != 20 || !slices.Contains([]string{logSuffix, indexSuffix, timeIndexSuffix, txnIndexSuffix}, "."+suffix) {
			continue // not a segment's file (producer snapshots stay)
		}
		b, err := strconv.ParseInt(stem, 10, 64)
		if err != nil || b <= base || b >= end {
			continue
		}
		if err := fs.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	moved, err := fs.ReadDir(swap)
	if err != nil {
		return err
	}
	for _, e := range moved {
		if err := fs.Rename(filepath.Join(swap, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	if err := fs.SyncDir(dir); err != nil {
		return err
	}
	if err := fs.Remove(swap); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return fs.SyncDir(dir)
}

func parseSwapDir(name string) (base, end int64, ok bool) {
	rest, found := strings.CutPrefix(name, swapDirPrefix)
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(rest, "-")
	base, errA := strconv.ParseInt(a, 10, 64)
	end, errB := strconv.ParseInt(b, 10, 64)
	return base, end, found && errA == nil && errB == nil && base < end
}

// removeDir removes a directory of plain files, if it exists.
func removeDir(fs FS, path string) error {
	entries, err := fs.ReadDir(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := fs.Remove(filepath.Join(path, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := fs.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// recoverCleaning, at Open, rolls back an uncommitted clean and finishes
// a committed one, before the segments are listed.
func (l *Log) recoverCleaning() error {
	entries, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == cleaningDir:
			l.logger.Info("rolling back an interrupted clean")
			if err := removeDir(l.fs, filepath.Join(l.dir, name)); err != nil {
				return err
			}
		case strings.HasPrefix(name, swapDirPrefix):
			l.logger.Info("finishing an interrupted clean's swap", "swap", name)
			if err := finishSwap(l.fs, l.dir, filepath.Join(l.dir, name)); err != nil {
				return err
			}
		}
	}
	return nil
}
