package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

const (
	offsetIndexEntryBytes = 8  // relative offset uint32 + position uint32
	timeIndexEntryBytes   = 12 // timestamp int64 + relative offset uint32
)

// mmapIndex is a preallocated, memory-mapped file of fixed-size entries.
// The appender writes an entry into the mapping and then publishes it by
// storing the new count; readers load the count and read only entries
// below it, so they never wait on the appender and never see a half
// written entry.
//
// The file is not checksummed: it is rebuilt from the log whenever it is
// missing, fails its sanity check, or the segment is recovered.
type mmapIndex struct {
	path       string
	file       File
	entryBytes int
	data       []byte // the mapping; len(data) = capacity * entryBytes

	// entries is the published entry count.
	// Invariant: entries*entryBytes <= len(data).
	entries atomic.Int64
}

// openMmapIndex opens (creating if needed) the index at path. entries is
// how many valid entries the file holds: 0 to ignore its contents, -1 to
// take every entry of a file left trimmed by a clean shutdown (a size that
// is not a whole number of entries is ErrCorrupt). capacity is how many
// entries the mapping must hold (0 maps just the valid ones, for a sealed
// segment).
func openMmapIndex(fs FS, path string, entryBytes int, entries, capacity int) (*mmapIndex, error) {
	f, err := fs.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if entries < 0 {
		fi, err := f.Stat()
		if err != nil {
			return nil, errors.Join(err, f.Close())
		}
		if fi.Size()%int64(entryBytes) != 0 {
			return nil, errors.Join(fmt.Errorf("%w: index %s is %d bytes, not a whole number of entries", ErrCorrupt, path, fi.Size()), f.Close())
		}
		entries = int(fi.Size() / int64(entryBytes))
	}
	ix := &mmapIndex{path: path, file: f, entryBytes: entryBytes}
	ix.entries.Store(int64(entries))
	if err := ix.remap(max(capacity, entries)); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return ix, nil
}

// remap sizes the file to capacity entries (reserving the blocks, so a
// full disk fails here and not as a fault on a later store into the
// mapping) and maps it. The caller must hold off readers: the old mapping
// goes away.
func (ix *mmapIndex) remap(capacity int) error {
	if ix.data != nil {
		if err := unix.Munmap(ix.data); err != nil {
			return fmt.Errorf("log: unmap %s: %w", ix.path, err)
		}
		ix.data = nil
	}
	size := int64(capacity * ix.entryBytes)
	fi, err := ix.file.Stat()
	if err != nil {
		return err
	}
	if fi.Size() > size {
		if err := ix.file.Truncate(size); err != nil {
			return err
		}
	}
	if size == 0 {
		return nil
	}
	if fi.Size() < size {
		err := unix.Fallocate(int(ix.file.Fd()), 0, 0, size)
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
			err = ix.file.Truncate(size)
		}
		if err != nil {
			return fmt.Errorf("log: preallocate %s to %d bytes: %w", ix.path, size, err)
		}
	}
	data, err := unix.Mmap(int(ix.file.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("log: mmap %s: %w", ix.path, err)
	}
	ix.data = data
	return nil
}

func (ix *mmapIndex) capacity() int { return len(ix.data) / ix.entryBytes }

func (ix *mmapIndex) full() bool { return int(ix.entries.Load()) >= ix.capacity() }

// entry returns the bytes of entry i. i must be below a loaded count.
func (ix *mmapIndex) entry(i int) []byte {
	return ix.data[i*ix.entryBytes : (i+1)*ix.entryBytes]
}

// truncateEntries drops entries from n on. Appender only; readers that
// loaded a larger count may still read the old entries, which stay in
// the mapping until overwritten.
func (ix *mmapIndex) truncateEntries(n int) {
	if int64(n) < ix.entries.Load() {
		ix.entries.Store(int64(n))
	}
}

// trim cuts the file to its valid entries when the segment is sealed. The
// mapping stays: readers only touch entries below the count, all of which
// lie inside the trimmed file.
func (ix *mmapIndex) trim() error {
	return ix.file.Truncate(ix.entries.Load() * int64(ix.entryBytes))
}

