package node

import (
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
// lookups.
func (n *Node) listOffsets(req *kmsg.ListOffsetsRequest) kmsg.Response {
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
			hw := l.EndOffset()
			switch rp.Timestamp {
			case offsetLatest:
				sp.Offset = hw
			case offsetEarliest, offsetEarliestLocal:
				sp.Offset = l.StartOffset()
			case offsetLatestTiered:
				// Nothing is tiered yet: Kafka answers -1.
			case offsetMaxTimestamp:
				ts, off, found, err := l.MaxTimestamp()
				if err != nil {
					sp.ErrorCode = errorCode(err)
				} else if found {
					sp.Timestamp, sp.Offset = ts, off
				}
			default:
				off, ts, found, err := l.OffsetForTimestamp(rp.Timestamp, hw)
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
