package rpc

import "github.com/twmb/franz-go/pkg/kmsg"

// Append encodes a Kafka message after dst in a buffer sized up front for
// its record data, so a large fetch response or produce request is
// written once instead of grown (zeroed and copied) several times.
func Append(dst []byte, m interface{ AppendTo([]byte) []byte }) []byte {
	if need := SizeHint(m); cap(dst)-len(dst) < need {
		grown := make([]byte, len(dst), len(dst)+need)
		copy(grown, dst)
		dst = grown
	}
	return m.AppendTo(dst)
}

// SizeHint is room enough to encode m in most cases: its record data and
// some room for the rest.
func SizeHint(m any) int { return recordBytes(m) + 4<<10 }

// recordBytes is the record data a message carries.
func recordBytes(m any) int {
	n := 0
	switch m := m.(type) {
	case *kmsg.FetchResponse:
		for _, t := range m.Topics {
			for _, p := range t.Partitions {
				n += len(p.RecordBatches)
			}
		}
	case *kmsg.ProduceRequest:
		for _, t := range m.Topics {
			for _, p := range t.Partitions {
				n += len(p.Records)
			}
		}
	}
	return n
}
