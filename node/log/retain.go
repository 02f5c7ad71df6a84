package log

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Retention, DeleteRecordsBefore, flushing and the recovery point: the
// periodic work Maintain does, and the rule that a segment goes only
// when Options.Removable allows it.

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
