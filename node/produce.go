package node

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	plog "github.com/strata-io/strata/node/log"
)

// produce appends each partition's batch. With a single replica the
// append is the commit, so acks=1 and acks=all are answered alike.
func (n *Node) produce(req *kmsg.ProduceRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	badAcks := req.Acks != 0 && req.Acks != 1 && req.Acks != -1
	appended := false
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
			res, dup, err := appendIdempotent(l, rp.Records, part.LeaderEpoch)
			if dup {
				// A retry of a batch already written: answered as written.
				sp.BaseOffset, sp.LogStartOffset = res.FirstOffset, l.StartOffset()
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			if err != nil {
				sp.ErrorCode = errorCode(err)
				msg := err.Error()
				sp.ErrorMessage = &msg
			} else {
				appended = true
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
	if appended {
		n.notifyAppended()
	}
	return resp
}

// appendIdempotent appends a batch, first checking an idempotent
// producer's epoch and sequence: a duplicate of one of its recent batches
// is not written again but answered with the offset it got (dup true); a
// gap or an old epoch is rejected.
func appendIdempotent(l *openLog, batch []byte, leaderEpoch int32) (plog.AppendResult, bool, error) {
	h, err := plog.ParseBatchHeader(batch)
	if err != nil || h.ProducerID < 0 {
		res, err := l.Append(batch, leaderEpoch)
		return res, false, err
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	dupOffset, dup, reject := l.producers.check(h)
	if reject != nil {
		return plog.AppendResult{}, false, reject
	}
	if dup {
		return plog.AppendResult{FirstOffset: dupOffset}, true, nil
	}
	res, err := l.Append(batch, leaderEpoch)
	if err == nil {
		l.producers.record(h, res.FirstOffset)
	}
	return res, false, err
}
