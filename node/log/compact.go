package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
)

// Compaction's pieces that work on bytes: the key map the cleaner builds
// over the dirty part of a log, and the rewrite of one batch keeping
// only the records it is told to. The cleaner itself (Log.Clean) is in
// clean.go.

// keyHash is a record key's 128-bit hash: two seeded 64-bit hashes, so
// that two keys of one log colliding (and one's latest value being
// taken for the other's) is as unlikely as in Kafka's MD5 map.
type keyHash [2]uint64

// offsetMap maps each key hash to the offset of its latest record, up to
// a fixed number of entries (the cleaner's memory bound, as Kafka's
// log.cleaner.dedupe.buffer.size).
type offsetMap struct {
	seeds [2]maphash.Seed
	m     map[keyHash]int64
	max   int
}

// offsetMapEntryBytes is what one entry costs, roughly (key, value and
// the Go map's overhead): memory bounds are divided by it.
const offsetMapEntryBytes = 48

func newOffsetMap(maxBytes int) *offsetMap {
	n := max(maxBytes/offsetMapEntryBytes, 1)
	return &offsetMap{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, m: make(map[keyHash]int64, min(n, 1<<16)), max: n}
}

func (m *offsetMap) hash(key []byte) keyHash {
	return keyHash{maphash.Bytes(m.seeds[0], key), maphash.Bytes(m.seeds[1], key)}
}

// put records offset as key's latest. It refuses (false) a new key once
// the map is full; a key it holds is always updated.
func (m *offsetMap) put(key []byte, offset int64) bool {
	h := m.hash(key)
	if _, ok := m.m[h]; !ok && len(m.m) >= m.max {
		return false
	}
	m.m[h] = offset
	return true
}

// latest is the offset of key's latest record in the map.
func (m *offsetMap) latest(key []byte) (int64, bool) {
	o, ok := m.m[m.hash(key)]
	return o, ok
}

func (m *offsetMap) len() int { return len(m.m) }

// record is one record of a batch as the cleaner sees it.
type record struct {
	delta     int32  // offset delta from the batch's base offset
	key       []byte // nil when the record has no key
	tombstone bool   // a null value
	raw       []byte // the record's whole encoding, length prefix included
}

// forEachRecord calls fn for each of the count records in rs (a batch's
// records, decompressed), stopping at fn's first error. Malformed records
// are an error wrapping ErrCorrupt: the cleaner rewrites nothing it
// cannot read.
func forEachRecord(rs []byte, count int32, fn func(record) error) error {
	for i := int32(0); i < count; i++ {
		length, n := binary.Varint(rs)
		if n <= 0 || length < 1 || length > int64(len(rs)-n) {
			return fmt.Errorf("%w: record %d: bad length", ErrCorrupt, i)
		}
		raw := rs[:n+int(length)]
		rec := rs[n+1 : n+int(length)] // past the attributes byte
		rs = rs[n+int(length):]
		var r record
		r.raw = raw
		if _, m := binary.Varint(rec); m > 0 { // timestamp delta
			rec = rec[m:]
		} else {
			return fmt.Errorf("%w: record %d: bad timestamp delta", ErrCorrupt, i)
		}
		delta, m := binary.Varint(rec)
		if m <= 0 || delta < 0 || delta > 1<<31-1 {
			return fmt.Errorf("%w: record %d: bad offset delta", ErrCorrupt, i)
		}
		r.delta, rec = int32(delta), rec[m:]
		klen, m := binary.Varint(rec)
		if m <= 0 || klen < -1 || klen > int64(len(rec)-m) {
			return fmt.Errorf("%w: record %d: bad key", ErrCorrupt, i)
		}
		rec = rec[m:]
		if klen >= 0 {
			r.key, rec = rec[:klen], rec[klen:]
		}
		vlen, m := binary.Varint(rec)
		if m <= 0 || vlen < -1 || vlen > int64(len(rec)-m) {
			return fmt.Errorf("%w: record %d: bad value", ErrCorrupt, i)
		}
		r.tombstone = vlen < 0
		if err := fn(r); err != nil {
			return err
		}
	}
	if len(rs) != 0 {
		return fmt.Errorf("%w: %d bytes after the last record", ErrCorrupt, len(rs))
	}
	return nil
}

