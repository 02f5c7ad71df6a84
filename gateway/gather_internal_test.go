package gateway

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFrameFetchSameBytes: a fetch response framed with its large record
// slices left out of the encoding (written by writev) is, byte for byte,
// the frame encoded whole, at every fetch version, for random mixes of
// topics, partitions and record sizes; and the response is unchanged.
func TestFrameFetchSameBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	noise := make([]byte, 1<<20)
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	gathered := 0
	for round := range 300 {
		resp := kmsg.NewPtrFetchResponse()
		resp.SetVersion(int16(4 + rng.IntN(14))) // 4..17
		for ti := range 1 + rng.IntN(3) {
			st := kmsg.NewFetchResponseTopic()
			st.Topic = string(rune('a' + ti))
			st.TopicID[0] = byte(ti + 1)
			for pi := range 1 + rng.IntN(4) {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition, sp.HighWatermark, sp.LastStableOffset = int32(pi), rng.Int64N(1<<40), 7
				n := []int{0, 100, gatherMin - 1, gatherMin, gatherMin + 1, 200 << 10, 1 << 20}[rng.IntN(7)]
				if n > 0 {
					off := rng.IntN(len(noise) - n + 1)
					sp.RecordBatches = noise[off : off+n]
				}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		h := requestHeader{key: 1, version: resp.GetVersion(), correlationID: int32(round)}
		want := append([]byte(nil), frameResponse(h, resp)...)
		f, ok := frameFetch(h, resp)
		if !ok {
			continue // nothing large enough
		}
		gathered++
		var got []byte
		for _, b := range f.bufs {
			got = append(got, b...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("round %d, version %d: gathered frame differs from the whole one (%d against %d bytes)",
				round, resp.GetVersion(), len(got), len(want))
		}
		if again := frameResponse(h, resp); !bytes.Equal(again, want) {
			t.Fatalf("round %d: frameFetch changed the response", round)
		}
		f.done()
	}
	if gathered < 100 {
		t.Fatalf("only %d of 300 responses had records to gather", gathered)
	}
}
