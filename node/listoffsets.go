package node

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Special ListOffsets timestamps.
const (
	offsetLatest        = -1
	offsetEarliest      = -2
	offsetMaxTimestamp  = -3
	offsetEarliestLocal = -4
	offsetLatestTiered  = -5
)

// listOffsets answers earliest, latest, max-timestamp and by-timestamp
// lookups, over the tier and the local log.
func (n *Node) listOffsets(ctx context.Context, req *kmsg.ListOffsetsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
			l, part, kerrCode := n.partition(rt.Topic, rp.Partition)
			if kerrCode != nil {
				sp.ErrorCode = kerrCode.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			sp.LeaderEpoch = part.LeaderEpoch
			hw := l.highWatermark()
			if req.IsolationLevel == 1 {
				hw = l.lastStableOffset(hw) // read_committed sees up to the LSO
			}
			switch rp.Timestamp {
			case offsetLatest:
				sp.Offset = hw
			case offsetEarliest:
				sp.Offset = n.logStartOffset(l, part)
			case offsetEarliestLocal:
				sp.Offset = l.StartOffset()
			case offsetLatestTiered:
				// The last uploaded offset; -1 when nothing is.
				if span, err := n.tierSpan(rt.Topic, rp.Partition); err != nil {
					sp.ErrorCode = errorCode(err)
				} else if span.ok {
					sp.Offset = span.last.LastOffset
				}
			case offsetMaxTimestamp:
				ts, off, found, err := l.MaxTimestamp()
				if err == nil {
					if !found {
						ts = -1 << 63
					}
					if rts, roff, rfound, rerr := n.remoteMaxTimestamp(ctx, l, part, ts); rerr != nil {
						err = rerr
					} else if rfound {
						ts, off, found = rts, roff, true
					}
				}
				if err != nil {
					sp.ErrorCode = errorCode(err)
				} else if found {
					sp.Timestamp, sp.Offset = ts, off
				}
			default:
				off, ts, found, err := n.remoteOffsetForTimestamp(ctx, l, part, rp.Timestamp)
				if err == nil && !found {
					off, ts, found, err = l.OffsetForTimestamp(rp.Timestamp, hw)
				}
				if err != nil {
					sp.ErrorCode = errorCode(err)
				} else if found {
					sp.Timestamp, sp.Offset = ts, off
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
