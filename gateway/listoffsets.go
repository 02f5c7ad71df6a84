package gateway

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// listOffsets forwards each partition's lookup to its leader node.
func (g *Gateway) listOffsets(ctx context.Context, req *kmsg.ListOffsetsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	var refs []partRef
	for i, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		authorized := g.allowed(ctx, opDescribe, rtTopic, rt.Topic)
		for j, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition, sp.Timestamp, sp.Offset, sp.LeaderEpoch = rp.Partition, -1, -1, -1
			switch {
			case !authorized:
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			case rt.Topic == offsetsTopic:
				g.listOffsetsTopic(ctx, rp, &sp)
			default:
				refs = append(refs, partRef{rt.Topic, rp.Partition, slot{i, j}})
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	g.route(ctx, leaderWait, refs, nil, func(rs []partRef) kmsg.Request {
		part := kmsg.NewPtrListOffsetsRequest()
		part.SetVersion(req.GetVersion())
		part.ReplicaID, part.IsolationLevel = req.ReplicaID, req.IsolationLevel
		for _, r := range rs {
			t := kmsg.NewListOffsetsRequestTopic()
			t.Topic = r.topic
			t.Partitions = []kmsg.ListOffsetsRequestTopicPartition{req.Topics[r.i].Partitions[r.j]}
			part.Topics = append(part.Topics, t)
		}
		return part
	}, func(r kmsg.Response, rs []partRef) []partRef {
		got := r.(*kmsg.ListOffsetsResponse)
		return takeParts(rs, len(got.Topics), func(k int) []kmsg.ListOffsetsResponseTopicPartition { return got.Topics[k].Partitions },
			func(ref partRef) *kmsg.ListOffsetsResponseTopicPartition {
				return &resp.Topics[ref.i].Partitions[ref.j]
			},
			func(p *kmsg.ListOffsetsResponseTopicPartition) *int16 { return &p.ErrorCode })
	}, func(ref partRef, code int16) { resp.Topics[ref.i].Partitions[ref.j].ErrorCode = code })
	return resp
}

// deleteRecords raises partitions' log start offsets on their leaders.
func (g *Gateway) deleteRecords(ctx context.Context, req *kmsg.DeleteRecordsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	var refs []partRef
	for i, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		authorized := g.allowed(ctx, opDelete, rtTopic, rt.Topic)
		for j, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition, sp.LowWatermark = rp.Partition, -1
			switch {
			case !authorized:
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			case rt.Topic == offsetsTopic:
				sp.ErrorCode = kerr.InvalidTopicException.Code // internal: read-only
			default:
				refs = append(refs, partRef{rt.Topic, rp.Partition, slot{i, j}})
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	g.route(ctx, leaderWait, refs, nil, func(rs []partRef) kmsg.Request {
		part := kmsg.NewPtrDeleteRecordsRequest()
		part.SetVersion(req.GetVersion())
		part.TimeoutMillis = req.TimeoutMillis
		for _, r := range rs {
			t := kmsg.NewDeleteRecordsRequestTopic()
			t.Topic = r.topic
			t.Partitions = []kmsg.DeleteRecordsRequestTopicPartition{req.Topics[r.i].Partitions[r.j]}
			part.Topics = append(part.Topics, t)
		}
		return part
	}, func(r kmsg.Response, rs []partRef) []partRef {
		got := r.(*kmsg.DeleteRecordsResponse)
		return takeParts(rs, len(got.Topics), func(k int) []kmsg.DeleteRecordsResponseTopicPartition { return got.Topics[k].Partitions },
			func(ref partRef) *kmsg.DeleteRecordsResponseTopicPartition {
				return &resp.Topics[ref.i].Partitions[ref.j]
			},
			func(p *kmsg.DeleteRecordsResponseTopicPartition) *int16 { return &p.ErrorCode })
	}, func(ref partRef, code int16) { resp.Topics[ref.i].Partitions[ref.j].ErrorCode = code })
	return resp
}

// offsetForLeaderEpoch answers, per partition, where a leader epoch ended.
func (g *Gateway) offsetForLeaderEpoch(ctx context.Context, req *kmsg.OffsetForLeaderEpochRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	var refs []partRef
	for i, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		authorized := g.allowed(ctx, opDescribe, rtTopic, rt.Topic)
		for j, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition, sp.LeaderEpoch, sp.EndOffset = rp.Partition, -1, -1
			switch {
			case !authorized:
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			case rt.Topic == offsetsTopic: // one epoch, 0, to the end
				lo := kmsg.NewListOffsetsResponseTopicPartition()
				g.listOffsetsTopic(ctx, kmsg.ListOffsetsRequestTopicPartition{Partition: rp.Partition, Timestamp: -1}, &lo)
				sp.ErrorCode, sp.LeaderEpoch, sp.EndOffset = lo.ErrorCode, 0, lo.Offset
			default:
				refs = append(refs, partRef{rt.Topic, rp.Partition, slot{i, j}})
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	g.route(ctx, leaderWait, refs, nil, func(rs []partRef) kmsg.Request {
		part := kmsg.NewPtrOffsetForLeaderEpochRequest()
		part.SetVersion(req.GetVersion())
		part.ReplicaID = req.ReplicaID
		for _, r := range rs {
			t := kmsg.NewOffsetForLeaderEpochRequestTopic()
			t.Topic = r.topic
			t.Partitions = []kmsg.OffsetForLeaderEpochRequestTopicPartition{req.Topics[r.i].Partitions[r.j]}
			part.Topics = append(part.Topics, t)
		}
		return part
	}, func(r kmsg.Response, rs []partRef) []partRef {
		got := r.(*kmsg.OffsetForLeaderEpochResponse)
		return takeParts(rs, len(got.Topics), func(k int) []kmsg.OffsetForLeaderEpochResponseTopicPartition { return got.Topics[k].Partitions },
			func(ref partRef) *kmsg.OffsetForLeaderEpochResponseTopicPartition {
				return &resp.Topics[ref.i].Partitions[ref.j]
			},
			func(p *kmsg.OffsetForLeaderEpochResponseTopicPartition) *int16 { return &p.ErrorCode })
	}, func(ref partRef, code int16) { resp.Topics[ref.i].Partitions[ref.j].ErrorCode = code })
	return resp
}

// describeCluster lists the brokers and the controller as Metadata does.
func (g *Gateway) describeCluster(ctx context.Context, req *kmsg.DescribeClusterRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	snap, _ := g.cache.get(ctx, false)
	bs, controller, _ := g.brokers(ctx, snap)
	resp.ClusterID, resp.ControllerID = g.cfg.Cluster, controller
	for _, b := range bs {
		db := kmsg.NewDescribeClusterResponseBroker()
		db.NodeID, db.Host, db.Port, db.Rack = b.id, b.host, b.port, b.rackOrNil()
		resp.Brokers = append(resp.Brokers, db)
	}
	return resp
}

// describeLogDirs asks each leader node about its partitions (all of them
// when the request names none) and lists every node's directory.
func (g *Gateway) describeLogDirs(ctx context.Context, req *kmsg.DescribeLogDirsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	if !g.allowedCluster(ctx, opDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp
	}
	var refs []partRef
	if req.Topics == nil {
		snap, err := g.cache.get(ctx, false)
		if err != nil {
			resp.ErrorCode = kerr.NotController.Code
			return resp
		}
		for name, ps := range snap.partitions {
			for _, p := range ps {
				refs = append(refs, partRef{topic: name, partition: p.Partition})
			}
		}
	} else {
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				refs = append(refs, partRef{topic: t.Topic, partition: p})
			}
		}
	}
	g.route(ctx, leaderWait, refs, nil, func(rs []partRef) kmsg.Request {
		part := kmsg.NewPtrDescribeLogDirsRequest()
		part.SetVersion(req.GetVersion())
		byTopic := map[string]int{}
		for _, r := range rs {
			i, ok := byTopic[r.topic]
			if !ok {
				i = len(part.Topics)
				byTopic[r.topic] = i
				t := kmsg.NewDescribeLogDirsRequestTopic()
				t.Topic = r.topic
				part.Topics = append(part.Topics, t)
			}
			part.Topics[i].Partitions = append(part.Topics[i].Partitions, r.partition)
		}
		return part
	}, func(r kmsg.Response, _ []partRef) []partRef {
		resp.Dirs = append(resp.Dirs, r.(*kmsg.DescribeLogDirsResponse).Dirs...)
		return nil
	}, func(partRef, int16) {
		// A partition without a reachable leader is left out, as Kafka
		// leaves out partitions a broker does not host.
	})
	return resp
}
