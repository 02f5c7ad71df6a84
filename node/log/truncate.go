package log

import (
	"errors"
	"fmt"
	"slices"
)

// Truncation (a follower whose log diverged from its leader's) and Close.

// TruncateTo removes everything at and after offset, as a follower does
// when its log diverged from the leader's. The cut falls at the start of
// the batch holding offset, so the new log end may be below offset.
// Options.Removable is not asked: what is cut is what the leader lacks.
func (l *Log) TruncateTo(offset int64) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.Err(); err != nil {
		return err
	}
	if end := l.endOffset.Load(); offset >= end {
		// Nothing to cut, but an epoch this replica began as leader
		// and never appended in goes (BeginEpoch): the leader it now
		// follows told it so, and would tell it again on every fetch.
		if l.epochs.truncateFromEnd(end) {
			if err := l.writeEpochsLocked(); err != nil {
				return l.fail(fmt.Errorf("leader epoch checkpoint: %w", err))
			}
		}
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
	if newEnd < l.startOffset.Load() {
		// The batch holding offset began below the log start (a
		// DeleteRecords inside it): cutting it leaves nothing readable.
		// The log empties and keeps its start; it never ends before it.
		return l.truncateFullyAndStartAtLocked(l.startOffset.Load())
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
