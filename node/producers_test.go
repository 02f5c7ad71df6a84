package node

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	plog "github.com/strata-io/strata/node/log"
)

func TestProducerSequences(t *testing.T) {
	ps := producerStates{}
	h := func(epoch int16, seq, n int32) plog.BatchHeader {
		return plog.BatchHeader{ProducerID: 7, ProducerEpoch: epoch, BaseSequence: seq, LastOffsetDelta: n - 1, RecordCount: n}
	}
	expect := func(b plog.BatchHeader, wantDup bool, wantOffset int64, want *kerr.Error) {
		t.Helper()
		off, dup, rej := ps.check(b)
		if dup != wantDup || rej != want || (dup && off != wantOffset) {
			t.Fatalf("check %+v: dup %v at %d, reject %v", b, dup, off, rej)
		}
	}
	expect(h(0, 0, 3), false, 0, nil) // unknown producer: accepted
	ps.record(h(0, 0, 3), 100, nil)
	expect(h(0, 3, 2), false, 0, nil)
	ps.record(h(0, 3, 2), 103, nil)
	expect(h(0, 0, 3), true, 100, nil) // retry of a recent batch
	expect(h(0, 3, 2), true, 103, nil)
	expect(h(0, 6, 1), false, 0, kerr.OutOfOrderSequenceNumber) // gap
	expect(h(0, 4, 1), false, 0, kerr.OutOfOrderSequenceNumber) // overlap, not a known batch
	expect(h(1, 3, 1), false, 0, kerr.OutOfOrderSequenceNumber) // new epoch must start at 0
	expect(h(1, 0, 1), false, 0, nil)
	ps.record(h(1, 0, 1), 105, nil)
	expect(h(0, 5, 1), false, 0, kerr.InvalidProducerEpoch)
	// Sequences wrap at MaxInt32.
	if got := addSeq(2147483646, 3); got != 1 {
		t.Fatalf("wrap: %d", got)
	}
}

// TestProducersRebuiltFromLog: a reopened partition still recognizes a
// retry of a batch written before.
func TestProducersRebuiltFromLog(t *testing.T) {
	dir := t.TempDir()
	l, err := plog.Open(dir, plog.DefaultConfig(), plog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ol := &openLog{Log: l, producers: producerStates{}}
	b := idemTestBatch(42, 0, 0)
	if _, dup, err := appendIdempotent(ol, append([]byte(nil), b...), 0, nil); err != nil || dup {
		t.Fatal(err, dup)
	}
	l.Close()
	l, err = plog.Open(dir, plog.DefaultConfig(), plog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ps, err := rebuildProducers(l)
	if err != nil {
		t.Fatal(err)
	}
	ol = &openLog{Log: l, producers: ps}
	res, dup, err := appendIdempotent(ol, append([]byte(nil), b...), 0, nil)
	if err != nil || !dup || res.FirstOffset != 0 || l.EndOffset() != 1 {
		t.Fatalf("retry after reopen: %+v dup=%v %v end %d", res, dup, err, l.EndOffset())
	}
}
