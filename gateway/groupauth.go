package gateway

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// authorizeGroup checks a consumer-group request before it goes to the
// coordinator, as Kafka's broker does: READ on the group to join, sync,
// heartbeat, leave and commit; DESCRIBE to fetch offsets and describe;
// DELETE to delete a group or its offsets; READ on each topic committed
// or whose offsets are deleted, DESCRIBE on each topic whose offsets are
// fetched. It returns a whole answer when nothing may go (denied), or
// the request to forward (some parts taken out) and fix, which puts the
// answers of what was taken out back into the coordinator's.
func (g *Gateway) authorizeGroup(ctx context.Context, req kmsg.Request) (denied kmsg.Response, forward kmsg.Request, fix func(kmsg.Response) kmsg.Response) {
	keep := func(r kmsg.Response) kmsg.Response { return r }
	if g.acls == nil {
		return nil, req, keep
	}
	groupDenied := func(group string, op kmsg.ACLOperation) bool { return !g.allowed(ctx, op, rtGroup, group) }
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		if groupDenied(r.Group, opRead) {
			return groupError(req, kerr.GroupAuthorizationFailed.Code), nil, nil
		}
	case *kmsg.SyncGroupRequest:
		if groupDenied(r.Group, opRead) {
			return groupError(req, kerr.GroupAuthorizationFailed.Code), nil, nil
		}
	case *kmsg.HeartbeatRequest:
		if groupDenied(r.Group, opRead) {
			return groupError(req, kerr.GroupAuthorizationFailed.Code), nil, nil
		}
	case *kmsg.LeaveGroupRequest:
		if groupDenied(r.Group, opRead) {
			return groupError(req, kerr.GroupAuthorizationFailed.Code), nil, nil
		}
	case *kmsg.ConsumerGroupHeartbeatRequest:
		if groupDenied(r.Group, opRead) {
			return groupError(req, kerr.GroupAuthorizationFailed.Code), nil, nil
		}
	case *kmsg.ShareGroupHeartbeatRequest:
		if groupDenied(r.GroupID, opRead) {
			return groupError(req, kerr.GroupAuthorizationFailed.Code), nil, nil
		}
	case *kmsg.ShareGroupDescribeRequest:
		return nil, req, func(resp kmsg.Response) kmsg.Response {
			if d, ok := resp.(*kmsg.ShareGroupDescribeResponse); ok {
				refuseDescribed(d.Groups, func(e kmsg.ShareGroupDescribeResponseGroup) string { return e.GroupID },
					func(id string) bool { return groupDenied(id, opDescribe) },
					func(id string) kmsg.ShareGroupDescribeResponseGroup {
						e := kmsg.NewShareGroupDescribeResponseGroup()
						e.GroupID, e.ErrorCode = id, kerr.GroupAuthorizationFailed.Code
						return e
					})
			}
			return resp
		}
	case *kmsg.ConsumerGroupDescribeRequest:
		return nil, req, func(resp kmsg.Response) kmsg.Response {
			if d, ok := resp.(*kmsg.ConsumerGroupDescribeResponse); ok {
				refuseDescribed(d.Groups, func(e kmsg.ConsumerGroupDescribeResponseGroup) string { return e.Group },
					func(id string) bool { return groupDenied(id, opDescribe) },
					func(id string) kmsg.ConsumerGroupDescribeResponseGroup {
						e := kmsg.NewConsumerGroupDescribeResponseGroup()
						e.Group, e.ErrorCode = id, kerr.GroupAuthorizationFailed.Code
						return e
					})
			}
			return resp
		}
	case *kmsg.OffsetCommitRequest:
		if groupDenied(r.Group, opRead) {
			return groupError(req, kerr.GroupAuthorizationFailed.Code), nil, nil
		}
		return g.commitTopics(ctx, r)
	case *kmsg.OffsetDeleteRequest:
		if groupDenied(r.Group, opDelete) {
			return groupError(req, kerr.GroupAuthorizationFailed.Code), nil, nil
		}
		return g.offsetDeleteTopics(ctx, r)
	case *kmsg.OffsetFetchRequest:
		if groupDenied(r.Group, opDescribe) {
			return groupError(req, kerr.GroupAuthorizationFailed.Code), nil, nil
		}
		return nil, req, func(resp kmsg.Response) kmsg.Response { return g.hideFetchedOffsets(ctx, r, resp) }
	case *kmsg.DescribeGroupsRequest:
		return nil, req, func(resp kmsg.Response) kmsg.Response {
			if d, ok := resp.(*kmsg.DescribeGroupsResponse); ok {
				refuseDescribed(d.Groups, func(e kmsg.DescribeGroupsResponseGroup) string { return e.Group },
					func(id string) bool { return groupDenied(id, opDescribe) },
					func(id string) kmsg.DescribeGroupsResponseGroup {
						e := kmsg.NewDescribeGroupsResponseGroup()
						e.Group, e.ErrorCode = id, kerr.GroupAuthorizationFailed.Code
						return e
					})
			}
			return resp
		}
	case *kmsg.ListGroupsRequest:
		if g.allowedCluster(ctx, opDescribe) {
			return nil, req, keep
		}
		return nil, req, func(resp kmsg.Response) kmsg.Response {
			if l, ok := resp.(*kmsg.ListGroupsResponse); ok {
				kept := l.Groups[:0]
				for _, gr := range l.Groups {
					if !groupDenied(gr.Group, opDescribe) {
						kept = append(kept, gr)
					}
				}
				l.Groups = kept
			}
			return resp
		}
	case *kmsg.AlterShareGroupOffsetsRequest:
		if groupDenied(r.GroupID, opRead) {
			return groupError(req, kerr.GroupAuthorizationFailed.Code), nil, nil
		}
		for _, t := range r.Topics {
			if !g.allowed(ctx, opRead, rtTopic, t.Topic) {
				return groupError(req, kerr.TopicAuthorizationFailed.Code), nil, nil
			}
		}
	case *kmsg.DeleteShareGroupOffsetsRequest:
		if groupDenied(r.GroupID, opDelete) {
			return groupError(req, kerr.GroupAuthorizationFailed.Code), nil, nil
		}
		for _, t := range r.Topics {
			if !g.allowed(ctx, opRead, rtTopic, t.Topic) {
				return groupError(req, kerr.TopicAuthorizationFailed.Code), nil, nil
			}
		}
	case *kmsg.DeleteGroupsRequest:
		return forwardAllowed(r, r.Groups, func(gr string) string { return gr },
			func(gr string) bool { return !groupDenied(gr, opDelete) },
			func(kept []string) kmsg.Request { fwd := *r; fwd.Groups = kept; return &fwd },
			func(resp kmsg.Response, refused []string) kmsg.Response {
				d := resp.(*kmsg.DeleteGroupsResponse)
				for _, gr := range refused {
					e := kmsg.NewDeleteGroupsResponseGroup()
					e.Group, e.ErrorCode = gr, kerr.GroupAuthorizationFailed.Code
					d.Groups = append(d.Groups, e)
				}
				return d
			})
	}
	return nil, req, keep
}

