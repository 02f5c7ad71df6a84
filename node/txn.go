package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/batch"
	"github.com/strata-io/strata/meta"
	plog "github.com/strata-io/strata/node/log"
	"github.com/strata-io/strata/tier"
)

// A partition's side of transactions. Transactional batches are appended
// like idempotent ones, once the transaction coordinator's state (the
// metadata this node follows) says the producer's transaction holds the
// partition (KIP-890's verification: no batch can open a transaction the
// coordinator would never end). The coordinator ends a transaction with a
// marker, a control batch it asks each partition's leader to write
// (WriteTxnMarkers, Kafka's API 27, over the node's RPC). The producer
// state follows both on leaders and followers: the open transactions give
// the last stable offset, and aborts go to the aborted transaction index.

// txnVerifyWait bounds how long a transactional produce waits for this
// node's copy of the metadata to show its partition added: the
// coordinator answered AddPartitionsToTxn once the change committed, and
// this node applies it a moment later.
const txnVerifyWait = 2 * time.Second

// verifyTxn checks, against the coordinator's state, that a
// transactional batch belongs to the ongoing transaction of txnID that
// holds topic/p: INVALID_PRODUCER_EPOCH for a producer the coordinator
// has fenced, INVALID_TXN_STATE for a partition not added (or a
// transaction not ongoing).
//
// Under transactions v2 a produce of v12 or later adds its partition to
// the transaction itself (KIP-890 part 2): when the coordinator's state
// does not hold it yet, this node proposes the add, which the metadata
// refuses as the coordinator would (a fenced epoch, a transaction being
// ended: CONCURRENT_TRANSACTIONS, which the client retries).
func (n *Node) verifyTxn(ctx context.Context, txnID string, h plog.BatchHeader, topic string, p int32, produceVersion int16) error {
	if txnID == "" {
		return fmt.Errorf("%w: a transactional batch without a transactional id", kerr.InvalidTxnState)
	}
	want := meta.TxnPartition{Topic: topic, Partition: p}
	deadline := time.Now().Add(txnVerifyWait)
	added := false
	for {
		v := n.cfg.Meta.Server().FSM().View()
		t, ok, err := v.Transaction(txnID)
		implicit := produceVersion >= 12 && !added && v.TxnV2()
		v.Close()
		switch {
		case err != nil:
			return fmt.Errorf("%w: %v", kerr.UnknownServerError, err)
		case ok && t.ProducerID == h.ProducerID && t.Epoch > h.ProducerEpoch:
			return fmt.Errorf("%w: %s is at epoch %d, the batch has %d", kerr.InvalidProducerEpoch, txnID, t.Epoch, h.ProducerEpoch)
		case ok && t.ProducerID == h.ProducerID && t.Epoch == h.ProducerEpoch && t.State == meta.TxnOngoing && slices.Contains(t.Partitions, want):
			return nil
		case implicit:
			if err := n.addToTxn(ctx, txnID, h, want); err != nil {
				return err
			}
			added = true // this node's copy of the metadata shows it soon
			continue
		}
		if !time.Now().Before(deadline) || ctx.Err() != nil {
			if !ok {
				return fmt.Errorf("%w: no transaction %s", kerr.InvalidTxnState, txnID)
			}
			return fmt.Errorf("%w: transaction %s (producer %d epoch %d, %s) does not hold %s/%d", kerr.InvalidTxnState,
				txnID, t.ProducerID, t.Epoch, t.State, topic, p)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// addToTxn adds a partition to the producer's transaction for a produce
// under transactions v2, mapping the metadata's refusal to the produce
// error Kafka gives.
func (n *Node) addToTxn(ctx context.Context, txnID string, h plog.BatchHeader, tp meta.TxnPartition) error {
	pctx, cancel := context.WithTimeout(ctx, txnVerifyWait)
	defer cancel()
	res, err := n.cfg.Meta.Propose(pctx, &meta.AddTxnPartitions{ID: txnID, ProducerID: h.ProducerID, Epoch: h.ProducerEpoch,
		Partitions: []meta.TxnPartition{tp}, NowMs: time.Now().UnixMilli()})
	if err == nil {
		err = res.Err
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, meta.ErrProducerFenced):
		return fmt.Errorf("%w: %v", kerr.InvalidProducerEpoch, err)
	case errors.Is(err, meta.ErrConcurrentTransactions):
		return fmt.Errorf("%w: %v", kerr.ConcurrentTransactions, err)
	case errors.Is(err, meta.ErrInvalidProducerIDMapping):
		return fmt.Errorf("%w: %v", kerr.InvalidProducerIDMapping, err)
	case errors.Is(err, meta.ErrInvalidTxnState):
		return fmt.Errorf("%w: %v", kerr.InvalidTxnState, err)
	case errors.Is(err, meta.ErrUnknownTopic):
		return fmt.Errorf("%w: %v", kerr.UnknownTopicOrPartition, err)
	}
	// The controller unreachable or changing: retriable.
	return fmt.Errorf("%w: adding %s/%d to transaction %s: %v", kerr.NotEnoughReplicas, tp.Topic, tp.Partition, txnID, err)
}

// txnOpen reports whether the producer's transaction is open on the
// partition at the batch's epoch, and how many markers the producer has
// had: a batch verified against the coordinator is appended only if no
// marker came in between (it would belong to a transaction that ended).
// Called with appendMu held.
func (ol *openLog) txnOpen(h plog.BatchHeader) (open bool, markers uint32) {
	st := ol.producers[h.ProducerID]
	if st == nil {
		return false, 0
	}
	return st.inTxn && st.epoch == h.ProducerEpoch, st.markers
}

// markerBatch encodes a transaction marker: a control batch of one record
// whose key is the marker's version and type, whose value its version and
// the coordinator epoch, as Kafka writes them.
func markerBatch(producerID int64, epoch int16, commit bool, coordinatorEpoch int32, now time.Time) []byte {
	typ := int16(markerAbort)
	if commit {
		typ = markerCommit
	}
	key := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 0), uint16(typ))
	value := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint16(nil, 0), uint32(coordinatorEpoch))
	ms := now.UnixMilli()
	body := batch.EncodeRecord(batch.Record{Offset: 0, Timestamp: ms, Key: key, Value: value}, 0, ms)
	return batch.Seal(kmsg.RecordBatch{
		FirstOffset:          0,
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           0x10 | 0x20, // transactional, control
		LastOffsetDelta:      0,
		FirstTimestamp:       ms,
		MaxTimestamp:         ms,
		ProducerID:           producerID,
		ProducerEpoch:        epoch,
		FirstSequence:        -1,
		NumRecords:           1,
		Records:              body,
	})
}

