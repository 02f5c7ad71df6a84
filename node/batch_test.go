package node

import (
	"encoding/binary"
	"hash/crc32"
)

// idemTestBatch is a one-record batch from an idempotent producer.
func idemTestBatch(producerID int64, epoch int16, seq int32) []byte {
	return idemBatch(producerID, epoch, seq, 1)
}

// idemBatch is a one-record batch from an idempotent producer whose value
// is valueBytes long.
func idemBatch(producerID int64, epoch int16, seq int32, valueBytes int) []byte {
	var rec []byte
	rec = append(rec, 0)               // attributes
	rec = binary.AppendVarint(rec, 0)  // timestamp delta
	rec = binary.AppendVarint(rec, 0)  // offset delta
	rec = binary.AppendVarint(rec, -1) // no key
	rec = binary.AppendVarint(rec, int64(valueBytes))
	rec = append(rec, make([]byte, valueBytes)...)
	rec = binary.AppendVarint(rec, 0) // no headers
	body := binary.AppendVarint(nil, int64(len(rec)))
	body = append(body, rec...)
	b := make([]byte, 61, 61+len(body))
	binary.BigEndian.PutUint32(b[8:], uint32(49+len(body)))
	binary.BigEndian.PutUint32(b[12:], 0xffffffff)
	b[16] = 2
	binary.BigEndian.PutUint64(b[43:], uint64(producerID))
	binary.BigEndian.PutUint16(b[51:], uint16(epoch))
	binary.BigEndian.PutUint32(b[53:], uint32(seq))
	binary.BigEndian.PutUint32(b[57:], 1)
	b = append(b, body...)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}
