package node

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/bufpool"
	plog "github.com/strata-io/strata/node/log"
)

// maxFetchBytes caps one fetch response, as Kafka's broker-side
// fetch.max.bytes (55 MiB) does; a response bigger than the NATS max
// payload travels in chunks.
const maxFetchBytes = 55 << 20

// fetch reads each partition from its fetch offset, verbatim. It waits up
// to MaxWaitMillis for MinBytes to arrive, and keeps the whole response
// within MaxBytes (but always returns the first batch it finds, so a
// consumer never gets stuck on a large one).
//
// The record data is read into pooled buffers: release gives them back
// once the response has been sent (and nothing references it). hints:
// the caller reads uploaded segments itself, so an offset below the local
// log is answered with a remote hint, not read here.
func (n *Node) fetch(ctx context.Context, req *kmsg.FetchRequest, hints bool) (resp kmsg.Response, release func()) {
	deadline := time.Now().Add(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	budget := int(req.MaxBytes)
	if budget <= 0 || budget > maxFetchBytes {
		budget = maxFetchBytes
	}
	var held [][]byte
	release = func() {
		for _, b := range held {
			bufpool.Put(b)
		}
		held = held[:0]
	}
	var read, waited time.Duration
	defer func() { n.stages.fetched(req.ReplicaID >= 0, read, waited) }()
	for {
		woken := n.appendedCh()
		t0 := time.Now()
		resp, bytes, failed := n.fetchOnce(ctx, req, budget, hints, &held)
		t1 := time.Now()
		read += t1.Sub(t0)
		if bytes >= int(req.MinBytes) || failed || !t1.Before(deadline) {
			return resp, release
		}
		select {
		case <-woken:
		case <-time.After(time.Until(deadline)):
		case <-ctx.Done():
			waited += time.Since(t1)
			return resp, release
		}
		waited += time.Since(t1)
		release() // this round's answer is dropped
	}
}

// fetchOnce reads what the fetch asks for now; the pooled buffers it
// reads into are added to held.
func (n *Node) fetchOnce(ctx context.Context, req *kmsg.FetchRequest, budget int, hints bool, held *[][]byte) (*kmsg.FetchResponse, int, bool) {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	total := 0
	failed := false
	for _, rt := range req.Topics {
		st := kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
			sp.RecordBatches = []byte{}
			l, part, kerrCode := n.partition(rt.Topic, rp.Partition)
			if kerrCode != nil {
				sp.ErrorCode = kerrCode.Code
				failed = true
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			// Consumers read below the high watermark; a follower reads to
			// the log end, and its fetch moves the high watermark.
			limit := int64(-1)
			if req.ReplicaID >= 0 {
				if !n.replicaFetched(l, part, req.ReplicaID, &rp, &sp) {
					// Fenced, or a diverging epoch: answer at once.
					failed = true
					sp.HighWatermark, sp.LogStartOffset = l.highWatermark(), l.StartOffset()
					st.Partitions = append(st.Partitions, sp)
					continue
				}
			}
			hw := l.highWatermark()
			lso := l.lastStableOffset(hw)
			readCommitted := req.ReplicaID < 0 && req.IsolationLevel == 1
			switch {
			case readCommitted:
				limit = lso
			case req.ReplicaID < 0:
				limit = hw
			}
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = hw, lso, n.logStartOffset(l, part)
			if req.ReplicaID >= 0 {
				sp.LogStartOffset = l.StartOffset() // a follower copies the local log
			}
			max := min(int(rp.PartitionMaxBytes), budget-total)
			if max <= 0 && total > 0 {
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			data, err := l.ReadAlloc(bufpool.Get, rp.FetchOffset, max, limit)
			if cap(data) > 0 {
				*held = append(*held, data)
			}
			var aborted func(from, upTo int64) ([]plog.AbortedTxn, error) // the tier's and the local indexes
			if errors.Is(err, plog.ErrOffsetOutOfRange) && rp.FetchOffset < l.StartOffset() && n.remote != nil && req.ReplicaID < 0 {
				// Below the local log: the tier may have it. A gateway
				// that reads the tier itself does so for read_uncommitted
				// only: the aborted transactions of a read_committed read
				// of the tier may be in the local log's indexes too.
				if hints && !readCommitted {
					var hint []byte
					if hint, err = n.remoteHint(l, part, rp.FetchOffset); err == nil {
						sp.ErrorCode, sp.RecordBatches = kerr.OffsetMovedToTieredStorage.Code, hint
						failed = true // the gateway reads it: answer now
						st.Partitions = append(st.Partitions, sp)
						continue
					}
				} else {
					data, err = n.readRemote(ctx, l, part, rp.FetchOffset, max, func(n int) []byte {
						b := bufpool.Get(n)
						*held = append(*held, b) // given back once the response is sent
						return b
					})
					aborted = func(from, upTo int64) ([]plog.AbortedTxn, error) { return n.abortedFrom(ctx, l, part, from, upTo) }
				}
			}
			if err != nil {
				sp.ErrorCode = errorCode(err)
				failed = true
			}
			if data == nil {
				// Kafka sends an empty record set, never a null one;
				// librdkafka rejects null.
				data = []byte{}
			}
			sp.RecordBatches = data
			if readCommitted && err == nil {
				if sp.AbortedTransactions, err = readCommittedAborted(l, rp.FetchOffset, data, aborted); err != nil {
					sp.ErrorCode, sp.RecordBatches, data = errorCode(err), []byte{}, nil
					failed = true
				}
			}
			total += len(data)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, total, failed
}
