package node

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	plog "github.com/strata-io/strata/node/log"
)

// produce appends each partition's batch. acks=1 is answered once the
// leader appended; acks=all once the high watermark passed the batch
// (every ISR member has it), with at least min.insync.replicas in the
// ISR: NOT_ENOUGH_REPLICAS before appending, NOT_ENOUGH_REPLICAS_AFTER_APPEND
// if the ISR shrank while waiting, REQUEST_TIMED_OUT when the request's
// timeout passed first. On a single replica the append is the commit.
//
// appended is called when every partition has been appended and only the
// wait for replicas is left: the gateway then sends the connection's next
// produce, whose appends come after these, while this one waits.
func (n *Node) produce(ctx context.Context, req *kmsg.ProduceRequest, appended func()) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	badAcks := req.Acks != 0 && req.Acks != 1 && req.Acks != -1
	wrote, failed := false, false
	type wait struct {
		t, p   int
		ol     *openLog
		last   int64
		minISR int
		epoch  int32 // the leadership that wrote it
	}
	var waits []wait
	start := time.Now()
	txnID := ""
	if req.TransactionID != nil {
		txnID = *req.TransactionID
	}
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = -1, -1, -1
			if badAcks {
				sp.ErrorCode = kerr.InvalidRequiredAcks.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			l, part, kerrCode := n.partition(rt.Topic, rp.Partition)
			if kerrCode != nil {
				sp.ErrorCode = kerrCode.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			if n.diskFull.Load() {
				sp.ErrorCode, sp.ErrorMessage = kerr.KafkaStorageError.Code, kmsg.StringPtr(errDiskFull.Error())
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			minISR := minInsyncReplicas(l.configs())
			if req.Acks == -1 && len(part.ISR) < minISR {
				sp.ErrorCode = kerr.NotEnoughReplicas.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			topic, p := rt.Topic, rp.Partition
			if compacted(l.configs()) {
				if err := plog.CheckKeys(rp.Records, cleanerCodec); err != nil {
					sp.ErrorCode = kerr.InvalidRecord.Code
					msg := err.Error()
					sp.ErrorMessage = &msg
					st.Partitions = append(st.Partitions, sp)
					continue
				}
			}
			res, dup, err := appendIdempotent(l, rp.Records, part.LeaderEpoch, func(h plog.BatchHeader) error {
				return n.verifyTxn(ctx, txnID, h, topic, p, req.Version)
			})
			if dup {
				// A retry of a batch already written: answered as
				// written, once replicated as a first write would be
				// (the first copy may be in this log only, and lost
				// with a leader change).
				sp.BaseOffset, sp.LogStartOffset = res.FirstOffset, l.StartOffset()
				if req.Acks == -1 {
					waits = append(waits, wait{len(resp.Topics), len(st.Partitions), l, res.LastOffset, minISR, part.LeaderEpoch})
				}
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			if err != nil {
				sp.ErrorCode = errorCode(err)
				msg := err.Error()
				sp.ErrorMessage = &msg
				n.logger.Debug("produce refused", "topic", rt.Topic, "partition", rp.Partition, "error", err)
			} else {
				wrote = true
				n.appended(l, rt.Topic, rp.Partition)
				if req.Acks == -1 {
					waits = append(waits, wait{len(resp.Topics), len(st.Partitions), l, res.LastOffset, minISR, part.LeaderEpoch})
				}
				sp.BaseOffset = res.FirstOffset
				sp.LogStartOffset = res.LogStartOffset
				if l.Config().LogAppendTime {
					sp.LogAppendTime = res.AppendTime.UnixMilli()
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if wrote {
		n.notifyAppended()
	}
	for _, st := range resp.Topics {
		for _, sp := range st.Partitions {
			failed = failed || sp.ErrorCode != 0
		}
	}
	appendedAt := time.Now()
	n.stages.produceAppend.Observe(appendedAt.Sub(start).Seconds())
	if len(waits) > 0 && !failed {
		appended()
	}
	if len(waits) > 0 {
		wctx, cancel := context.WithTimeout(ctx, time.Duration(max(req.TimeoutMillis, 0))*time.Millisecond)
		defer cancel()
		for _, w := range waits {
			if code := n.waitReplicated(wctx, w.ol, w.last, w.minISR, w.epoch); code != 0 {
				sp := &resp.Topics[w.t].Partitions[w.p]
				sp.ErrorCode, sp.BaseOffset, sp.LogAppendTime = code, -1, -1
			}
		}
		n.stages.replicate.Observe(time.Since(appendedAt).Seconds())
	}
	return resp
}

// appendIdempotent appends a batch, first checking an idempotent
// producer's epoch and sequence: a duplicate of one of its recent batches
// is not written again but answered with the offset it got (dup true); a
// gap or an old epoch is rejected.
//
// A client may not write a control batch (a transaction marker is the
// coordinator's to write: INVALID_RECORD, as Kafka's LogValidator). A
// transactional batch that would open the producer's transaction on the
// partition is first checked with verify (see Node.verifyTxn), and still
// refused if a marker ended a transaction meanwhile.
func appendIdempotent(l *openLog, batch []byte, leaderEpoch int32, verify func(plog.BatchHeader) error) (plog.AppendResult, bool, error) {
	h, err := plog.ParseBatchHeader(batch)
	switch {
	case err == nil && h.Control():
		return plog.AppendResult{}, false, fmt.Errorf("%w: a client may not write a control batch", plog.ErrInvalidRecord)
	case err == nil && h.Transactional() && h.ProducerID < 0:
		return plog.AppendResult{}, false, fmt.Errorf("%w: a transactional batch without a producer id", plog.ErrInvalidRecord)
	}
	if err != nil || h.ProducerID < 0 {
		res, err := l.Append(batch, leaderEpoch)
		return res, false, err
	}
	var markers uint32
	verified := false
	if h.Transactional() {
		l.appendMu.Lock()
		open, m := l.txnOpen(h)
		l.appendMu.Unlock()
		if !open {
			if verify == nil {
				return plog.AppendResult{}, false, fmt.Errorf("%w: transactional batch from producer %d", kerr.InvalidTxnState, h.ProducerID)
			}
			if err := verify(h); err != nil {
				return plog.AppendResult{}, false, err
			}
			markers, verified = m, true
		}
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if verified {
		if _, m := l.txnOpen(h); m != markers {
			if st := l.producers[h.ProducerID]; st != nil && st.epoch > h.ProducerEpoch {
				// The coordinator fenced the producer meanwhile (a
				// newer producer, or its transaction timed out).
				return plog.AppendResult{}, false, fmt.Errorf("%w: producer %d is at epoch %d, the batch has %d", kerr.InvalidProducerEpoch, h.ProducerID, st.epoch, h.ProducerEpoch)
			}
			return plog.AppendResult{}, false, fmt.Errorf("%w: producer %d's transaction ended while its batch was checked (epoch %d, %d markers, %d before)",
				kerr.InvalidTxnState, h.ProducerID, h.ProducerEpoch, m, markers)
		}
	}
	dupOffset, dup, reject := l.producers.check(h)
	if reject != nil {
		return plog.AppendResult{}, false, reject
	}
	if dup {
		return plog.AppendResult{FirstOffset: dupOffset, LastOffset: dupOffset + int64(h.LastOffsetDelta)}, true, nil
	}
	res, err := l.Append(batch, leaderEpoch)
	if err == nil {
		err = l.noteBatches(batch)
	}
	return res, false, err
}
