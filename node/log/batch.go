package log

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Field positions in a Kafka RecordBatch (magic 2). See doc.go for the
// drawing.
const (
	offBaseOffset      = 0
	offBatchLength     = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offRecordCount     = 57

	// BatchHeaderBytes is the size of a RecordBatch header up to and
	// including the record count.
	BatchHeaderBytes = 61
	// batchLengthOverhead is the part of a batch that its length field
	// does not count: base offset and the length itself.
	batchLengthOverhead = 12
	// minBatchLength is the smallest legal value of the length field.
	minBatchLength = BatchHeaderBytes - batchLengthOverhead

	// crcStart is where the CRC-32C span begins: everything from the
	// attributes to the end of the batch. Base offset, length, partition
	// leader epoch and magic sit outside it, which is why offsets and
	// epochs can be assigned without recomputing the checksum.
	crcStart = offAttributes

	attrCompressionMask = 0x07
	attrTimestampType   = 0x08
	attrTransactional   = 0x10
	attrControl         = 0x20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Compression codecs as stored in the low three attribute bits.
const (
	CompressionNone   = 0
	CompressionGzip   = 1
	CompressionSnappy = 2
	CompressionLZ4    = 3
	CompressionZstd   = 4
)

// BatchHeader is the fixed header of a RecordBatch, decoded.
type BatchHeader struct {
	BaseOffset      int64
	Length          int32 // bytes after the length field
	LeaderEpoch     int32
	Magic           int8
	CRC             uint32
	Attributes      int16
	LastOffsetDelta int32
	BaseTimestamp   int64
	MaxTimestamp    int64
	ProducerID      int64
	ProducerEpoch   int16
	BaseSequence    int32
	RecordCount     int32
}

// ParseBatchHeader decodes the header at the start of b. It checks only
// that b holds a whole header; ValidateBatch checks the rest.
func ParseBatchHeader(b []byte) (BatchHeader, error) {
	if len(b) < BatchHeaderBytes {
		return BatchHeader{}, fmt.Errorf("%w: %d bytes is shorter than a batch header", ErrCorrupt, len(b))
	}
	be := binary.BigEndian
	return BatchHeader{
		BaseOffset:      int64(be.Uint64(b[offBaseOffset:])),
		Length:          int32(be.Uint32(b[offBatchLength:])),
		LeaderEpoch:     int32(be.Uint32(b[offLeaderEpoch:])),
		Magic:           int8(b[offMagic]),
		CRC:             be.Uint32(b[offCRC:]),
		Attributes:      int16(be.Uint16(b[offAttributes:])),
		LastOffsetDelta: int32(be.Uint32(b[offLastOffsetDelta:])),
		BaseTimestamp:   int64(be.Uint64(b[offBaseTimestamp:])),
		MaxTimestamp:    int64(be.Uint64(b[offMaxTimestamp:])),
		ProducerID:      int64(be.Uint64(b[offProducerID:])),
		ProducerEpoch:   int16(be.Uint16(b[offProducerEpoch:])),
		BaseSequence:    int32(be.Uint32(b[offBaseSequence:])),
		RecordCount:     int32(be.Uint32(b[offRecordCount:])),
	}, nil
}

// Size is the whole batch in bytes, header included.
func (h BatchHeader) Size() int64 { return batchLengthOverhead + int64(h.Length) }

// LastOffset is the offset of the batch's last record.
func (h BatchHeader) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// Compression is the codec in the attributes (CompressionNone, ...).
func (h BatchHeader) Compression() int { return int(h.Attributes & attrCompressionMask) }

// LogAppendTime reports whether the batch's timestamps are the broker's
// append time rather than the producer's create time.
func (h BatchHeader) LogAppendTime() bool { return h.Attributes&attrTimestampType != 0 }

// Transactional reports the transactional attribute bit.
func (h BatchHeader) Transactional() bool { return h.Attributes&attrTransactional != 0 }

// Control reports the control-batch attribute bit.
func (h BatchHeader) Control() bool { return h.Attributes&attrControl != 0 }

// BatchInfo is what validation learns about a batch beyond its header.
type BatchInfo struct {
	Header BatchHeader
	// MaxTimestampDelta is the offset delta of the first record that
	// carries the batch's max timestamp, when the records could be read
	// (uncompressed batches); otherwise LastOffsetDelta.
	MaxTimestampDelta int32
}

// ValidateBatch checks that b is exactly one well-formed RecordBatch of
// magic 2 no larger than maxBytes: length, magic, CRC-32C, record count
// against the offset range, and, for uncompressed batches, the framing of
// every record. It never panics and does not modify b. The returned error
// wraps ErrCorrupt, ErrTooLarge or ErrInvalidRecord.
func ValidateBatch(b []byte, maxBytes int) (BatchInfo, error) {
	return validateBatch(b, maxBytes, false)
}

// ValidateCleanedBatch is ValidateBatch for a batch as a compacted log
// holds it (what a follower replicates from a cleaned leader): records
// may be missing, so the record count may fall short of the offset range
// (to none, for the last batch of an idempotent producer, kept for its
// sequence) and offset deltas need only increase, up to the last.
func ValidateCleanedBatch(b []byte) (BatchInfo, error) { return validateBatch(b, 0, true) }

func validateBatch(b []byte, maxBytes int, cleaned bool) (BatchInfo, error) {
	h, err := checkBatchFrame(b)
	if err != nil {
		return BatchInfo{}, err
	}
	if h.Size() != int64(len(b)) {
		return BatchInfo{}, fmt.Errorf("%w: batch length field says %d bytes, request carries %d", ErrCorrupt, h.Size(), len(b))
	}
	if maxBytes > 0 && len(b) > maxBytes {
		return BatchInfo{}, fmt.Errorf("%w: batch of %d bytes exceeds max.message.bytes %d", ErrTooLarge, len(b), maxBytes)
	}
	if sum := crc32.Checksum(b[crcStart:], castagnoli); sum != h.CRC {
		return BatchInfo{}, fmt.Errorf("%w: CRC mismatch (computed %08x, stored %08x)", ErrCorrupt, sum, h.CRC)
	}
	if h.Compression() > CompressionZstd {
		return BatchInfo{}, fmt.Errorf("%w: unknown compression codec %d", ErrCorrupt, h.Compression())
	}
	switch {
	case h.RecordCount < 0 || h.RecordCount == 0 && !cleaned:
		return BatchInfo{}, fmt.Errorf("%w: record count %d", ErrInvalidRecord, h.RecordCount)
	case h.LastOffsetDelta < 0 || int64(h.LastOffsetDelta)+1 < int64(h.RecordCount):
		return BatchInfo{}, fmt.Errorf("%w: last offset delta %d is too small for record count %d", ErrInvalidRecord, h.LastOffsetDelta, h.RecordCount)
	case !cleaned && int64(h.LastOffsetDelta)+1 != int64(h.RecordCount):
		return BatchInfo{}, fmt.Errorf("%w: last offset delta %d disagrees with record count %d", ErrInvalidRecord, h.LastOffsetDelta, h.RecordCount)
	}
	info := BatchInfo{Header: h, MaxTimestampDelta: h.LastOffsetDelta}
	if h.Compression() == CompressionNone {
		delta, err := checkRecords(b[BatchHeaderBytes:], h, cleaned)
		if err != nil {
			return BatchInfo{}, err
		}
		info.MaxTimestampDelta = delta
	}
	return info, nil
}

// checkBatchFrame checks what every stored batch must satisfy, cheaply and
// without the CRC: a whole header, a plausible length and magic 2. It is
// used by validation, reads and recovery alike.
func checkBatchFrame(b []byte) (BatchHeader, error) {
	h, err := ParseBatchHeader(b)
	if err != nil {
		return h, err
	}
	if h.Length < minBatchLength {
		return h, fmt.Errorf("%w: batch length %d is below the minimum %d", ErrCorrupt, h.Length, minBatchLength)
	}
	if h.Magic != 2 {
		return h, fmt.Errorf("%w: magic %d, only RecordBatch v2 (magic 2) is supported", ErrCorrupt, h.Magic)
	}
	return h, nil
}

// checkRecords walks the records of an uncompressed batch and checks that
// each is framed correctly, that offset deltas run 0, 1, 2, ... (in a
// cleaned batch: increase, up to the batch's last), and that the records
// fill the batch exactly. It returns the offset delta of the first record
// with the largest timestamp.
func checkRecords(rs []byte, h BatchHeader, cleaned bool) (int32, error) {
	var maxDelta int32
	maxTimestampDelta := int64(-1 << 63)
	prevDelta := int64(-1)
	for i := int32(0); i < h.RecordCount; i++ {
		length, n := binary.Varint(rs)
		if n <= 0 || length < 0 || length > int64(len(rs)-n) {
			return 0, fmt.Errorf("%w: record %d: bad length", ErrInvalidRecord, i)
		}
		rec := rs[n : n+int(length)]
		rs = rs[n+int(length):]
		if len(rec) < 1 {
			return 0, fmt.Errorf("%w: record %d: empty", ErrInvalidRecord, i)
		}
		rec = rec[1:] // attributes, unused in v2
		tsDelta, n := binary.Varint(rec)
		if n <= 0 {
			return 0, fmt.Errorf("%w: record %d: bad timestamp delta", ErrInvalidRecord, i)
		}
		rec = rec[n:]
		offDelta, n := binary.Varint(rec)
		switch {
		case n <= 0 || !cleaned && offDelta != int64(i):
			return 0, fmt.Errorf("%w: record %d: offset delta %d, want %d", ErrInvalidRecord, i, offDelta, i)
		case offDelta <= prevDelta || offDelta > int64(h.LastOffsetDelta):
			return 0, fmt.Errorf("%w: record %d: offset delta %d after %d, in a batch ending at delta %d", ErrInvalidRecord, i, offDelta, prevDelta, h.LastOffsetDelta)
		}
		prevDelta = offDelta
		rec = rec[n:]
		var ok bool
		if rec, ok = skipBytes(rec, true); !ok { // key
			return 0, fmt.Errorf("%w: record %d: bad key", ErrInvalidRecord, i)
		}
		if rec, ok = skipBytes(rec, true); !ok { // value
			return 0, fmt.Errorf("%w: record %d: bad value", ErrInvalidRecord, i)
		}
		headers, n := binary.Varint(rec)
		if n <= 0 || headers < 0 || headers > int64(len(rec)) {
			return 0, fmt.Errorf("%w: record %d: bad header count", ErrInvalidRecord, i)
		}
		rec = rec[n:]
		for j := int64(0); j < headers; j++ {
			if rec, ok = skipBytes(rec, false); !ok {
				return 0, fmt.Errorf("%w: record %d: bad header key", ErrInvalidRecord, i)
			}
			if rec, ok = skipBytes(rec, true); !ok {
				return 0, fmt.Errorf("%w: record %d: bad header value", ErrInvalidRecord, i)
			}
		}
		if len(rec) != 0 {
			return 0, fmt.Errorf("%w: record %d: %d bytes left over", ErrInvalidRecord, i, len(rec))
		}
		if tsDelta > maxTimestampDelta {
			maxTimestampDelta, maxDelta = tsDelta, int32(offDelta)
		}
	}
	if len(rs) != 0 {
		return 0, fmt.Errorf("%w: %d bytes after the last record", ErrInvalidRecord, len(rs))
	}
	return maxDelta, nil
}

// skipBytes skips a varint-length-prefixed byte string; a length of -1
// (null) is allowed where nullable is set.
func skipBytes(b []byte, nullable bool) ([]byte, bool) {
	length, n := binary.Varint(b)
	if n <= 0 || length < -1 || (length == -1 && !nullable) || length > int64(len(b)-n) {
		return nil, false
	}
	if length < 0 {
		return b[n:], true
	}
	return b[n+int(length):], true
}

// putBatchOffsetAndEpoch rewrites the two header fields outside the CRC
// that the log assigns: base offset and partition leader epoch.
func putBatchOffsetAndEpoch(b []byte, baseOffset int64, leaderEpoch int32) {
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(baseOffset))
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(leaderEpoch))
}

