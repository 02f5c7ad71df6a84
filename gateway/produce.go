package gateway

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// produce splits the request by leader node, forwards each part over NATS
// and merges the answers in the client's order. Partitions a node says it
// no longer leads are retried once after a metadata refresh. acks=0 gets
// no response.
func (g *Gateway) produce(ctx context.Context, req *kmsg.ProduceRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition, sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = rp.Partition, -1, -1, -1
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if req.Acks != 0 && req.Acks != 1 && req.Acks != -1 {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				resp.Topics[i].Partitions[j].ErrorCode = kerr.InvalidRequiredAcks.Code
			}
		}
		return resp
	}
	var todo []slot
	for i, rt := range req.Topics {
		for j := range rt.Partitions {
			todo = append(todo, slot{i, j})
		}
	}
	for attempt := 0; attempt < 2 && len(todo) > 0; attempt++ {
		snap, err := g.cache.get(ctx, attempt > 0)
		if err != nil {
			for _, s := range todo {
				resp.Topics[s.i].Partitions[s.j].ErrorCode = kerr.NotLeaderForPartition.Code
			}
			break
		}
		byNode := map[int32][]slot{}
		for _, s := range todo {
			rt := req.Topics[s.i]
			p, ok := snap.partition(rt.Topic, rt.Partitions[s.j].Partition)
			switch {
			case !ok:
				resp.Topics[s.i].Partitions[s.j].ErrorCode = kerr.UnknownTopicOrPartition.Code
			case p.Leader < 0:
				resp.Topics[s.i].Partitions[s.j].ErrorCode = kerr.NotLeaderForPartition.Code
			default:
				byNode[p.Leader] = append(byNode[p.Leader], s)
			}
		}
		var retry []slot
		var mu sync.Mutex
		var wg sync.WaitGroup
		for nodeID, slots := range byNode {
			part := kmsg.NewPtrProduceRequest()
			part.SetVersion(req.GetVersion())
			part.TransactionID, part.Acks, part.TimeoutMillis = req.TransactionID, req.Acks, req.TimeoutMillis
			for _, s := range slots {
				rt := req.Topics[s.i]
				t := kmsg.NewProduceRequestTopic()
				t.Topic = rt.Topic
				t.Partitions = []kmsg.ProduceRequestTopicPartition{rt.Partitions[s.j]}
				part.Topics = append(part.Topics, t)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := g.forward(ctx, nodeID, part)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					g.logger.Warn("produce forward failed", "node", nodeID, "error", err)
					retry = append(retry, slots...)
					return
				}
				got := r.(*kmsg.ProduceResponse)
				for k, s := range slots {
					if k >= len(got.Topics) || len(got.Topics[k].Partitions) != 1 {
						resp.Topics[s.i].Partitions[s.j].ErrorCode = kerr.UnknownServerError.Code
						continue
					}
					sp := got.Topics[k].Partitions[0]
					if sp.ErrorCode == kerr.NotLeaderForPartition.Code && attempt == 0 {
						retry = append(retry, s)
						continue
					}
					resp.Topics[s.i].Partitions[s.j] = sp
				}
			}()
		}
		wg.Wait()
		todo = retry
	}
	for _, s := range todo {
		resp.Topics[s.i].Partitions[s.j].ErrorCode = kerr.NotLeaderForPartition.Code
	}
	if req.Acks == 0 {
		return nil
	}
	return resp
}