// commitTopics takes the topics the principal may not read out of an
// offset commit; they are answered TOPIC_AUTHORIZATION_FAILED.
func (g *Gateway) commitTopics(ctx context.Context, r *kmsg.OffsetCommitRequest) (kmsg.Response, kmsg.Request, func(kmsg.Response) kmsg.Response) {
	return forwardAllowed(r, r.Topics, func(t kmsg.OffsetCommitRequestTopic) string { return t.Topic },
		func(topic string) bool { return g.allowed(ctx, opRead, rtTopic, topic) },
		func(kept []kmsg.OffsetCommitRequestTopic) kmsg.Request { fwd := *r; fwd.Topics = kept; return &fwd },
		func(resp kmsg.Response, refused []kmsg.OffsetCommitRequestTopic) kmsg.Response {
			c := resp.(*kmsg.OffsetCommitResponse)
			for _, t := range refused {
				rt := kmsg.NewOffsetCommitResponseTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewOffsetCommitResponseTopicPartition()
					rp.Partition, rp.ErrorCode = p.Partition, kerr.TopicAuthorizationFailed.Code
					rt.Partitions = append(rt.Partitions, rp)
				}
				c.Topics = append(c.Topics, rt)
			}
			return c
		})
}

// offsetDeleteTopics takes the topics the principal may not read out of
// an OffsetDelete.
func (g *Gateway) offsetDeleteTopics(ctx context.Context, r *kmsg.OffsetDeleteRequest) (kmsg.Response, kmsg.Request, func(kmsg.Response) kmsg.Response) {
	return forwardAllowed(r, r.Topics, func(t kmsg.OffsetDeleteRequestTopic) string { return t.Topic },
		func(topic string) bool { return g.allowed(ctx, opRead, rtTopic, topic) },
		func(kept []kmsg.OffsetDeleteRequestTopic) kmsg.Request { fwd := *r; fwd.Topics = kept; return &fwd },
		func(resp kmsg.Response, refused []kmsg.OffsetDeleteRequestTopic) kmsg.Response {
			d := resp.(*kmsg.OffsetDeleteResponse)
			for _, t := range refused {
				rt := kmsg.NewOffsetDeleteResponseTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewOffsetDeleteResponseTopicPartition()
					rp.Partition, rp.ErrorCode = p.Partition, kerr.TopicAuthorizationFailed.Code
					rt.Partitions = append(rt.Partitions, rp)
				}
				d.Topics = append(d.Topics, rt)
			}
			return d
		})
}

