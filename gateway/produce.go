package gateway

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// nodeProduceVersion is the newest Produce version sent to nodes: from v13
// topics are named by ID, which the gateway resolves to names first.
const nodeProduceVersion = 12

// produce splits the request by leader node, forwards each part over NATS
// and merges the answers in the client's order; route retries partitions
// whose leader moved. acks=0 gets no response.
func (g *Gateway) produce(ctx context.Context, req *kmsg.ProduceRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	ids := make([][16]byte, len(req.Topics))
	for i, rt := range req.Topics {
		ids[i] = rt.TopicID
	}
	nameOf := g.topicNamer(ctx, req.GetVersion() >= 13, ids)
	var refs []partRef
	for i, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		name, known := nameOf(rt.TopicID, rt.Topic)
		if known {
			st.Topic = name // from v13 only the id is encoded; the name is for metrics
		}
		authorized := known && g.allowed(ctx, opWrite, rtTopic, name)
		txnDenied := req.TransactionID != nil && !g.allowed(ctx, opWrite, rtTxnID, *req.TransactionID)
		for j, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition, sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = rp.Partition, -1, -1, -1
			switch {
			case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
				sp.ErrorCode = kerr.InvalidRequiredAcks.Code
			case txnDenied:
				sp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
			case !known:
				sp.ErrorCode = kerr.UnknownTopicID.Code
			case !authorized:
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			case name == offsetsTopic:
				sp.ErrorCode = kerr.InvalidTopicException.Code // Kafka: "Cannot append to internal topic"
			default:
				refs = append(refs, partRef{name, rp.Partition, slot{i, j}})
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	appended, _ := ctx.Value(appendedKey{}).(func())
	g.route(ctx, time.Duration(req.TimeoutMillis)*time.Millisecond, refs, appended, func(rs []partRef) kmsg.Request {
		part := kmsg.NewPtrProduceRequest()
		part.SetVersion(min(req.GetVersion(), nodeProduceVersion))
		part.TransactionID, part.Acks, part.TimeoutMillis = req.TransactionID, req.Acks, req.TimeoutMillis
		for _, r := range rs {
			t := kmsg.NewProduceRequestTopic()
			t.Topic = r.topic
			t.Partitions = []kmsg.ProduceRequestTopicPartition{req.Topics[r.i].Partitions[r.j]}
			part.Topics = append(part.Topics, t)
		}
		return part
	}, func(r kmsg.Response, rs []partRef) []partRef {
		got := r.(*kmsg.ProduceResponse)
		return takeParts(rs, len(got.Topics), func(k int) []kmsg.ProduceResponseTopicPartition { return got.Topics[k].Partitions },
			func(ref partRef) *kmsg.ProduceResponseTopicPartition { return &resp.Topics[ref.i].Partitions[ref.j] },
			func(p *kmsg.ProduceResponseTopicPartition) *int16 { return &p.ErrorCode })
	}, func(ref partRef, code int16) { resp.Topics[ref.i].Partitions[ref.j].ErrorCode = code })
	if req.Acks == 0 {
		return nil
	}
	return resp
}

// topicNamer names a request's topics: by the name they carry, or, when
// byID (Produce and Fetch from v13), by resolving their IDs; known is
// false for an ID no topic has (UNKNOWN_TOPIC_ID).
func (g *Gateway) topicNamer(ctx context.Context, byID bool, ids [][16]byte) func(id [16]byte, name string) (string, bool) {
	if !byID {
		return func(_ [16]byte, name string) (string, bool) { return name, true }
	}
	names := g.topicNames(ctx, ids)
	return func(id [16]byte, _ string) (string, bool) {
		name, ok := names[id]
		return name, ok
	}
}

// topicNames resolves topic IDs to names, reading the metadata afresh
// once when an ID is not in the cached view (the topic may be new).
func (g *Gateway) topicNames(ctx context.Context, ids [][16]byte) map[[16]byte]string {
	names := map[[16]byte]string{}
	for attempt := 0; attempt < 2; attempt++ {
		snap, err := g.cache.get(ctx, attempt > 0)
		if err != nil {
			return names
		}
		missing := false
		for _, id := range ids {
			if name, ok := snap.byID[id]; ok {
				names[id] = name
			} else {
				missing = true
			}
		}
		if !missing {
			break
		}
	}
	return names
}
