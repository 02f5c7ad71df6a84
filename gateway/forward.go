package gateway

import (
	"context"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/rpc"
)

// forward sends a Kafka request to a node over NATS and decodes its
// response at the same version. Either may be bigger than the NATS max
// payload: the rpc layer sends those in chunks. appended, when not nil,
// is called on a produce's interim reply (every partition appended).
func (g *Gateway) forward(ctx context.Context, nodeID int32, req kmsg.Request, appended func()) (kmsg.Response, error) {
	_, fetch := req.(*kmsg.FetchRequest)
	tierRead := fetch && g.remote != nil // this gateway reads the tier
	if ln := g.cfg.Local[nodeID]; ln != nil {
		if rel, ok := ctx.Value(releaserKey{}).(*releaser); ok {
			resp, release, err := ln.ServeKafka(ctx, req, tierRead, appended)
			rel.add(release)
			if err != nil {
				return nil, fmt.Errorf("gateway: node %d: %w", nodeID, err)
			}
			return resp, nil
		}
	}
	call := rpc.KafkaCall{Appended: appended}
	if tierRead {
		call.Header = tierReadHeader
	}
	resp, err := g.caller.Kafka(ctx, rpc.KafkaSubject(g.cfg.Cluster, nodeID), req, call)
	if err != nil {
		return nil, fmt.Errorf("gateway: node %d: %w", nodeID, err)
	}
	return resp, nil
}

var tierReadHeader = map[string]string{rpc.HeaderTierRead: "1"}

// slot is where a partition sits in the client's request: topic index i,
// partition index j.
type slot struct{ i, j int }

// LocalNode is a node in the gateway's own process (strata dev), asked
// directly instead of over NATS: see node.Node.ServeKafka.
type LocalNode interface {
	ServeKafka(ctx context.Context, req kmsg.Request, tierRead bool, appended func()) (kmsg.Response, func(), error)
}

// releaser holds, for one client request, what must be given back once
// its response is encoded: record data a local node lent.
type releaser struct {
	mu  sync.Mutex
	fns []func()
}

type releaserKey struct{}

func (r *releaser) add(f func()) {
	r.mu.Lock()
	r.fns = append(r.fns, f)
	r.mu.Unlock()
}

// run gives everything back; the response must not be read after it.
func (r *releaser) run() {
	r.mu.Lock()
	fns := r.fns
	r.fns = nil
	r.mu.Unlock()
	for _, f := range fns {
		f()
	}
}
