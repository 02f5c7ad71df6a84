package gateway

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/batch"
	"github.com/strata-io/strata/meta"
)

// __consumer_offsets is a read-only internal topic: its records are
// generated from the committed offsets in the metadata state
// (meta/offsetslog.go), in Kafka's offset-commit key (v1) and value (v3)
// formats, so that lag monitors that consume it see what they would on
// Kafka. It is listed as internal (clients never match it by regex), is
// led by the metadata controller and replicated over the nodes (as the
// state is), and refuses writes as Kafka does.

const offsetsTopic = meta.OffsetsTopic

var offsetsTopicID = meta.OffsetsTopicID

// offsetsTopicMetadata is its Metadata entry.
func offsetsTopicMetadata(brokers []broker, controller int32) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := offsetsTopic
	mt.Topic, mt.TopicID, mt.IsInternal = &name, offsetsTopicID, true
	var ids []int32
	for _, b := range brokers {
		ids = append(ids, b.id)
	}
	for p := range int32(meta.OffsetsTopicPartitions) {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition, mp.Leader, mp.Replicas, mp.ISR = p, controller, ids, ids
		if len(ids) == 0 {
			mp.Leader, mp.ErrorCode = -1, kerr.LeaderNotAvailable.Code
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// offsetsTopicPoll is how often a long-polling fetch of the topic reads
// the state again.
const offsetsTopicPoll = 200 * time.Millisecond

// fetchOffsetsTopic answers the request's partitions of
// __consumer_offsets (at slots): each from the committed offsets at or
// past its fetch offset. When wait is set and none has records, it reads
// again until the deadline.
func (g *Gateway) fetchOffsetsTopic(ctx context.Context, req *kmsg.FetchRequest, resp *kmsg.FetchResponse, slots []slot, deadline time.Time, wait bool) {
	for {
		from := map[int32]int64{}
		for _, s := range slots {
			rp := req.Topics[s.i].Partitions[s.j]
			if rp.Partition >= 0 && rp.Partition < meta.OffsetsTopicPartitions {
				from[rp.Partition] = max(rp.FetchOffset, 0)
			}
		}
		r, err := g.meta.Read(ctx, meta.ReadRequest{Kind: "consumer_offsets", LogFrom: from})
		byPart := map[int32][]meta.Offset{}
		if err == nil {
			for _, o := range r.Offsets {
				p := meta.OffsetsPartition(o.Group)
				byPart[p] = append(byPart[p], o)
			}
		}
		got := false
		for _, s := range slots {
			rp := req.Topics[s.i].Partitions[s.j]
			sp := &resp.Topics[s.i].Partitions[s.j]
			switch {
			case rp.Partition < 0 || rp.Partition >= meta.OffsetsTopicPartitions:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			case err != nil:
				sp.ErrorCode = kerr.NotLeaderForPartition.Code // retriable: the controller may be moving
				continue
			}
			end := r.LogEnds[rp.Partition]
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = end, end, 0
			if rp.FetchOffset < 0 || rp.FetchOffset > end {
				sp.ErrorCode = kerr.OffsetOutOfRange.Code
				continue
			}
			sp.ErrorCode = 0
			if b := offsetsBatch(byPart[rp.Partition], int(rp.PartitionMaxBytes)); len(b) > 0 {
				sp.RecordBatches, got = b, true
			}
		}
		if got || !wait || err != nil || time.Until(deadline) <= 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(offsetsTopicPoll, time.Until(deadline))):
		}
	}
}

// offsetsBatch encodes commits and group metadata (by log offset) as one
// record batch of at most maxBytes, or of the first record when that
// alone is more.
func offsetsBatch(os []meta.Offset, maxBytes int) []byte {
	if len(os) == 0 {
		return nil
	}
	base, firstTs, maxTs := os[0].LogOffset, os[0].CommitTimeMs, os[0].CommitTimeMs
	var body []byte
	n, last := 0, base
	for _, o := range os {
		var key, value []byte // no value: a tombstone, the key was deleted
		switch {
		case o.IsGroupMetadata(): // the value is Kafka's GroupMetadataValue already
			key = (&kmsg.GroupMetadataKey{Version: 2, Group: o.Group}).AppendTo(nil)
			if !o.Deleted {
				value = o.Value
			}
		default:
			key = (&kmsg.OffsetCommitKey{Version: 1, Group: o.Group, Topic: o.Topic, Partition: o.Partition}).AppendTo(nil)
			if !o.Deleted {
				value = (&kmsg.OffsetCommitValue{Version: 3, Offset: o.Offset, LeaderEpoch: o.LeaderEpoch, Metadata: o.Metadata,
					CommitTimestamp: o.CommitTimeMs}).AppendTo(nil)
			}
		}
		enc := batch.EncodeRecord(batch.Record{Offset: o.LogOffset, Timestamp: o.CommitTimeMs, Key: key, Value: value}, base, firstTs)
		if n > 0 && batch.Overhead+len(body)+len(enc) > maxBytes {
			break
		}
		body = append(body, enc...)
		n, last, maxTs = n+1, o.LogOffset, max(maxTs, o.CommitTimeMs)
	}
	return batch.Encode(base, last, firstTs, maxTs, n, body)
}

// listOffsetsTopic answers ListOffsets for a partition of
// __consumer_offsets: earliest 0, latest its end, and by timestamp the
// first commit at or after it.
func (g *Gateway) listOffsetsTopic(ctx context.Context, rp kmsg.ListOffsetsRequestTopicPartition, sp *kmsg.ListOffsetsResponseTopicPartition) {
	if rp.Partition < 0 || rp.Partition >= meta.OffsetsTopicPartitions {
		sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
		return
	}
	r, err := g.meta.Read(ctx, meta.ReadRequest{Kind: "consumer_offsets", LogFrom: map[int32]int64{rp.Partition: 0}})
	if err != nil {
		sp.ErrorCode = kerr.NotLeaderForPartition.Code
		return
	}
	end := r.LogEnds[rp.Partition]
	sp.ErrorCode, sp.LeaderEpoch, sp.Timestamp = 0, 0, -1
	switch rp.Timestamp {
	case -2: // earliest
		sp.Offset = 0
	case -1: // latest
		sp.Offset = end
	case -3: // the record with the largest timestamp
		sp.Offset = -1
		for _, o := range r.Offsets {
			if o.CommitTimeMs >= sp.Timestamp {
				sp.Offset, sp.Timestamp = o.LogOffset, o.CommitTimeMs
			}
		}
	default:
		sp.Offset = -1
		for _, o := range r.Offsets { // by log offset
			if o.CommitTimeMs >= rp.Timestamp {
				sp.Offset, sp.Timestamp = o.LogOffset, o.CommitTimeMs
				break
			}
		}
	}
}
