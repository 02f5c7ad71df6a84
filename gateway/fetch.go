package gateway

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fetch splits the request by leader node; each node long-polls its own
// partitions, and the answers are merged in the client's order. Fetch
// sessions are not kept: SessionID 0 tells the client to send full
// requests.
func (g *Gateway) fetch(ctx context.Context, req *kmsg.FetchRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
			sp.RecordBatches = []byte{} // empty, never null: librdkafka rejects null
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	snap, err := g.cache.get(ctx, false)
	if err != nil {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				resp.Topics[i].Partitions[j].ErrorCode = kerr.NotLeaderForPartition.Code
			}
		}
		return resp
	}
	byNode := map[int32][]slot{}
	for i, rt := range req.Topics {
		for j, rp := range rt.Partitions {
			p, ok := snap.partition(rt.Topic, rp.Partition)
			switch {
			case !ok:
				resp.Topics[i].Partitions[j].ErrorCode = kerr.UnknownTopicOrPartition.Code
			case p.Leader < 0:
				resp.Topics[i].Partitions[j].ErrorCode = kerr.NotLeaderForPartition.Code
			default:
				byNode[p.Leader] = append(byNode[p.Leader], slot{i, j})
			}
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for nodeID, slots := range byNode {
		part := kmsg.NewPtrFetchRequest()
		part.SetVersion(req.GetVersion())
		part.ReplicaID, part.MaxWaitMillis, part.MinBytes, part.MaxBytes = req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes
		part.IsolationLevel, part.SessionEpoch = req.IsolationLevel, -1
		for _, s := range slots {
			rt := req.Topics[s.i]
			t := kmsg.NewFetchRequestTopic()
			t.Topic, t.TopicID = rt.Topic, rt.TopicID
			t.Partitions = []kmsg.FetchRequestTopicPartition{rt.Partitions[s.j]}
			part.Topics = append(part.Topics, t)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := g.forward(ctx, nodeID, part)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				g.logger.Warn("fetch forward failed", "node", nodeID, "error", err)
				for _, s := range slots {
					resp.Topics[s.i].Partitions[s.j].ErrorCode = kerr.NotLeaderForPartition.Code
				}
				return
			}
			got := r.(*kmsg.FetchResponse)
			for k, s := range slots {
				if k < len(got.Topics) && len(got.Topics[k].Partitions) == 1 {
					resp.Topics[s.i].Partitions[s.j] = got.Topics[k].Partitions[0]
				} else {
					resp.Topics[s.i].Partitions[s.j].ErrorCode = kerr.UnknownServerError.Code
				}
			}
		}()
	}
	wg.Wait()
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			if resp.Topics[i].Partitions[j].ErrorCode == kerr.NotLeaderForPartition.Code {
				g.cache.invalidate()
			}
		}
	}
	return resp
}