// writeTxnMarkers writes the markers the coordinator asks for, each to a
// partition this node leads, and answers once each is replicated as an
// acks=all produce would be.
func (n *Node) writeTxnMarkers(ctx context.Context, req *kmsg.WriteTxnMarkersRequest) *kmsg.WriteTxnMarkersResponse {
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	for _, m := range req.Markers {
		rm := kmsg.NewWriteTxnMarkersResponseMarker()
		rm.ProducerID = m.ProducerID
		for _, t := range m.Topics {
			rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
				rp.Partition = p
				rp.ErrorCode = n.writeMarker(ctx, t.Topic, p, m)
				rt.Partitions = append(rt.Partitions, rp)
			}
			rm.Topics = append(rm.Topics, rt)
		}
		resp.Markers = append(resp.Markers, rm)
	}
	return resp
}

func (n *Node) writeMarker(ctx context.Context, topic string, p int32, m kmsg.WriteTxnMarkersRequestMarker) int16 {
	l, part, kerrCode := n.partition(topic, p)
	if kerrCode != nil {
		return kerrCode.Code
	}
	if n.diskFull.Load() {
		return kerr.KafkaStorageError.Code
	}
	minISR := minInsyncReplicas(l.configs())
	if len(part.ISR) < minISR {
		return kerr.NotEnoughReplicas.Code
	}
	res, err := l.appendMarker(m, part.LeaderEpoch)
	if err != nil {
		n.logger.Warn("transaction marker not written", "topic", topic, "partition", p, "producer_id", m.ProducerID, "error", err)
		return errorCode(err)
	}
	n.appended(l, topic, p)
	n.notifyAppended()
	return n.waitReplicated(ctx, l, res.LastOffset, minISR, part.LeaderEpoch)
}

// appendMarker appends a marker as the partition's leader. A marker from
// an older coordinator epoch than the producer's last is fenced
// (TRANSACTION_COORDINATOR_FENCED); one of an older producer epoch
// (INVALID_PRODUCER_EPOCH) too.
func (ol *openLog) appendMarker(m kmsg.WriteTxnMarkersRequestMarker, leaderEpoch int32) (plog.AppendResult, error) {
	ol.appendMu.Lock()
	defer ol.appendMu.Unlock()
	if st := ol.producers[m.ProducerID]; st != nil {
		switch {
		case m.CoordinatorEpoch < st.coordinatorEpoch:
			return plog.AppendResult{}, fmt.Errorf("%w: marker of coordinator epoch %d after %d", kerr.TransactionCoordinatorFenced, m.CoordinatorEpoch, st.coordinatorEpoch)
		case m.ProducerEpoch < st.epoch:
			return plog.AppendResult{}, fmt.Errorf("%w: marker of epoch %d, the producer is at %d", kerr.InvalidProducerEpoch, m.ProducerEpoch, st.epoch)
		}
	}
	batch := markerBatch(m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch, time.Now())
	res, err := ol.Append(batch, leaderEpoch)
	if err != nil {
		return res, err
	}
	return res, ol.noteBatches(batch)
}

