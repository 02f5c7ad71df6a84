package gateway

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/meta"
)

// alterPartitionAssignments starts, changes or (with null replicas)
// cancels partition moves; the controller completes each once its new
// replicas have caught up.
func (g *Gateway) alterPartitionAssignments(ctx context.Context, req *kmsg.AlterPartitionAssignmentsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	if !g.allowedCluster(ctx, opAlter) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp
	}
	snap, snapErr := g.cache.get(ctx, true)
	for _, rt := range req.Topics {
		st := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			sp.Partition = rp.Partition
			if rp.Replicas != nil && req.GetVersion() >= 1 && !req.AllowReplicationFactorChange && snapErr == nil {
				if p, ok := snap.partition(rt.Topic, rp.Partition); ok && len(rp.Replicas) != len(p.Replicas) {
					sp.ErrorCode, sp.ErrorMessage = kerr.InvalidReplicationFactor.Code, kmsg.StringPtr("the replication factor would change")
					st.Partitions = append(st.Partitions, sp)
					continue
				}
			}
			err := g.propose(ctx, &meta.AlterReassignment{Topic: rt.Topic, Partition: rp.Partition, Target: rp.Replicas})
			sp.ErrorCode, sp.ErrorMessage = metaErrorCode(err), errMessage(err)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// listPartitionReassignments lists the moves in progress, of the named
// partitions or of all.
func (g *Gateway) listPartitionReassignments(ctx context.Context, req *kmsg.ListPartitionReassignmentsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	if !g.allowedCluster(ctx, opDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp
	}
	r, err := g.meta.Read(ctx, meta.ReadRequest{Kind: "reassignments"})
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = metaErrorCode(err), errMessage(err)
		return resp
	}
	wanted := func(topic string, p int32) bool {
		if req.Topics == nil {
			return true
		}
		return slices.ContainsFunc(req.Topics, func(t kmsg.ListPartitionReassignmentsRequestTopic) bool {
			return t.Topic == topic && slices.Contains(t.Partitions, p)
		})
	}
	byTopic := map[string]int{}
	for _, m := range r.Reassignments {
		if !wanted(m.Topic, m.Partition) {
			continue
		}
		i, ok := byTopic[m.Topic]
		if !ok {
			i = len(resp.Topics)
			byTopic[m.Topic] = i
			t := kmsg.NewListPartitionReassignmentsResponseTopic()
			t.Topic = m.Topic
			resp.Topics = append(resp.Topics, t)
		}
		p := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
		p.Partition = m.Partition
		p.Replicas = append(slices.Clone(m.Target), m.Removing()...)
		p.AddingReplicas, p.RemovingReplicas = nonNil(m.Adding()), nonNil(m.Removing())
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, p)
	}
	return resp
}

func nonNil(s []int32) []int32 {
	if s == nil {
		return []int32{}
	}
	return s
}