// sync flushes the mapping to the file.
func (ix *mmapIndex) sync() error {
	if len(ix.data) == 0 {
		return nil
	}
	return unix.Msync(ix.data, unix.MS_SYNC)
}

func (ix *mmapIndex) close() error {
	var err error
	if ix.data != nil {
		err = unix.Munmap(ix.data)
		ix.data = nil
	}
	return errors.Join(err, ix.file.Close())
}

// offsetIndex maps a batch's offset, relative to the segment's base
// offset, to the batch's byte position in the .log file. An entry is
// added once index.interval.bytes of log have been written since the
// last one, so the index is sparse.
//
// Each entry names a batch's base offset. (Kafka's entries name the
// batch's last offset; the base offset lets a floor lookup land on the
// batch that holds the target, saving one batch of scanning.)
type offsetIndex struct {
	*mmapIndex
	baseOffset int64
}

// append adds an entry. Appender only. Offsets and positions strictly
// increase.
func (ix *offsetIndex) append(offset int64, position int64) {
	n := int(ix.entries.Load())
	rel := uint32(offset - ix.baseOffset)
	if n > 0 {
		lastRel, lastPos := ix.at(n - 1)
		if rel <= lastRel || uint32(position) <= lastPos {
			panic(fmt.Sprintf("log: index %s: entry (%d, %d) does not follow (%d, %d)",
				ix.path, rel, position, lastRel, lastPos))
		}
	}
	e := ix.entry(n)
	binary.BigEndian.PutUint32(e[0:], rel)
	binary.BigEndian.PutUint32(e[4:], uint32(position))
	ix.entries.Store(int64(n + 1))
}

func (ix *offsetIndex) at(i int) (relOffset uint32, position uint32) {
	e := ix.entry(i)
	return binary.BigEndian.Uint32(e[0:]), binary.BigEndian.Uint32(e[4:])
}

// lookup returns the entry with the largest offset <= offset, or the
// segment start (baseOffset, 0) when there is none.
func (ix *offsetIndex) lookup(offset int64) (int64, int64) {
	o, pos, _ := ix.lookupSpan(offset)
	return o, pos
}

// lookupSpan is lookup that also returns the position of the next entry
// (-1 if none): the batch holding offset starts before it.
func (ix *offsetIndex) lookupSpan(offset int64) (int64, int64, int64) {
	n := int(ix.entries.Load())
	return OffsetIndexFloor(ix.data[:n*offsetIndexEntryBytes], ix.baseOffset, offset)
}

// OffsetIndexFloor searches the entries of an offset index (a sealed
// segment's .index file, as uploaded) of the segment at base for the
// entry with the largest offset <= offset. It returns that entry's offset
// and position (base and 0 when there is none) and the next entry's
// position (-1 if none): the batch holding offset starts between them.
func OffsetIndexFloor(entries []byte, base, offset int64) (floor, pos, next int64) {
	n := len(entries) / offsetIndexEntryBytes
	at := func(i int) (uint32, int64) {
		e := entries[i*offsetIndexEntryBytes:]
		return binary.BigEndian.Uint32(e[0:]), int64(binary.BigEndian.Uint32(e[4:]))
	}
	posOf := func(i int) int64 {
		if i >= n {
			return -1
		}
		_, p := at(i)
		return p
	}
	if offset < base || n == 0 {
		return base, 0, posOf(0)
	}
	rel := uint64(offset - base)
	if rel > math.MaxUint32 {
		rel = math.MaxUint32
	}
	// First entry with relative offset > rel; the answer is the one before.
	lo, hi := 0, n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if r, _ := at(mid); uint64(r) <= rel {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return base, 0, posOf(0)
	}
	r, p := at(lo - 1)
	return base + int64(r), p, posOf(lo)
}

// truncateTo drops entries for offsets >= offset.
func (ix *offsetIndex) truncateTo(offset int64) {
	n := int(ix.entries.Load())
	for n > 0 {
		if r, _ := ix.at(n - 1); ix.baseOffset+int64(r) < offset {
			break
		}
		n--
	}
	ix.truncateEntries(n)
}