// setLogAppendTime marks the batch's timestamps as log append time, sets
// its max timestamp to now and recomputes the CRC (both fields are inside
// it), as Kafka does for topics with message.timestamp.type=LogAppendTime.
func setLogAppendTime(b []byte, nowMs int64) {
	attrs := binary.BigEndian.Uint16(b[offAttributes:]) | attrTimestampType
	binary.BigEndian.PutUint16(b[offAttributes:], attrs)
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(nowMs))
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[crcStart:], castagnoli))
}

// recordTimestamps calls fn with the offset delta and timestamp of each
// record in rs, a batch's records (decompressed), until fn returns false.
// It stops quietly at anything malformed.
func recordTimestamps(rs []byte, h BatchHeader, fn func(delta int32, ts int64) bool) {
	for i := int32(0); i < h.RecordCount && len(rs) > 0; i++ {
		length, n := binary.Varint(rs)
		if n <= 0 || length < 1 || length > int64(len(rs)-n) {
			return
		}
		rec := rs[n+1 : n+int(length)]
		rs = rs[n+int(length):]
		tsDelta, m := binary.Varint(rec)
		if m <= 0 {
			return
		}
		ts := h.BaseTimestamp + tsDelta
		if h.LogAppendTime() {
			ts = h.MaxTimestamp
		}
		if !fn(i, ts) {
			return
		}
	}
}

// crcOf computes a batch's CRC-32C over the span Kafka defines.
func crcOf(b []byte) uint32 { return crc32.Checksum(b[crcStart:], castagnoli) }