// readCommittedAborted lists the aborted transactions in what a
// read_committed fetch returns: the range from fetchOffset to the end of
// data, from the local indexes, or through aborted (the tier's too) when
// set.
func readCommittedAborted(l *openLog, fetchOffset int64, data []byte, aborted func(from, upTo int64) ([]plog.AbortedTxn, error)) ([]kmsg.FetchResponseTopicPartitionAbortedTransaction, error) {
	end := int64(-1)
	for b := data; len(b) >= plog.BatchHeaderBytes; {
		h, err := plog.ParseBatchHeader(b)
		if err != nil || h.Size() > int64(len(b)) {
			break
		}
		end = h.LastOffset() + 1
		b = b[h.Size():]
	}
	if end < 0 {
		return nil, nil
	}
	if aborted == nil {
		return abortedOf(l.AbortedTxns(fetchOffset, end)), nil
	}
	list, err := aborted(fetchOffset, end)
	if err != nil {
		return nil, err
	}
	return abortedOf(list), nil
}

func abortedOf(list []plog.AbortedTxn) []kmsg.FetchResponseTopicPartitionAbortedTransaction {
	var out []kmsg.FetchResponseTopicPartitionAbortedTransaction
	for _, a := range list {
		at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
		at.ProducerID, at.FirstOffset = a.ProducerID, a.FirstOffset
		out = append(out, at)
	}
	return out
}

// describeProducers lists each led partition's active producers: epoch,
// last sequence, coordinator epoch and the open transaction's first
// offset (-1: none), as kafka-transactions.sh describe-producers shows.
func (n *Node) describeProducers(req *kmsg.DescribeProducersRequest) *kmsg.DescribeProducersResponse {
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewDescribeProducersResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewDescribeProducersResponseTopicPartition()
			rp.Partition = p
			l, _, kerrCode := n.partition(t.Topic, p)
			if kerrCode != nil {
				rp.ErrorCode = kerrCode.Code
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			l.appendMu.Lock()
			for _, id := range slices.Sorted(maps.Keys(l.producers)) {
				st := l.producers[id]
				ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
				ap.ProducerID, ap.ProducerEpoch, ap.LastSequence = id, int32(st.epoch), st.lastSeq
				ap.LastTimestamp, ap.CoordinatorEpoch, ap.CurrentTxnStartOffset = -1, st.coordinatorEpoch, -1
				if st.inTxn {
					ap.CurrentTxnStartOffset = st.txnFirst
				}
				rp.ActiveProducers = append(rp.ActiveProducers, ap)
			}
			l.appendMu.Unlock()
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// remoteTxnIndexes caches uploaded segments' aborted transaction indexes
// by .log object key (objects never change; a segment without one caches
// nil). Bounded: cleared whole when it reaches maxCachedTxnIndexes.
type remoteTxnIndexes struct {
	mu sync.Mutex
	m  map[string][]plog.AbortedTxn
}

const maxCachedTxnIndexes = 4096

func (c *remoteTxnIndexes) get(ctx context.Context, store tier.Store, key string) ([]plog.AbortedTxn, error) {
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return e, nil
	}
	e, err := tier.ReadAbortedTxns(ctx, store, key)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedTxnIndexes {
		c.m = map[string][]plog.AbortedTxn{}
	}
	c.m[key] = e
	c.mu.Unlock()
	return e, nil
}

// abortedFrom lists the aborted transactions overlapping [from, upTo)
// for a read_committed fetch that read from the tier: the uploaded
// segments' indexes from the one holding from, then the local log's
// (a transaction read in the bucket may have aborted in a segment still
// on disk), stopping at the first entry whose last stable offset reaches
// upTo (Kafka's rule).
func (n *Node) abortedFrom(ctx context.Context, l *openLog, part meta.Partition, from, upTo int64) ([]plog.AbortedTxn, error) {
	segs, err := n.manifest(part)
	if err != nil {
		return nil, err
	}
	var out []plog.AbortedTxn
	for _, s := range segs {
		if s.LastOffset < from || s.BaseOffset >= l.StartOffset() {
			continue
		}
		entries, err := n.remoteTxnIdx.get(ctx, n.cfg.Tier, s.ObjectKey)
		if err != nil {
			return nil, fmt.Errorf("%w: aborted transactions of %s: %v", plog.ErrIO, s.ObjectKey, err)
		}
		for _, e := range entries {
			if e.LastOffset >= from && e.FirstOffset < upTo {
				out = append(out, e)
			}
			if e.LastStableOffset >= upTo {
				return out, nil
			}
		}
	}
	return append(out, l.AbortedTxns(max(from, l.StartOffset()), upTo)...), nil
}
