package log

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// Appends and rolls: the one writer's path, under appendMu. Readers are
// never waited on: sizes and index counts are published last.

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
		// A leader's log may be compacted: batches with records taken
		// out, and gaps between batches.
		if _, err := ValidateCleanedBatch(rest[:h.Size()]); err != nil {
			return AppendResult{}, err
		}
		if h.BaseOffset < next {
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
		if h.BaseOffset > l.endOffset.Load() {
			// The leader's log was compacted: a gap, which recovery
			// must then accept.
			if err := l.markCompacted(); err != nil {
				return res, fmt.Errorf("%w: marking the log compacted: %v", ErrIO, err)
			}
		}
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

// BeginEpoch records that leader epoch epoch starts at the log end, as a
// new leader does before it appends anything (Kafka's makeLeader does the
// same). A follower whose log ends in an epoch this log never had learns
// from it where the two diverge, even while this leader has appended
// nothing yet, as when too few replicas are in sync to take a produce.
// An epoch at or below the latest is ignored. Not kept across a restart:
// an entry at the log end is dropped when the log opens.
func (l *Log) BeginEpoch(epoch int32) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.Err(); err != nil {
		return err
	}
	if latest, ok := l.epochs.latest(); epoch < 0 || ok && epoch <= latest.Epoch {
		return nil
	}
	end := l.endOffset.Load()
	l.epochs.assign(epoch, end)
	if err := l.writeEpochsLocked(); err != nil {
		l.epochs.truncateFromEnd(end)
		l.publishEpochsLocked()
		return fmt.Errorf("%w: leader epoch checkpoint: %v", ErrIO, err)
	}
	return nil
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
		AbortedTxns:   s.txn.snapshot(),
	}
}