// sane reports whether the first n entries are plausible for a log of
// logSize bytes ending before nextOffset: offsets and positions strictly
// increasing and in range.
func (ix *offsetIndex) sane(logSize, nextOffset int64) error {
	n := int(ix.entries.Load())
	prevRel, prevPos := int64(-1), int64(-1)
	for i := range n {
		r, p := ix.at(i)
		if int64(r) <= prevRel || int64(p) <= prevPos || int64(p) >= logSize || ix.baseOffset+int64(r) >= nextOffset {
			return fmt.Errorf("log: index %s: entry %d (%d, %d) out of order or range", ix.path, i, r, p)
		}
		prevRel, prevPos = int64(r), int64(p)
	}
	return nil
}

// timeIndex maps a max timestamp to the base offset of the batch that
// first reached it. Entries are added alongside offset index entries when
// the segment's max timestamp has grown, and once more when the segment
// is sealed, so the last entry always carries the segment's max
// timestamp. Timestamps and offsets never decrease.
type timeIndex struct {
	*mmapIndex
	baseOffset int64
}

func (ix *timeIndex) append(timestamp, offset int64) {
	n := int(ix.entries.Load())
	rel := uint32(offset - ix.baseOffset)
	if n > 0 {
		lastTs, lastRel := ix.at(n - 1)
		if timestamp <= lastTs {
			return // nothing new
		}
		if rel < lastRel {
			panic(fmt.Sprintf("log: time index %s: offset %d goes back from %d", ix.path, rel, lastRel))
		}
	}
	if n >= ix.capacity() {
		return // the segment rolls when its index is full
	}
	e := ix.entry(n)
	binary.BigEndian.PutUint64(e[0:], uint64(timestamp))
	binary.BigEndian.PutUint32(e[8:], rel)
	ix.entries.Store(int64(n + 1))
}

func (ix *timeIndex) at(i int) (timestamp int64, relOffset uint32) {
	e := ix.entry(i)
	return int64(binary.BigEndian.Uint64(e[0:])), binary.BigEndian.Uint32(e[8:])
}

// last returns the last entry, or ok=false when there is none.
func (ix *timeIndex) last() (timestamp, offset int64, ok bool) {
	n := int(ix.entries.Load())
	if n == 0 {
		return 0, 0, false
	}
	ts, rel := ix.at(n - 1)
	return ts, ix.baseOffset + int64(rel), true
}

// lookup returns the offset of the entry with the largest timestamp <=
// timestamp. The batch at that offset was the first to reach the entry's
// timestamp, so every record before it is older than timestamp and a
// search for the first record at or after timestamp can start there. With
// no such entry it returns the segment's base offset.
func (ix *timeIndex) lookup(timestamp int64) int64 {
	n := int(ix.entries.Load())
	return TimeIndexFloor(ix.data[:n*timeIndexEntryBytes], ix.baseOffset, timestamp)
}

// TimeIndexFloor searches the entries of a time index (a sealed segment's
// .timeindex file) of the segment at base as timeIndex.lookup does.
func TimeIndexFloor(entries []byte, base, timestamp int64) int64 {
	n := len(entries) / timeIndexEntryBytes
	lo, hi := 0, n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if ts := int64(binary.BigEndian.Uint64(entries[mid*timeIndexEntryBytes:])); ts <= timestamp {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return base
	}
	rel := binary.BigEndian.Uint32(entries[(lo-1)*timeIndexEntryBytes+8:])
	return base + int64(rel)
}

func (ix *timeIndex) truncateTo(offset int64) {
	n := int(ix.entries.Load())
	for n > 0 {
		if _, r := ix.at(n - 1); ix.baseOffset+int64(r) < offset {
			break
		}
		n--
	}
	ix.truncateEntries(n)
}

func (ix *timeIndex) sane(nextOffset int64) error {
	n := int(ix.entries.Load())
	prevTs, prevRel := int64(math.MinInt64), int64(-1)
	for i := range n {
		ts, r := ix.at(i)
		if ts <= prevTs || int64(r) < prevRel || ix.baseOffset+int64(r) >= nextOffset {
			return fmt.Errorf("log: time index %s: entry %d (%d, %d) out of order or range", ix.path, i, ts, r)
		}
		prevTs, prevRel = ts, int64(r)
	}
	return nil
}
