package gateway

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"net"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/bufpool"
)

// A response frame goes to the client socket as a list of slices: the
// encoded response, and for a fetch, each partition's record batches
// (when large) as they came from the node or the bucket, not copied
// into the encoding. The writer sends them with one writev
// (net.Buffers) and only then gives back what they reference.
type respFrame struct {
	bufs    net.Buffers
	pooled  []byte // the encoding, from bufpool
	release func() // after writing: what the record slices reference
}

// done gives back the frame's buffers: the response is written, or will
// never be.
func (f *respFrame) done() {
	if f.pooled != nil {
		bufpool.Put(f.pooled)
		f.pooled = nil
	}
	if f.release != nil {
		f.release()
		f.release = nil
	}
}

// gatherMin is the size from which a partition's records are written as
// they are rather than copied into the encoded response.
const gatherMin = 32 << 10

// gatherOff turns gathering off (a benchmark's baseline).
var gatherOff atomic.Bool

// markerLen is the length of the stand-in a gathered partition's records
// are encoded as: an id no encoding of anything else will contain
// (twelve random bytes per response) and the partition's index.
const markerLen = 16

func marker(id []byte, i int) []byte {
	m := make([]byte, markerLen)
	copy(m, id)
	binary.BigEndian.PutUint32(m[12:], uint32(i))
	return m
}

// frameFetch frames a fetch response, leaving out of the encoding every
// partition's records of gatherMin or more (ok false: none; frame it
// whole). The records go in the frame where the encoding had them,
// behind their length as the response's version encodes it. resp is as
// it was when frameFetch returns.
func frameFetch(h requestHeader, resp *kmsg.FetchResponse) (respFrame, bool) {
	type hole struct {
		sp   *kmsg.FetchResponseTopicPartition
		recs []byte
	}
	if gatherOff.Load() {
		return respFrame{}, false
	}
	var holes []hole
	var id [12]byte
	for ti := range resp.Topics {
		for pi := range resp.Topics[ti].Partitions {
			sp := &resp.Topics[ti].Partitions[pi]
			if len(sp.RecordBatches) < gatherMin {
				continue
			}
			if holes == nil {
				rand.Read(id[:])
			}
			holes = append(holes, hole{sp, sp.RecordBatches})
			sp.RecordBatches = marker(id[:], len(holes)-1)
		}
	}
	if holes == nil {
		return respFrame{}, false
	}
	head := frameResponse(h, resp)
	for _, hl := range holes {
		hl.sp.RecordBatches = hl.recs
	}
	// The records' length as encoded before the stand-in: a compact
	// (uvarint, length+1) from version 12, an int32 before.
	flexible := resp.IsFlexible()
	var standIn []byte
	if flexible {
		standIn = binary.AppendUvarint(nil, markerLen+1)
	} else {
		standIn = binary.BigEndian.AppendUint32(nil, markerLen)
	}
	f := respFrame{pooled: head}
	total := len(head) - 4
	pos := 0
	for i, hl := range holes {
		m := marker(id[:], i)
		at := bytes.Index(head[pos:], m)
		if at < 0 || at < len(standIn) || !bytes.Equal(head[pos+at-len(standIn):pos+at], standIn) {
			// Not where the encoding should have put it: frame it whole.
			bufpool.Put(head)
			return respFrame{}, false
		}
		at += pos
		var length []byte
		if flexible {
			length = binary.AppendUvarint(nil, uint64(len(hl.recs))+1)
		} else {
			length = binary.BigEndian.AppendUint32(nil, uint32(len(hl.recs)))
		}
		f.bufs = append(f.bufs, head[pos:at-len(standIn)], length, hl.recs)
		total += len(length) + len(hl.recs) - len(standIn) - markerLen
		pos = at + markerLen
	}
	f.bufs = append(f.bufs, head[pos:])
	binary.BigEndian.PutUint32(head, uint32(total))
	return f, true
}
