package gateway

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// nodeFetchVersion is the newest Fetch version sent to nodes: from v13
// topics are named by ID, which the gateway resolves to names first.
const nodeFetchVersion = 12

// fetch splits the request by leader node; each node long-polls its own
// partitions, and the answers are merged in the client's order. Fetch
// sessions are not kept: SessionID 0 tells the client to send full
// requests.
func (g *Gateway) fetch(ctx context.Context, req *kmsg.FetchRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	deadline := time.Now().Add(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	ids := make([][16]byte, len(req.Topics))
	for i, rt := range req.Topics {
		ids[i] = rt.TopicID
	}
	nameOf := g.topicNamer(ctx, req.GetVersion() >= 13, ids)
	var refs []partRef
	var internal []slot // partitions of __consumer_offsets
	names := make([]string, len(req.Topics))
	for i, rt := range req.Topics {
		st := kmsg.NewFetchResponseTopic()
		name, known := nameOf(rt.TopicID, rt.Topic)
		// From v13 only the id is encoded; the name is for metrics.
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		if known {
			st.Topic = name
		}
		names[i] = name
		authorized := known && g.allowed(ctx, opRead, rtTopic, name)
		for j, rp := range rt.Partitions {
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
			sp.RecordBatches = []byte{} // empty, never null: librdkafka rejects null
			switch {
			case !known:
				sp.ErrorCode = kerr.UnknownTopicID.Code
			case !authorized:
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			case name == offsetsTopic:
				internal = append(internal, slot{i, j})
			default:
				refs = append(refs, partRef{name, rp.Partition, slot{i, j}})
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	// round asks every leader for its partitions, each waiting up to
	// wait for data (the leader's long poll).
	round := func(wait time.Duration) {
		g.route(ctx, max(time.Until(deadline), 0), refs, nil, func(rs []partRef) kmsg.Request {
			part := kmsg.NewPtrFetchRequest()
			part.SetVersion(min(req.GetVersion(), nodeFetchVersion))
			part.ReplicaID, part.MaxWaitMillis, part.MinBytes, part.MaxBytes = -1, int32(wait.Milliseconds()), req.MinBytes, req.MaxBytes
			part.IsolationLevel, part.SessionEpoch = req.IsolationLevel, -1
			for _, r := range rs {
				t := kmsg.NewFetchRequestTopic()
				t.Topic = r.topic
				t.Partitions = []kmsg.FetchRequestTopicPartition{req.Topics[r.i].Partitions[r.j]}
				part.Topics = append(part.Topics, t)
			}
			return part
		}, func(r kmsg.Response, rs []partRef) []partRef {
			got := r.(*kmsg.FetchResponse)
			return takeParts(rs, len(got.Topics), func(k int) []kmsg.FetchResponseTopicPartition { return got.Topics[k].Partitions },
				func(ref partRef) *kmsg.FetchResponseTopicPartition { return &resp.Topics[ref.i].Partitions[ref.j] },
				func(p *kmsg.FetchResponseTopicPartition) *int16 { return &p.ErrorCode })
		}, func(ref partRef, code int16) { resp.Topics[ref.i].Partitions[ref.j].ErrorCode = code })
	}
	if len(internal) > 0 {
		// Alone, it long-polls the state; with other partitions their
		// leaders' polls do the waiting.
		g.fetchOffsetsTopic(ctx, req, resp, internal, deadline, len(refs) == 0)
		if len(refs) == 0 {
			return resp
		}
	}
	if len(refs) <= 1 {
		round(time.Until(deadline))
	} else {
		// Partitions on several leaders: one leader's long poll must
		// not hold back another's data (the answer waits for every
		// leader). First what each has now; then, while none has
		// enough, polls of at most fetchRoundWait each.
		round(0)
		for !fetchAnswered(resp, req.MinBytes) && time.Until(deadline) > 0 && ctx.Err() == nil {
			round(min(time.Until(deadline), fetchRoundWait))
		}
	}
	g.serveRemote(ctx, req, resp, names, deadline)
	return resp
}

// fetchRoundWait bounds each leader's long poll when a fetch spans
// several partitions: data arriving at one is answered within it, while
// the others still wait. Kafka answers at once (it waits on all its
// partitions together); a gateway waits on each leader separately.
const fetchRoundWait = 100 * time.Millisecond

// fetchAnswered reports whether a fetch response is ready to go: it
// holds minBytes of records, or an error.
func fetchAnswered(resp *kmsg.FetchResponse, minBytes int32) bool {
	n := 0
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				return true
			}
			n += len(p.RecordBatches)
		}
	}
	return n >= int(max(minBytes, 1))
}
