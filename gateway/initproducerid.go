package gateway

import (
	"context"
	"math"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/meta"
)

// producerIDBlock is how many producer ids a gateway takes from the
// controller at once.
const producerIDBlock = 1000

// producerIDs hands out producer ids from blocks the controller allocated:
// unique across gateways and restarts.
type producerIDs struct {
	mu        sync.Mutex
	next, end int64
}

func (p *producerIDs) take(ctx context.Context, client *meta.Client) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next == p.end {
		res, err := client.Propose(ctx, &meta.AllocateProducerIDs{Count: producerIDBlock})
		if err == nil {
			err = res.Err
		}
		if err != nil {
			return 0, err
		}
		p.next, p.end = res.Value, res.Value+producerIDBlock
	}
	id := p.next
	p.next++
	return id, nil
}

// initProducerID gives an idempotent producer its id and epoch. A producer
// that already has an id (v3+) gets the next epoch of it. A
// transactional producer's goes to the transaction coordinator (txn.go).
func (g *Gateway) initProducerID(ctx context.Context, req *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	// An idempotent producer needs IDEMPOTENT_WRITE on the cluster, or
	// WRITE on some topic (KIP-679).
	if !g.allowedCluster(ctx, opIdempotentWrite) && !g.allowedAny(ctx, opWrite, rtTopic) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp
	}
	if req.ProducerID >= 0 && req.ProducerEpoch >= 0 && req.ProducerEpoch < math.MaxInt16-1 {
		resp.ProducerID, resp.ProducerEpoch = req.ProducerID, req.ProducerEpoch+1
		return resp
	}
	id, err := g.producerIDs.take(ctx, g.meta)
	if err != nil {
		g.logger.Warn("allocate producer id", "error", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp
}
