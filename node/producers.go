package node

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

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
	// inTxn: the producer's transaction is open on the partition since
	// offset txnFirst (its first transactional batch here); a marker
	// ends it.
	inTxn    bool
	txnFirst int64
	// markers counts the producer's markers; coordinatorEpoch is the
	// newest marker's coordinator epoch (older ones are fenced).
	markers          uint32
	coordinatorEpoch int32
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

// Marker types: a control record's key is its version and type.
const (
	markerAbort  = 0
	markerCommit = 1
)

// markerType reads a control batch's marker: abort or commit, and the
// coordinator epoch that wrote it.
func markerType(batch []byte) (typ int16, coordinatorEpoch int32, err error) {
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(batch); err != nil {
		return 0, 0, fmt.Errorf("%w: control batch: %v", plog.ErrInvalidRecord, err)
	}
	var r kmsg.Record
	if err := r.ReadFrom(rb.Records); err != nil {
		return 0, 0, fmt.Errorf("%w: control record: %v", plog.ErrInvalidRecord, err)
	}
	if len(r.Key) < 4 {
		return 0, 0, fmt.Errorf("%w: control record key of %d bytes", plog.ErrInvalidRecord, len(r.Key))
	}
	if len(r.Value) >= 6 {
		coordinatorEpoch = int32(binary.BigEndian.Uint32(r.Value[2:]))
	}
	switch t := int16(binary.BigEndian.Uint16(r.Key[2:])); t {
	case markerAbort, markerCommit:
		return t, coordinatorEpoch, nil
	default:
		return 0, 0, fmt.Errorf("%w: control record of type %d", plog.ErrInvalidRecord, t)
	}
}

// record notes an appended batch. control is the batch itself when it is
// a control batch (nil otherwise): a marker ends the producer's
// transaction, and an abort returns the aborted transaction for the
// partition's index (its last stable offset still to be set).
func (ps producerStates) record(h plog.BatchHeader, firstOffset int64, control []byte) *plog.AbortedTxn {
	if h.ProducerID < 0 {
		return nil
	}
	st := ps[h.ProducerID]
	if h.Control() {
		typ, coordinatorEpoch, err := markerType(control)
		if err != nil {
			return nil // not a marker: it marks nothing (clients may not write one)
		}
		if st == nil || h.ProducerEpoch > st.epoch {
			// A marker of a newer epoch (the coordinator fenced the
			// producer): the next batch starts its sequence afresh.
			if st == nil {
				st = &producerState{}
				ps[h.ProducerID] = st
			}
			st.epoch, st.lastSeq, st.recent = h.ProducerEpoch, -1, nil
		}
		st.markers++
		st.coordinatorEpoch = max(st.coordinatorEpoch, coordinatorEpoch)
		if !st.inTxn {
			return nil
		}
		st.inTxn = false
		if typ == markerCommit {
			return nil
		}
		return &plog.AbortedTxn{ProducerID: h.ProducerID, FirstOffset: st.txnFirst, LastOffset: firstOffset}
	}
	if st == nil || h.ProducerEpoch != st.epoch {
		next := &producerState{epoch: h.ProducerEpoch}
		if st != nil {
			next.inTxn, next.txnFirst, next.markers, next.coordinatorEpoch = st.inTxn, st.txnFirst, st.markers, st.coordinatorEpoch
		}
		st = next
		ps[h.ProducerID] = st
	}
	st.lastSeq = lastSequence(h)
	st.recent = append(st.recent, seqBatch{firstSeq: h.BaseSequence, lastSeq: st.lastSeq, firstOffset: firstOffset})
	if len(st.recent) > recentBatches {
		st.recent = st.recent[len(st.recent)-recentBatches:]
	}
	if h.Transactional() && !st.inTxn {
		st.inTxn, st.txnFirst = true, firstOffset
	}
	return nil
}

// firstUnstable is the first offset of the earliest transaction still
// open, math.MaxInt64 when none is: the last stable offset is the
// smaller of it and the high watermark.
func (ps producerStates) firstUnstable() int64 {
	first := int64(math.MaxInt64)
	for _, st := range ps {
		if st.inTxn {
			first = min(first, st.txnFirst)
		}
	}
	return first
}

// completeAborted sets an aborted transaction's last stable offset, with
// ps as of just after its marker: the first offset of a transaction still
// open, or the offset after the marker.
func (ps producerStates) completeAborted(a plog.AbortedTxn) plog.AbortedTxn {
	a.LastStableOffset = min(ps.firstUnstable(), a.LastOffset+1)
	return a
}

// noteBatches records appended batches (whole, one after another) in the
// partition's producer state and adds the transactions they abort to the
// log's aborted transaction index. Called with appendMu held.
func (ol *openLog) noteBatches(b []byte) error {
	changed := false
	for len(b) >= plog.BatchHeaderBytes {
		h, err := plog.ParseBatchHeader(b)
		if err != nil || h.Size() > int64(len(b)) {
			break // appended, so checked: not reached
		}
		var control []byte
		if h.Control() {
			control = b[:h.Size()]
		}
		inTxn := ol.producers.inTxn(h.ProducerID)
		if a := ol.producers.record(h, h.BaseOffset, control); a != nil {
			if err := ol.AppendAbortedTxn(ol.producers.completeAborted(*a)); err != nil {
				return err
			}
		}
		changed = changed || inTxn != ol.producers.inTxn(h.ProducerID)
		b = b[h.Size():]
	}
	if changed {
		ol.firstUnstable.Store(ol.producers.firstUnstable())
	}
	return nil
}

func (ps producerStates) inTxn(id int64) bool {
	st := ps[id]
	return st != nil && st.inTxn
}

// setProducers replaces the partition's producer state (rebuilt from a
// snapshot and the log). Called with appendMu held.
func (ol *openLog) setProducers(ps producerStates, snapshotAt int64) {
	ol.producers, ol.snapshotAt, ol.producersStale = ps, snapshotAt, false
	ol.firstUnstable.Store(ps.firstUnstable())
}

// lastStableOffset is the offset below which every transaction has ended
// (committed or aborted): what read_committed reads up to, never past the
// high watermark hw.
func (ol *openLog) lastStableOffset(hw int64) int64 {
	return min(hw, ol.firstUnstable.Load())
}
