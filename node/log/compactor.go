package log

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"
)

// Compactor is one clean's decisions, apart from where the batches come
// from: Log.Clean feeds it a local log's segments, and the node's remote
// cleaner the uploaded segments of a tiered log, read from the object
// store. Both thus keep and drop exactly the same records.
//
// A clean first maps the keys of the dirty part (Map, batch by batch, in
// offset order), then rewrites every batch from the log start to the end
// of what it mapped (Filter).
type Compactor struct {
	o       CompactorOptions
	m       *offsetMap
	scratch filterScratch
}

// CompactorOptions configure a Compactor.
type CompactorOptions struct {
	// MapBytes bounds the key map (log.cleaner.dedupe.buffer.size).
	MapBytes int
	// FirstDirty is the cleaner checkpoint: Map ignores records below it.
	FirstDirty int64
	// Aborted are the aborted transactions of the range cleaned: their
	// records are dropped (their markers stay).
	Aborted []AbortedTxn
	// TombstoneHorizon: tombstones below it are dropped (delete.retention.ms
	// has passed since the clean that first reached them).
	TombstoneHorizon int64
	// LastBatches maps each idempotent producer to the base offset of its
	// last batch: kept, if need be empty, for its sequence.
	LastBatches map[int64]int64
	// Codec rewrites compressed batches with their own codec.
	Codec Codec
}

// NewCompactor starts a clean.
func NewCompactor(o CompactorOptions) *Compactor {
	return &Compactor{o: o, m: newOffsetMap(o.MapBytes)}
}

// errMapFull: the key map cannot take another key.
var errMapFull = errors.New("key map full")

// Map adds the keys of one batch to the key map. full is true when the
// map could not take a key of it: the clean must end its dirty range
// before the batch's segment (the keys already mapped stay valid: each
// is a later record's).
func (c *Compactor) Map(h BatchHeader, b []byte) (full bool, err error) {
	if h.LastOffset() < c.o.FirstDirty || h.Control() {
		return false, nil
	}
	rs, err := c.o.Codec.batchRecords(b, h)
	if err != nil {
		return false, err
	}
	defer c.o.Codec.release(h, rs)
	err = forEachRecord(rs, h.RecordCount, func(r record) error {
		off := h.BaseOffset + int64(r.delta)
		if r.key == nil || off < c.o.FirstDirty || c.aborted(h, off) {
			return nil
		}
		if !c.m.put(r.key, off) {
			return errMapFull
		}
		return nil
	})
	if errors.Is(err, errMapFull) {
		return true, nil
	}
	return false, err
}

// Keys is the number of keys mapped.
func (c *Compactor) Keys() int { return c.m.len() }

func (c *Compactor) aborted(h BatchHeader, offset int64) bool {
	if !h.Transactional() {
		return false
	}
	for _, a := range c.o.Aborted {
		if a.ProducerID == h.ProducerID && a.FirstOffset <= offset && offset < a.LastOffset {
			return true
		}
	}
	return false
}

// keep decides one record: the latest of its key (or newer than the map
// knows), with a key, not aborted, and not a tombstone past the horizon.
func (c *Compactor) keep(h BatchHeader, off int64, r record) bool {
	if r.key == nil || c.aborted(h, off) {
		return false
	}
	if latest, ok := c.m.latest(r.key); ok && off < latest {
		return false
	}
	return !r.tombstone || off >= c.o.TombstoneHorizon
}

// Filter rewrites one batch of a group of segments being cleaned into
// one, whose end is groupEnd (one past its last offset). It returns the
// batch to write (b itself when nothing goes; nil when the whole batch
// goes; a rewritten batch is valid until the next call) and how many
// records it dropped. Control batches stay, and so
// do an idempotent producer's last batch and the group's last batch,
// empty if need be: the segment keeps its end (a consumer whose position
// falls in a gap at the end of the log would otherwise find nothing to
// move it on, KAFKA-5443).
func (c *Compactor) Filter(h BatchHeader, b []byte, groupEnd int64) (out []byte, removed int32, err error) {
	if h.Control() {
		return b, 0, nil
	}
	keepEmpty := h.ProducerID >= 0 && c.o.LastBatches[h.ProducerID] == h.BaseOffset || h.LastOffset()+1 == groupEnd
	out, err = filterBatch(b, h, c.o.Codec, keepEmpty, func(off int64, r record) bool { return c.keep(h, off, r) }, &c.scratch)
	if err != nil || out == nil {
		return nil, h.RecordCount, err
	}
	if len(out) == len(b) && &out[0] == &b[0] {
		return b, 0, nil
	}
	nh, err := ParseBatchHeader(out)
	if err != nil {
		return nil, 0, err
	}
	return out, h.RecordCount - nh.RecordCount, nil
}

// MaxGroupSpan bounds the offsets one segment may span (its index keeps
// 32-bit relative offsets): a cleaner grouping segments stays within it.
const MaxGroupSpan = math.MaxUint32

// SegmentWriter writes a standalone segment (log, offset and time index)
// in a directory: what the remote cleaner uploads in place of a group of
// uploaded segments.
type SegmentWriter struct {
	fs  FS
	seg *segment
	now time.Time
}

// NewSegmentWriter creates the segment of base offset base in dir, its
// indexes sized for about sizeHint bytes of batches.
func NewSegmentWriter(dir string, base, sizeHint int64, cfg Config) (*SegmentWriter, error) {
	fs := FS(OSFS{})
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	interval := int64(max(cfg.IndexIntervalBytes, minBatchLength))
	s, err := createSegment(fs, dir, base, max(cfg.indexEntries(), int(sizeHint/interval)+2), cfg.IndexIntervalBytes)
	if err != nil {
		return nil, err
	}
	return &SegmentWriter{fs: fs, seg: s, now: time.Now()}, nil
}

// Append writes one whole batch, which must follow the last one.
func (w *SegmentWriter) Append(b []byte) error {
	h, err := ParseBatchHeader(b)
	if err != nil {
		return err
	}
	if int64(len(b)) != h.Size() {
		return fmt.Errorf("%w: a batch of %d bytes says %d", ErrCorrupt, len(b), h.Size())
	}
	if h.BaseOffset < w.seg.nextOffset.Load() || h.LastOffset()-w.seg.baseOffset > MaxGroupSpan || w.seg.index.full() || w.seg.timeIndex.full() {
		return fmt.Errorf("%w: batch at %d does not fit the segment at %d (next %d)", ErrCorrupt, h.BaseOffset, w.seg.baseOffset, w.seg.nextOffset.Load())
	}
	return w.seg.append(b, &h, w.now)
}

// Finish seals, syncs and closes the segment and describes it.
func (w *SegmentWriter) Finish() (SegmentInfo, error) {
	s := w.seg
	err := errors.Join(s.seal(), s.sync())
	info := s.info(true)
	return info, errors.Join(err, s.close())
}

// Discard closes the segment and removes its files.
func (w *SegmentWriter) Discard() {
	w.seg.remove(w.fs)
	if p := w.seg.txn.path; p != "" {
		os.Remove(p)
	}
	os.Remove(filepath.Dir(w.seg.logPath)) // if empty
}
