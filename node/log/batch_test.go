package log

import (
	"encoding/binary"
	"errors"
	"testing"
)

func TestValidateBatch(t *testing.T) {
	good := makeBatch(1000, testRecord{key: []byte("k"), value: []byte("v")},
		testRecord{value: []byte("vv"), tsDelta: 5, headers: [][2][]byte{{[]byte("h"), []byte("x")}}})
	mutate := func(f func(b []byte) []byte) []byte {
		b := append([]byte(nil), good...)
		return f(b)
	}
	recrc := func(b []byte) []byte {
		binary.BigEndian.PutUint32(b[offCRC:], crcOf(b))
		return b
	}
	tests := []struct {
		name     string
		batch    []byte
		maxBytes int
		want     error
	}{
		{"valid", good, 0, nil},
		{"valid at exact max", good, len(good), nil},
		{"empty", nil, 0, ErrCorrupt},
		{"shorter than header", good[:BatchHeaderBytes-1], 0, ErrCorrupt},
		{"truncated body", good[:len(good)-1], 0, ErrCorrupt},
		{"trailing bytes", append(append([]byte(nil), good...), 0), 0, ErrCorrupt},
		{"length below minimum", mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offBatchLength:], 10)
			return b
		}), 0, ErrCorrupt},
		{"magic 1", mutate(func(b []byte) []byte { b[offMagic] = 1; return b }), 0, ErrCorrupt},
		{"magic 3", mutate(func(b []byte) []byte { b[offMagic] = 3; return b }), 0, ErrCorrupt},
		{"bad CRC", mutate(func(b []byte) []byte { b[len(b)-1] ^= 0xff; return b }), 0, ErrCorrupt},
		{"flipped attribute bit", mutate(func(b []byte) []byte { b[offAttributes+1] ^= 0x40; return b }), 0, ErrCorrupt},
		{"too large", good, len(good) - 1, ErrTooLarge},
		{"unknown codec", mutate(func(b []byte) []byte { b[offAttributes+1] |= 7; return recrc(b) }), 0, ErrCorrupt},
		{"zero records", mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offRecordCount:], 0)
			return recrc(b)
		}), 0, ErrInvalidRecord},
		{"count disagrees with offset delta", mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offLastOffsetDelta:], 5)
			return recrc(b)
		}), 0, ErrInvalidRecord},
		{"negative offset delta", mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offLastOffsetDelta:], 0xffffffff)
			return recrc(b)
		}), 0, ErrInvalidRecord},
		{"fewer records than counted", mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offLastOffsetDelta:], 2)
			binary.BigEndian.PutUint32(b[offRecordCount:], 3)
			return recrc(b)
		}), 0, ErrInvalidRecord},
		{"record offset delta out of order", func() []byte {
			b := makeBatch(0, testRecord{value: []byte("a")}, testRecord{value: []byte("b")})
			// Second record: length(1) attrs(1) tsDelta(1) offsetDelta: bump it.
			first := int(b[BatchHeaderBytes]) / 2
			b[BatchHeaderBytes+1+first+3] = 4 // varint 2 instead of 1
			return recrc(b)
		}(), 0, ErrInvalidRecord},
		{"record length past end", mutate(func(b []byte) []byte {
			b[BatchHeaderBytes] = 0x7e // varint 63: longer than the batch
			return recrc(b)
		}), 0, ErrInvalidRecord},
		{"compressed body is not walked", frameBatch(CompressionGzip, 0, 0, 3, []byte("opaque")), 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ValidateBatch(tt.batch, tt.maxBytes)
			if tt.want == nil && err != nil {
				t.Fatalf("want valid, got %v", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("want %v, got %v", tt.want, err)
			}
		})
	}
}

func TestValidateBatchMaxTimestampDelta(t *testing.T) {
	b := makeBatch(100, testRecord{tsDelta: 3}, testRecord{tsDelta: 9}, testRecord{tsDelta: 9}, testRecord{tsDelta: 1})
	info, err := ValidateBatch(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	if info.MaxTimestampDelta != 1 || info.Header.MaxTimestamp != 109 || info.Header.RecordCount != 4 {
		t.Fatalf("got %+v", info)
	}
}

func TestAssignOffsetsKeepsCRC(t *testing.T) {
	b := makeBatchN(3, 10, 5)
	putBatchOffsetAndEpoch(b, 1<<40, 7)
	h, err := checkStoredBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.BaseOffset != 1<<40 || h.LeaderEpoch != 7 {
		t.Fatalf("got %+v", h)
	}
	setLogAppendTime(b, 12345)
	if h, err = checkStoredBatch(b); err != nil || !h.LogAppendTime() || h.MaxTimestamp != 12345 {
		t.Fatalf("after log append time: %+v %v", h, err)
	}
}
