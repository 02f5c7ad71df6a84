package log

import (
	"fmt"
	"strconv"
	"strings"
)

// EpochEntry says that leader epoch Epoch wrote its first record at
// StartOffset.
type EpochEntry struct {
	Epoch       int32
	StartOffset int64
}

// epochCache is the leader epoch history of a partition, persisted in
// leader-epoch-checkpoint. Epochs and start offsets strictly increase.
// Appender only for writes; readers use the published copy.
type epochCache struct {
	entries []EpochEntry
}

func parseEpochEntries(lines []string) ([]EpochEntry, error) {
	entries := make([]EpochEntry, 0, len(lines))
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 2 {
			return nil, fmt.Errorf("%w: leader epoch entry %q", ErrCorrupt, l)
		}
		e, err1 := strconv.ParseInt(f[0], 10, 32)
		o, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil || e < 0 || o < 0 {
			return nil, fmt.Errorf("%w: leader epoch entry %q", ErrCorrupt, l)
		}
		if n := len(entries); n > 0 && (int32(e) <= entries[n-1].Epoch || o < entries[n-1].StartOffset) {
			return nil, fmt.Errorf("%w: leader epoch entry %q goes backwards", ErrCorrupt, l)
		}
		entries = append(entries, EpochEntry{Epoch: int32(e), StartOffset: o})
	}
	return entries, nil
}

func (c *epochCache) lines() []string {
	lines := make([]string, len(c.entries))
	for i, e := range c.entries {
		lines[i] = fmt.Sprintf("%d %d", e.Epoch, e.StartOffset)
	}
	return lines
}

func (c *epochCache) latest() (EpochEntry, bool) {
	if len(c.entries) == 0 {
		return EpochEntry{}, false
	}
	return c.entries[len(c.entries)-1], true
}

// assign records that epoch starts at offset, if epoch is newer than the
// latest. It reports whether the cache changed.
func (c *epochCache) assign(epoch int32, offset int64) bool {
	if epoch < 0 {
		return false
	}
	if last, ok := c.latest(); ok {
		if epoch <= last.Epoch {
			return false
		}
		if offset < last.StartOffset {
			// A newer epoch cannot start before an older one; drop the
			// older entries it overtakes (can only follow a truncation).
			c.truncateFromEnd(offset)
		}
	}
	c.entries = append(c.entries, EpochEntry{Epoch: epoch, StartOffset: offset})
	return true
}

// truncateFromEnd removes epochs that start at or after endOffset: their
// records were truncated away.
func (c *epochCache) truncateFromEnd(endOffset int64) bool {
	n := len(c.entries)
	for n > 0 && c.entries[n-1].StartOffset >= endOffset {
		n--
	}
	changed := n != len(c.entries)
	c.entries = c.entries[:n]
	return changed
}

// truncateFromStart drops epochs that end at or before startOffset, and
// moves the start of the first remaining one up to startOffset.
func (c *epochCache) truncateFromStart(startOffset int64) bool {
	i := 0
	for i+1 < len(c.entries) && c.entries[i+1].StartOffset <= startOffset {
		i++
	}
	changed := i > 0
	c.entries = c.entries[i:]
	if len(c.entries) > 0 && c.entries[0].StartOffset < startOffset {
		c.entries[0].StartOffset = startOffset
		changed = true
	}
	return changed
}

// endOffsetFor answers OffsetForLeaderEpoch as Kafka's
// LeaderEpochFileCache.endOffsetFor does: the largest epoch <= epoch that
// the log knows, and the offset where the next epoch starts (the log end
// offset for the latest epoch). An epoch newer than all known, or a log
// with no epochs, gives (-1, -1).
func (c *epochCache) endOffsetFor(epoch int32, logEndOffset int64) (int32, int64) {
	return EndOffsetForEpoch(c.entries, epoch, logEndOffset)
}

// EndOffsetForEpoch is endOffsetFor over any epoch history, oldest first
// (one spanning tiered and local data).
func EndOffsetForEpoch(entries []EpochEntry, epoch int32, logEndOffset int64) (int32, int64) {
	n := len(entries)
	if epoch < 0 || n == 0 {
		return -1, -1
	}
	if entries[n-1].Epoch == epoch {
		return epoch, logEndOffset
	}
	// First entry with an epoch above the requested one.
	hi := 0
	for hi < n && entries[hi].Epoch <= epoch {
		hi++
	}
	if hi == n {
		return -1, -1 // newer than every known epoch
	}
	if hi == 0 {
		// Older than every known epoch: it ended where the first known
		// one starts.
		return epoch, entries[0].StartOffset
	}
	return entries[hi-1].Epoch, entries[hi].StartOffset
}

// allows reports whether a batch at offset may carry epoch: the epoch of
// the last entry starting at or before offset; below the first entry (a
// history cut at the log start, or none at all), any epoch up to the first
// one. An empty history allows anything.
func (c *epochCache) allows(epoch int32, offset int64) bool {
	if len(c.entries) == 0 {
		return true
	}
	for i := len(c.entries) - 1; i >= 0; i-- {
		if c.entries[i].StartOffset <= offset {
			return c.entries[i].Epoch == epoch
		}
	}
	return epoch <= c.entries[0].Epoch
}
