package gateway

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// listOffsets forwards each partition's lookup to its leader node.
func (g *Gateway) listOffsets(ctx context.Context, req *kmsg.ListOffsetsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition, sp.Timestamp, sp.Offset, sp.LeaderEpoch = rp.Partition, -1, -1, -1
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	snap, err := g.cache.get(ctx, false)
	byNode := map[int32][]slot{}
	for i, rt := range req.Topics {
		for j, rp := range rt.Partitions {
			var p, ok = snap.partitionOrZero(err, rt.Topic, rp.Partition)
			switch {
			case err != nil || (ok && p.Leader < 0):
				resp.Topics[i].Partitions[j].ErrorCode = kerr.NotLeaderForPartition.Code
			case !ok:
				resp.Topics[i].Partitions[j].ErrorCode = kerr.UnknownTopicOrPartition.Code
			default:
				byNode[p.Leader] = append(byNode[p.Leader], slot{i, j})
			}
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for nodeID, slots := range byNode {
		part := kmsg.NewPtrListOffsetsRequest()
		part.SetVersion(req.GetVersion())
		part.ReplicaID, part.IsolationLevel = req.ReplicaID, req.IsolationLevel
		for _, s := range slots {
			rt := req.Topics[s.i]
			t := kmsg.NewListOffsetsRequestTopic()
			t.Topic = rt.Topic
			t.Partitions = []kmsg.ListOffsetsRequestTopicPartition{rt.Partitions[s.j]}
			part.Topics = append(part.Topics, t)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := g.forward(ctx, nodeID, part)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				for _, s := range slots {
					resp.Topics[s.i].Partitions[s.j].ErrorCode = kerr.NotLeaderForPartition.Code
				}
				return
			}
			got := r.(*kmsg.ListOffsetsResponse)
			for k, s := range slots {
				if k < len(got.Topics) && len(got.Topics[k].Partitions) == 1 {
					resp.Topics[s.i].Partitions[s.j] = got.Topics[k].Partitions[0]
				}
			}
		}()
	}
	wg.Wait()
	return resp
}
