package node

import (
	"context"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sys/unix"

	"github.com/strata-io/strata/meta"
	plog "github.com/strata-io/strata/node/log"
)

// deleteRecords raises each partition's log start offset (Offset -1: to
// the high watermark) and deletes the segments below it, uploaded ones
// included.
func (n *Node) deleteRecords(ctx context.Context, req *kmsg.DeleteRecordsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition, sp.LowWatermark = rp.Partition, -1
			l, part, kerrCode := n.partition(rt.Topic, rp.Partition)
			if kerrCode != nil {
				sp.ErrorCode = kerrCode.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			offset := rp.Offset
			if offset == -1 {
				offset = l.highWatermark()
			}
			start, err := n.deleteRecordsBefore(ctx, l, part, offset)
			sp.ErrorCode, sp.LowWatermark = errorCode(err), start
			if err != nil {
				sp.LowWatermark = -1
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// deleteRecordsBefore raises a partition's log start offset to offset
// and returns the new start. A tiered partition, or one with uploaded
// segments, records the start in meta and drops the segments below it
// from the tier: meta's start is what makes local segments below it
// removable, and what keeps an upload that lands later from bringing the
// deleted records back.
func (n *Node) deleteRecordsBefore(ctx context.Context, l *openLog, part meta.Partition, offset int64) (int64, error) {
	if hw := l.highWatermark(); offset < 0 || offset > hw {
		return 0, fmt.Errorf("%w: delete records before %d, high watermark %d", plog.ErrOffsetOutOfRange, offset, hw)
	}
	start := n.logStartOffset(l, part)
	if offset <= start {
		return start, nil
	}
	if n.cfg.Tier != nil {
		if span, err := n.tierSpan(part.Topic, part.Partition); err != nil {
			return 0, fmt.Errorf("%w: manifest: %v", plog.ErrIO, err)
		} else if span.ok || l.tier.enabled.Load() {
			if err := n.deleteTiered(ctx, l, part, offset); err != nil {
				return 0, err
			}
			return offset, nil
		}
	}
	return l.DeleteRecordsBefore(offset)
}

// offsetForLeaderEpoch answers where each requested leader epoch ended,
// fencing a caller whose view of the current epoch is stale.
func (n *Node) offsetForLeaderEpoch(req *kmsg.OffsetForLeaderEpochRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition, sp.LeaderEpoch, sp.EndOffset = rp.Partition, -1, -1
			l, part, kerrCode := n.partition(rt.Topic, rp.Partition)
			switch {
			case kerrCode != nil:
				sp.ErrorCode = kerrCode.Code
			case rp.CurrentLeaderEpoch >= 0 && rp.CurrentLeaderEpoch < part.LeaderEpoch:
				sp.ErrorCode = kerr.FencedLeaderEpoch.Code
			case rp.CurrentLeaderEpoch > part.LeaderEpoch:
				sp.ErrorCode = kerr.UnknownLeaderEpoch.Code
			default:
				history := n.epochHistory(l, part)
				sp.LeaderEpoch, sp.EndOffset = plog.EndOffsetForEpoch(history, rp.LeaderEpoch, l.EndOffset())
				if sp.EndOffset < 0 && rp.LeaderEpoch >= 0 && l.EndOffset() > l.StartOffset() {
					// A consumer that read at that epoch resets its
					// position: say why.
					n.logger.Warn("leader epoch unknown here", "topic", rt.Topic, "partition", rp.Partition, "epoch", rp.LeaderEpoch,
						"leader_epoch", part.LeaderEpoch, "history", epochsString(history), "log_start", l.StartOffset(), "log_end", l.EndOffset())
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// describeLogDirs reports this node's partition directory: each requested
// partition's size, and the disk's total and free bytes.
func (n *Node) describeLogDirs(req *kmsg.DescribeLogDirsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	d := kmsg.NewDescribeLogDirsResponseDir()
	d.Dir = fmt.Sprintf("node-%d:%s", n.cfg.ID, n.cfg.DataDir)
	var st unix.Statfs_t
	if err := unix.Statfs(n.cfg.DataDir, &st); err == nil {
		d.TotalBytes, d.UsableBytes = int64(st.Blocks)*st.Bsize, int64(st.Bavail)*st.Bsize
	}
	for _, rt := range req.Topics {
		dt := kmsg.NewDescribeLogDirsResponseDirTopic()
		dt.Topic = rt.Topic
		for _, p := range rt.Partitions {
			l, _, kerrCode := n.partition(rt.Topic, p)
			if kerrCode != nil {
				continue
			}
			dp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
			dp.Partition, dp.Size = p, l.Size()
			dt.Partitions = append(dt.Partitions, dp)
		}
		if len(dt.Partitions) > 0 {
			d.Topics = append(d.Topics, dt)
		}
	}
	resp.Dirs = append(resp.Dirs, d)
	return resp
}

// epochsString shows the newest entries of an epoch history for a log.
func epochsString(h []plog.EpochEntry) string {
	var b strings.Builder
	if len(h) > 8 {
		fmt.Fprintf(&b, "%d older, ", len(h)-8)
		h = h[len(h)-8:]
	}
	for i, e := range h {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d@%d", e.Epoch, e.StartOffset)
	}
	return b.String()
}
