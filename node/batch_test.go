package node

import (
	"encoding/binary"
	"hash/crc32"
)

// idemTestBatch is a one-record batch from an idempotent producer.
func idemTestBatch(producerID int64, epoch int16, seq int32) []byte {
	rec := []byte{0, 0, 0, 1, 2, 'v', 0}
	body := append([]byte{byte(len(rec) << 1)}, rec...)
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
