// Package batch encodes Kafka record batches (magic 2) that Strata writes
// itself: __consumer_offsets' view, dead letters of share groups.
package batch

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Overhead is a record batch's header size.
const Overhead = 61

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record is one record of a batch: its offset and timestamp are absolute.
type Record struct {
	Offset    int64
	Timestamp int64 // milliseconds
	Key       []byte
	Value     []byte
	Headers   []kmsg.Header
}

// EncodeRecord is r encoded as a batch's record, relative to the batch's
// base offset and first timestamp.
func EncodeRecord(r Record, base, firstTs int64) []byte {
	rec := kmsg.Record{Key: r.Key, Value: r.Value, Headers: headers(r.Headers), OffsetDelta: int32(r.Offset - base), TimestampDelta64: r.Timestamp - firstTs}
	rec.Length = int32(len(rec.AppendTo(nil)) - 1) // what follows the length (encoded as 0, one byte)
	return rec.AppendTo(nil)
}

func headers(hs []kmsg.Header) []kmsg.Header {
	if len(hs) == 0 {
		return nil
	}
	return hs
}

// Encode makes one uncompressed batch, without a producer, of records
// already encoded by EncodeRecord (body, n of them) from base to last.
func Encode(base, last, firstTs, maxTs int64, n int, body []byte) []byte {
	return Seal(kmsg.RecordBatch{
		FirstOffset:     base,
		Magic:           2,
		LastOffsetDelta: int32(last - base),
		FirstTimestamp:  firstTs,
		MaxTimestamp:    maxTs,
		ProducerID:      -1,
		ProducerEpoch:   -1,
		FirstSequence:   -1,
		NumRecords:      int32(n),
		Records:         body,
	})
}

// Seal encodes b with its length and CRC set (Kafka's batch format:
// the length covers everything after itself, the CRC everything from the
// attributes on).
func Seal(b kmsg.RecordBatch) []byte {
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	binary.BigEndian.PutUint32(out[17:], crc32.Checksum(out[21:], castagnoli))
	return out
}

// Of encodes records, in offset order, as one batch.
func Of(records []Record) []byte {
	if len(records) == 0 {
		return nil
	}
	base, firstTs, maxTs := records[0].Offset, records[0].Timestamp, records[0].Timestamp
	var body []byte
	for _, r := range records {
		body = append(body, EncodeRecord(r, base, firstTs)...)
		maxTs = max(maxTs, r.Timestamp)
	}
	return Encode(base, records[len(records)-1].Offset, firstTs, maxTs, len(records), body)
}
