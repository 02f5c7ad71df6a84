package node

import (
	"math"

	"github.com/twmb/franz-go/pkg/kerr"

	plog "github.com/strata-io/strata/node/log"
)

// recentBatches is how many of a producer's last batches are remembered
// for duplicate detection: the most a client keeps in flight (Kafka's
// max.in.flight.requests.per.connection limit for idempotence).
const recentBatches = 5

// producerState is what a partition knows of one idempotent producer.
type producerState struct {
	epoch   int16
	lastSeq int32 // sequence of the last record appended
	recent  []seqBatch
}

type seqBatch struct {
	firstSeq, lastSeq int32
	firstOffset       int64
}

// producerStates tracks the idempotent producers of one partition. The
// partition's append lock guards it.
type producerStates map[int64]*producerState

// lastSequence is a batch's last sequence; sequences wrap at MaxInt32.
func lastSequence(h plog.BatchHeader) int32 {
	return addSeq(h.BaseSequence, h.LastOffsetDelta)
}

func addSeq(seq, n int32) int32 {
	if seq > math.MaxInt32-n {
		return n - (math.MaxInt32 - seq) - 1
	}
	return seq + n
}

// check decides a batch from an idempotent producer: append it (nil,
// false), answer it as already written at dupOffset (nil, true), or
// reject it. A producer the partition does not know yet (new, or older
// than what the log holds) starts at whatever sequence it sends.
func (ps producerStates) check(h plog.BatchHeader) (dupOffset int64, dup bool, reject *kerr.Error) {
	st := ps[h.ProducerID]
	switch {
	case st == nil:
		return 0, false, nil
	case h.ProducerEpoch < st.epoch:
		return 0, false, kerr.InvalidProducerEpoch
	case h.ProducerEpoch > st.epoch:
		if h.BaseSequence != 0 {
			return 0, false, kerr.OutOfOrderSequenceNumber
		}
		return 0, false, nil
	}
	last := lastSequence(h)
	for _, b := range st.recent {
		if b.firstSeq == h.BaseSequence && b.lastSeq == last {
			return b.firstOffset, true, nil
		}
	}
	if h.BaseSequence != addSeq(st.lastSeq, 1) {
		return 0, false, kerr.OutOfOrderSequenceNumber
	}
	return 0, false, nil
}

// record notes an appended batch.
func (ps producerStates) record(h plog.BatchHeader, firstOffset int64) {
	if h.ProducerID < 0 {
		return
	}
	st := ps[h.ProducerID]
	if st == nil || h.ProducerEpoch != st.epoch {
		st = &producerState{epoch: h.ProducerEpoch}
		ps[h.ProducerID] = st
	}
	st.lastSeq = lastSequence(h)
	st.recent = append(st.recent, seqBatch{firstSeq: h.BaseSequence, lastSeq: st.lastSeq, firstOffset: firstOffset})
	if len(st.recent) > recentBatches {
		st.recent = st.recent[len(st.recent)-recentBatches:]
	}
}
