package log_test

import (
	"fmt"
	"hash/crc32"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/node/log"
)

// kmsgBatch encodes a batch with franz-go's kmsg, as a Kafka producer
// would send it.
func kmsgBatch(n int) []byte {
	var records []byte
	for i := range n {
		r := kmsg.Record{
			TimestampDelta64: int64(i),
			OffsetDelta:      int32(i),
			Key:              fmt.Appendf(nil, "key-%d", i),
			Value:            fmt.Appendf(nil, "value-%d", i),
			Headers:          []kmsg.Header{{Key: "h", Value: []byte("x")}},
		}
		r.Length = int32(len(r.AppendTo(nil)) - 1) // length excludes its own varint
		records = r.AppendTo(records)
	}
	b := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1,
		Magic:                2,
		LastOffsetDelta:      int32(n - 1),
		FirstTimestamp:       1_700_000_000_000,
		MaxTimestamp:         1_700_000_000_000 + int64(n-1),
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           int32(n),
		Records:              records,
	}
	out := b.AppendTo(nil)
	b.Length = int32(len(out) - 12)
	out = b.AppendTo(nil)
	b.CRC = int32(crc32.Checksum(out[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b.AppendTo(nil)
}

func TestKmsgInterop(t *testing.T) {
	l, err := log.Open(t.TempDir(), log.DefaultConfig(), log.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, n := range []int{1, 7, 3} {
		if _, err := l.Append(kmsgBatch(n), 5); err != nil {
			t.Fatalf("kmsg-encoded batch of %d rejected: %v", n, err)
		}
	}
	data, err := l.Read(nil, 0, 1<<20, -1)
	if err != nil {
		t.Fatal(err)
	}
	next := int64(0)
	for len(data) > 0 {
		var b kmsg.RecordBatch
		if err := b.ReadFrom(data); err != nil {
			t.Fatalf("kmsg cannot decode a stored batch: %v", err)
		}
		if b.FirstOffset != next || b.PartitionLeaderEpoch != 5 {
			t.Fatalf("stored batch at %d epoch %d, want %d epoch 5", b.FirstOffset, b.PartitionLeaderEpoch, next)
		}
		if got := crc32.Checksum(data[21:12+b.Length], crc32.MakeTable(crc32.Castagnoli)); int32(got) != b.CRC {
			t.Fatal("stored CRC does not match")
		}
		rs := b.Records
		for i := range b.NumRecords {
			var r kmsg.Record
			if err := r.ReadFrom(rs); err != nil {
				t.Fatal(err)
			}
			if string(r.Value) != fmt.Sprintf("value-%d", i) {
				t.Fatalf("record %d value %q", i, r.Value)
			}
			rs = rs[len(r.AppendTo(nil)):]
		}
		next += int64(b.NumRecords)
		data = data[12+b.Length:]
	}
	if next != 11 {
		t.Fatalf("read %d records", next)
	}
}
