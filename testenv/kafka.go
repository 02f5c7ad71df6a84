package testenv

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// Raw Kafka requests for tests that check exact error codes, which a
// client's retries would hide.

// Batch encodes a one-record RecordBatch v2 with a correct CRC.
func Batch(value []byte) []byte {
	var rec []byte
	rec = append(rec, 0, 0, 0, 1) // attributes, timestamp delta, offset delta, null key
	rec = binary.AppendVarint(rec, int64(len(value)))
	rec = append(rec, value...)
	rec = append(rec, 0) // no headers
	body := binary.AppendVarint(nil, int64(len(rec)))
	body = append(body, rec...)
	b := make([]byte, 61, 61+len(body))
	binary.BigEndian.PutUint32(b[8:], uint32(49+len(body)))
	binary.BigEndian.PutUint32(b[12:], 0xffffffff)
	b[16] = 2
	binary.BigEndian.PutUint64(b[43:], 0xffffffffffffffff)
	binary.BigEndian.PutUint16(b[51:], 0xffff)
	binary.BigEndian.PutUint32(b[53:], 0xffffffff)
	binary.BigEndian.PutUint32(b[57:], 1)
	b = append(b, body...)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// IdempotentBatch is Batch("v") from an idempotent producer: its id,
// epoch and first sequence set, the CRC made again.
func IdempotentBatch(producerID int64, epoch int16, seq int32) []byte {
	b := Batch([]byte("v"))
	binary.BigEndian.PutUint64(b[43:], uint64(producerID))
	binary.BigEndian.PutUint16(b[51:], uint16(epoch))
	binary.BigEndian.PutUint32(b[53:], uint32(seq))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// TransactionalBatch is IdempotentBatch marked transactional.
func TransactionalBatch(producerID int64, epoch int16, seq int32) []byte {
	b := IdempotentBatch(producerID, epoch, seq)
	b[22] |= 0x10 // the attributes' transactional bit
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// NamedTopics pins a client below Produce v13 and Fetch v13, which name
// topics by ID: the requests these tests build by hand carry names.
var NamedTopics = kgo.MaxVersions(func() *kversion.Versions {
	v := kversion.V4_0_0()
	v.SetMaxKeyVersion(0, 12)
	v.SetMaxKeyVersion(1, 12)
	return v
}())

// ProduceRequest is a one-partition produce request (5 s timeout).
func ProduceRequest(topic string, acks int16, records []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = acks, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// ProduceRaw sends a one-partition produce through cl (pinned with
// NamedTopics) and returns the partition's error code.
func ProduceRaw(t testing.TB, cl *kgo.Client, topic string, acks int16, records []byte) int16 {
	t.Helper()
	resp, err := ProduceRequest(topic, acks, records).RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// ReadFrame reads one response frame from a raw Kafka connection: its
// correlation id and the body after it (a flexible response's header
// tags included). A read error is returned as is.
func ReadFrame(r io.Reader) (corr int32, body []byte, err error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return 0, nil, err
	}
	frame := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(r, frame); err != nil {
		return 0, nil, err
	}
	if len(frame) < 4 {
		return 0, nil, fmt.Errorf("response frame of %d bytes", len(frame))
	}
	return int32(binary.BigEndian.Uint32(frame)), frame[4:], nil
}

// TopicLogBytes is the size DescribeLogDirs reports for a topic, summed
// over every directory and partition.
func TopicLogBytes(ctx context.Context, t testing.TB, adm *kadm.Client, topic string) int64 {
	t.Helper()
	dirs, err := adm.DescribeAllLogDirs(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	dirs.Each(func(d kadm.DescribedLogDir) {
		d.Topics.Each(func(p kadm.DescribedLogDirPartition) {
			if p.Topic == topic {
				size += p.Size
			}
		})
	})
	return size
}