// forwardAllowed splits a request's topics (or groups) by allowed: with none
// refused, the request goes whole; with all refused, it is answered at
// once from add; else a copy holding the allowed (with) goes, and add
// puts the refused topics' answers into its response.
func forwardAllowed[T any](r kmsg.Request, topics []T, name func(T) string, allowed func(string) bool,
	with func([]T) kmsg.Request, add func(kmsg.Response, []T) kmsg.Response) (kmsg.Response, kmsg.Request, func(kmsg.Response) kmsg.Response) {
	var kept, refused []T
	for _, t := range topics {
		if allowed(name(t)) {
			kept = append(kept, t)
		} else {
			refused = append(refused, t)
		}
	}
	switch {
	case len(refused) == 0:
		return nil, r, func(resp kmsg.Response) kmsg.Response { return resp }
	case len(kept) == 0:
		resp := r.ResponseKind()
		resp.SetVersion(r.GetVersion())
		return add(resp, refused), nil, nil
	}
	return nil, with(kept), func(resp kmsg.Response) kmsg.Response { return add(resp, refused) }
}

// hideFetchedOffsets keeps what the principal may not describe out of an
// OffsetFetch answer: left out of a fetch of all topics, and answered
// TOPIC_AUTHORIZATION_FAILED (no offset) where the topic was named.
func (g *Gateway) hideFetchedOffsets(ctx context.Context, r *kmsg.OffsetFetchRequest, resp kmsg.Response) kmsg.Response {
	f, ok := resp.(*kmsg.OffsetFetchResponse)
	if !ok {
		return resp
	}
	kept := f.Topics[:0]
	for _, t := range f.Topics {
		if g.allowed(ctx, opDescribe, rtTopic, t.Topic) {
			kept = append(kept, t)
			continue
		}
		if r.Topics == nil {
			continue
		}
		for i := range t.Partitions {
			p := &t.Partitions[i]
			p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode = -1, -1, nil, kerr.TopicAuthorizationFailed.Code
		}
		kept = append(kept, t)
	}
	f.Topics = kept
	return f
}

// coordinatorDenied: FindCoordinator needs DESCRIBE on the group
// (GROUP_AUTHORIZATION_FAILED otherwise) or on the transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); 0 when allowed.
func (g *Gateway) coordinatorDenied(ctx context.Context, req *kmsg.FindCoordinatorRequest) int16 {
	switch {
	case req.CoordinatorType == 0 && !g.allowed(ctx, opDescribe, rtGroup, req.CoordinatorKey):
		return kerr.GroupAuthorizationFailed.Code
	case req.CoordinatorType == 1 && !g.allowed(ctx, opDescribe, rtTxnID, req.CoordinatorKey):
		return kerr.TransactionalIDAuthorizationFailed.Code
	case req.CoordinatorType == 2 && !g.allowedCluster(ctx, kmsg.ACLOperationClusterAction):
		// The share coordinator's key (group:topicId:partition) is
		// for brokers, as on Kafka.
		return kerr.ClusterAuthorizationFailed.Code
	}
	return 0
}

// refuseDescribed replaces, in a describe response's groups, each one the
// principal may not describe with GROUP_AUTHORIZATION_FAILED.
func refuseDescribed[G any](groups []G, id func(G) string, denied func(string) bool, refused func(string) G) {
	for i := range groups {
		if gid := id(groups[i]); denied(gid) {
			groups[i] = refused(gid)
		}
	}
}