// Codec compresses and decompresses batch bodies for the cleaner, which
// rewrites a compressed batch with its own codec. Nil fields leave
// compressed batches as they are.
type Codec struct {
	// Decompress returns the concatenated records of a batch body.
	Decompress func(codec int, body []byte) ([]byte, error)
	// Compress compresses concatenated records with codec. Its result
	// may be a buffer the next call reuses: callers copy it.
	Compress func(codec int, records []byte) ([]byte, error)
	// Release, when set, takes back what Decompress returned once the
	// caller is done with it (a buffer to reuse).
	Release func(records []byte)
}

// release gives back a batch's decompressed records.
func (c Codec) release(h BatchHeader, rs []byte) {
	if c.Release != nil && h.Compression() != CompressionNone {
		c.Release(rs)
	}
}

// batchRecords returns a batch's records, decompressed.
func (c Codec) batchRecords(b []byte, h BatchHeader) ([]byte, error) {
	body := b[BatchHeaderBytes:]
	if h.Compression() == CompressionNone {
		return body, nil
	}
	if c.Decompress == nil {
		return nil, fmt.Errorf("%w: no decompressor for codec %d", ErrCorrupt, h.Compression())
	}
	return c.Decompress(h.Compression(), body)
}

// filterBatch rewrites batch b keeping only the records keep accepts
// (called with each record's absolute offset). It returns b itself when
// every record stays, nil when none does (unless keepEmpty: then an
// empty batch with b's header, as Kafka keeps an idempotent producer's
// last batch for its sequence), and otherwise a new batch: same base
// offset, last offset delta, timestamps, producer fields and codec, the
// records kept in their original encoding (their deltas stay valid), the
// count, length and CRC recomputed. scratch, when not nil, holds buffers
// to reuse: the new batch is then valid until the next call with it.
func filterBatch(b []byte, h BatchHeader, c Codec, keepEmpty bool, keep func(offset int64, r record) bool, scratch *filterScratch) ([]byte, error) {
	rs, err := c.batchRecords(b, h)
	if err != nil {
		return nil, err
	}
	defer c.release(h, rs)
	if scratch == nil {
		scratch = &filterScratch{}
	}
	kept := scratch.kept[:0]
	defer func() { scratch.kept = kept[:0] }()
	n := int32(0)
	err = forEachRecord(rs, h.RecordCount, func(r record) error {
		if keep(h.BaseOffset+int64(r.delta), r) {
			kept = append(kept, r.raw...)
			n++
		}
		return nil
	})
	switch {
	case err != nil:
		return nil, err
	case n == h.RecordCount:
		return b, nil
	case n == 0 && !keepEmpty:
		return nil, nil
	}
	body := kept
	attrs := uint16(h.Attributes)
	if n == 0 {
		attrs &^= attrCompressionMask // nothing to compress
	} else if h.Compression() != CompressionNone {
		if c.Compress == nil {
			return nil, fmt.Errorf("%w: no compressor for codec %d", ErrCorrupt, h.Compression())
		}
		if body, err = c.Compress(h.Compression(), kept); err != nil {
			return nil, err
		}
	}
	out := slices.Grow(scratch.out[:0], BatchHeaderBytes+len(body))[:BatchHeaderBytes+len(body)]
	scratch.out = out
	copy(out, b[:BatchHeaderBytes])
	copy(out[BatchHeaderBytes:], body)
	binary.BigEndian.PutUint32(out[offBatchLength:], uint32(len(out)-batchLengthOverhead))
	binary.BigEndian.PutUint16(out[offAttributes:], attrs)
	binary.BigEndian.PutUint32(out[offRecordCount:], uint32(n))
	binary.BigEndian.PutUint32(out[offCRC:], crcOf(out))
	return out, nil
}

// CheckKeys returns an error wrapping ErrInvalidRecord when a record of
// batch b (one whole batch) has no key: a compacted topic refuses such a
// batch, as Kafka does, since the cleaner could only drop it.
func CheckKeys(b []byte, c Codec) error {
	h, err := ParseBatchHeader(b)
	if err != nil {
		return err
	}
	if h.Control() {
		return nil
	}
	rs, err := c.batchRecords(b, h)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidRecord, err)
	}
	defer c.release(h, rs)
	i := 0
	err = forEachRecord(rs, h.RecordCount, func(r record) error {
		if r.key == nil {
			return fmt.Errorf("%w: record %d has no key; a compacted topic (cleanup.policy=compact) needs one", ErrInvalidRecord, i)
		}
		i++
		return nil
	})
	if err != nil && !errors.Is(err, ErrInvalidRecord) {
		return fmt.Errorf("%w: %v", ErrInvalidRecord, err)
	}
	return err
}

// filterScratch are filterBatch's buffers, reused from batch to batch.
type filterScratch struct{ kept, out []byte }
