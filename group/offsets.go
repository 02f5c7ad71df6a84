package group

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/meta"
)

// maxMetadataBytes is offset.metadata.max.bytes.
const maxMetadataBytes = 4096

// OffsetCommit records offsets: for a member, fenced by generation; for a
// client outside any group (generation -1), only while the group is empty.
func (c *Coordinator) OffsetCommit(ctx context.Context, req *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	code := int16(0)
	c.mu.Lock()
	g := c.groups[req.Group]
	cg := c.consumers[req.Group]
	switch {
	case req.Group == "":
		code = kerr.InvalidGroupID.Code
	case cg != nil && req.Generation < 0 && req.MemberID == "":
		if len(cg.members) > 0 {
			code = kerr.UnknownMemberID.Code
		}
	case cg != nil:
		code = checkConsumerLocked(cg, req.MemberID, req.Generation)
	case req.Generation < 0 && req.MemberID == "":
		if g != nil && len(g.members) > 0 {
			code = kerr.UnknownMemberID.Code
		}
	default:
		code = c.checkLocked(g, req.MemberID, req.Generation)
		if code == 0 && g.state == stateCompletingRebalance {
			code = kerr.RebalanceInProgress.Code
		}
		if code == 0 {
			g.members[req.MemberID].lastSeen = time.Now()
		}
	}
	c.mu.Unlock()
	now := time.Now().UnixMilli()
	var offsets []meta.Offset
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, code
			md := ""
			if p.Metadata != nil {
				md = *p.Metadata
			}
			if code == 0 && len(md) > maxMetadataBytes {
				rp.ErrorCode = kerr.OffsetMetadataTooLarge.Code
			}
			if rp.ErrorCode == 0 {
				offsets = append(offsets, meta.Offset{Group: req.Group, Topic: t.Topic, Partition: p.Partition,
					Offset: p.Offset, LeaderEpoch: p.LeaderEpoch, Metadata: md, CommitTimeMs: now})
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if len(offsets) == 0 {
		return resp
	}
	if err := c.store.CommitOffsets(ctx, offsets); err != nil {
		c.logger.Warn("offset commit failed", "group", req.Group, "error", err)
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				if resp.Topics[i].Partitions[j].ErrorCode == 0 {
					resp.Topics[i].Partitions[j].ErrorCode = kerr.CoordinatorNotAvailable.Code
				}
			}
		}
	}
	return resp
}

// OffsetFetch returns committed offsets, -1 where none is committed.
func (c *Coordinator) OffsetFetch(ctx context.Context, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	committed, err := c.store.GroupOffsets(ctx, req.Group)
	if err != nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	type tp struct {
		topic     string
		partition int32
	}
	var pending map[meta.TxnPartition]bool
	if ps, ok := c.store.(PendingOffsetStore); ok && req.RequireStable {
		if pending, err = ps.PendingTxnOffsets(ctx, req.Group); err != nil {
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
			return resp
		}
	}
	byTP := map[tp]meta.Offset{}
	var order []tp
	for _, o := range committed {
		k := tp{o.Topic, o.Partition}
		byTP[k] = o
		order = append(order, k)
	}
	add := func(topic string, partitions []int32) {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic = topic
		for _, p := range partitions {
			rp := kmsg.NewOffsetFetchResponseTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = p, -1, -1
			empty := ""
			rp.Metadata = &empty
			if o, ok := byTP[tp{topic, p}]; ok {
				rp.Offset, rp.LeaderEpoch = o.Offset, o.LeaderEpoch
				md := o.Metadata
				rp.Metadata = &md
			}
			if pending[meta.TxnPartition{Topic: topic, Partition: p}] {
				rp.ErrorCode, rp.Offset = kerr.UnstableOffsetCommit.Code, -1
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if req.Topics == nil {
		partitions := map[string][]int32{}
		var topics []string
		for _, k := range order {
			if _, ok := partitions[k.topic]; !ok {
				topics = append(topics, k.topic)
			}
			partitions[k.topic] = append(partitions[k.topic], k.partition)
		}
		for _, t := range topics {
			add(t, partitions[t])
		}
		return resp
	}
	for _, t := range req.Topics {
		add(t.Topic, t.Partitions)
	}
	return resp
}

// CheckMember fences a transactional offset commit (TxnOffsetCommit v3+,
// KIP-447) by the group's generation as OffsetCommit is fenced: 0 when
// member is in group at generation, or when the commit names no member
// (generation -1: an older client, or a producer outside the group).
func (c *Coordinator) CheckMember(group, member string, generation int32) int16 {
	if generation < 0 && member == "" {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cg := c.consumers[group]; cg != nil {
		return checkConsumerLocked(cg, member, generation)
	}
	return c.checkLocked(c.groups[group], member, generation)
}
