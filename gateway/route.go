package gateway

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// partRef is one partition of a client request: its name and its place
// (topic index i, partition index j) in the request and response.
type partRef struct {
	topic     string
	partition int32
	slot
}

// route sends each partition to its leader node: build makes the request
// for one node's partitions, merge copies a node's answers back in the
// client's order, fail marks partitions that could not be asked. Requests
// to different nodes run at once.
func (g *Gateway) route(ctx context.Context, refs []partRef,
	build func(refs []partRef) kmsg.Request,
	merge func(resp kmsg.Response, refs []partRef),
	fail func(ref partRef, code int16),
) {
	snap, err := g.cache.get(ctx, false)
	byNode := map[int32][]partRef{}
	for _, r := range refs {
		p, ok := snap.partitionOrZero(err, r.topic, r.partition)
		switch {
		case err != nil || (ok && p.Leader < 0):
			fail(r, kerr.NotLeaderForPartition.Code)
		case !ok:
			fail(r, kerr.UnknownTopicOrPartition.Code)
		default:
			byNode[p.Leader] = append(byNode[p.Leader], r)
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for nodeID, rs := range byNode {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := g.forward(ctx, nodeID, build(rs))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				g.logger.Warn("forward failed", "node", nodeID, "error", err)
				for _, r := range rs {
					fail(r, kerr.NotLeaderForPartition.Code)
				}
				g.cache.invalidate()
				return
			}
			merge(resp, rs)
		}()
	}
	wg.Wait()
}
