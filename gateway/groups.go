package gateway

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/rpc"
	"github.com/strata-io/strata/meta"
)

// findCoordinator names a broker, spread by group or transactional id:
// every gateway forwards group and transaction requests to the
// controller, which coordinates every group and transaction.
func (g *Gateway) findCoordinator(ctx context.Context, req *kmsg.FindCoordinatorRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	if req.CoordinatorType < 0 || req.CoordinatorType > 2 {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp
	}
	if code := g.coordinatorDenied(ctx, req); code != 0 {
		resp.ErrorCode = code
		return resp
	}
	snap, _ := g.cache.get(ctx, false)
	bs, _, _ := g.brokers(ctx, snap)
	if len(bs) == 0 {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	b := coordinator(bs, req.CoordinatorKey)
	resp.NodeID, resp.Host, resp.Port = b.id, b.host, b.port
	return resp
}

// groupRequest forwards a consumer-group request to the coordinator over
// NATS: straight to the controller the gateway last read of (a node that
// has lost the lead forwards it), else to any node. Without a controller
// the client hears COORDINATOR_NOT_AVAILABLE and retries.
func (g *Gateway) groupRequest(ctx context.Context, h requestHeader, req kmsg.Request) kmsg.Response {
	queue := rpc.GroupSubject(g.cfg.Cluster)
	subject := queue
	if id := g.meta.Controller(); id != 0 {
		// Not the queue group: a node that hears nothing would take its
		// share of requests and answer none.
		subject += "." + strconv.Itoa(int(id))
	}
	call := rpc.KafkaCall{One: true, Header: map[string]string{rpc.HeaderClientID: h.clientID}}
	resp, err := g.caller.Kafka(ctx, subject, req, call)
	if errors.Is(err, nats.ErrNoResponders) && subject != queue {
		resp, err = g.caller.Kafka(ctx, queue, req, call) // that node is gone
	} else if err != nil && subject != queue && !isRemote(err) {
		// The node did not answer in time: it may have stopped leading
		// (or hearing). Learn the controller anew for the client's retry.
		go func() {
			rctx, cancel := context.WithTimeout(g.base, 10*time.Second)
			defer cancel()
			g.meta.Read(rctx, meta.ReadRequest{Kind: "nodes"})
		}()
	}
	if err == nil {
		return resp
	}
	g.logger.Debug("group request failed", "api", kmsg.NameForKey(req.Key()), "error", err)
	return groupError(req, kerr.CoordinatorNotAvailable.Code)
}

// isRemote reports whether err is the other side's answer, not a lost
// request.
func isRemote(err error) bool {
	var re *rpc.RemoteError
	return errors.As(err, &re)
}

// groupError answers a group request with one error everywhere.
func groupError(req kmsg.Request, code int16) kmsg.Response {
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	switch r := resp.(type) {
	case *kmsg.JoinGroupResponse:
		r.ErrorCode, r.Generation = code, -1
	case *kmsg.SyncGroupResponse:
		r.ErrorCode = code
	case *kmsg.HeartbeatResponse:
		r.ErrorCode = code
	case *kmsg.LeaveGroupResponse:
		r.ErrorCode = code
	case *kmsg.OffsetFetchResponse:
		r.ErrorCode = code
	case *kmsg.ListGroupsResponse:
		r.ErrorCode = code
	case *kmsg.OffsetDeleteResponse:
		r.ErrorCode = code
	case *kmsg.ConsumerGroupHeartbeatResponse:
		r.ErrorCode = code
	case *kmsg.ShareGroupHeartbeatResponse:
		r.ErrorCode = code
	case *kmsg.AlterShareGroupOffsetsResponse:
		r.ErrorCode = code
	case *kmsg.DeleteShareGroupOffsetsResponse:
		r.ErrorCode = code
	case *kmsg.ShareGroupDescribeResponse:
		for _, g := range req.(*kmsg.ShareGroupDescribeRequest).GroupIDs {
			dg := kmsg.NewShareGroupDescribeResponseGroup()
			dg.GroupID, dg.ErrorCode = g, code
			r.Groups = append(r.Groups, dg)
		}
	case *kmsg.ConsumerGroupDescribeResponse:
		for _, g := range req.(*kmsg.ConsumerGroupDescribeRequest).Groups {
			dg := kmsg.NewConsumerGroupDescribeResponseGroup()
			dg.Group, dg.ErrorCode = g, code
			r.Groups = append(r.Groups, dg)
		}
	case *kmsg.DescribeGroupsResponse:
		for _, g := range req.(*kmsg.DescribeGroupsRequest).Groups {
			dg := kmsg.NewDescribeGroupsResponseGroup()
			dg.Group, dg.ErrorCode = g, code
			r.Groups = append(r.Groups, dg)
		}
	case *kmsg.DeleteGroupsResponse:
		for _, g := range req.(*kmsg.DeleteGroupsRequest).Groups {
			dg := kmsg.NewDeleteGroupsResponseGroup()
			dg.Group, dg.ErrorCode = g, code
			r.Groups = append(r.Groups, dg)
		}
	case *kmsg.InitProducerIDResponse:
		r.ErrorCode, r.ProducerID, r.ProducerEpoch = code, -1, -1
	case *kmsg.AddOffsetsToTxnResponse:
		r.ErrorCode = code
	case *kmsg.EndTxnResponse:
		r.ErrorCode = code
	case *kmsg.AddPartitionsToTxnResponse:
		txnPartitionErrors(req.(*kmsg.AddPartitionsToTxnRequest), r, func(string, int32) int16 { return code })
	case *kmsg.TxnOffsetCommitResponse:
		for _, t := range req.(*kmsg.TxnOffsetCommitRequest).Topics {
			rt := kmsg.NewTxnOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			r.Topics = append(r.Topics, rt)
		}
	case *kmsg.OffsetCommitResponse:
		for _, t := range req.(*kmsg.OffsetCommitRequest).Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			r.Topics = append(r.Topics, rt)
		}
	}
	return resp
}
