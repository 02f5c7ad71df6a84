package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/rpc"
	"github.com/strata-io/strata/internal/stream"
)

// forward sends a Kafka request to a node and decodes its response at
// the same version: directly to a node in this process, over the node's
// stream when it has one, else over NATS (where either may be bigger than
// the max payload: the rpc layer sends those in chunks). appended, when not nil,
// is called on a produce's interim reply (every partition appended).
func (g *Gateway) forward(ctx context.Context, nodeID int32, req kmsg.Request, appended func()) (kmsg.Response, error) {
	_, fetch := req.(*kmsg.FetchRequest)
	tierRead := fetch && g.remote != nil // this gateway reads the tier
	// A node in this process is asked directly, one with a stream over
	// its connection; either lends the response's record data until the
	// client's answer is encoded (the releaser). A stream that cannot
	// send leaves the request to NATS.
	var direct LocalNode
	if ln := g.cfg.Local[nodeID]; ln != nil {
		direct = ln
	} else if sc := g.defaults.stream(nodeID); sc != nil {
		direct = sc
	}
	if rel, ok := ctx.Value(releaserKey{}).(*releaser); ok && direct != nil {
		resp, release, err := direct.ServeKafka(ctx, req, tierRead, appended)
		rel.add(release)
		switch {
		case errors.Is(err, stream.ErrNotSent):
		case err != nil:
			return nil, fmt.Errorf("gateway: node %d: %w", nodeID, err)
		default:
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

// Streams is how many nodes this gateway sends Kafka requests over a
// direct connection (internal/stream) rather than NATS.
func (g *Gateway) Streams() int { return g.defaults.streaming() }

var tierReadHeader = map[string]string{rpc.HeaderTierRead: "1"}

// slot is where a partition sits in the client's request: topic index i,
// partition index j.
type slot struct{ i, j int }

// LocalNode is a node asked directly instead of over NATS: one in the
// gateway's own process (strata dev, see node.Node.ServeKafka), or a
// stream.Client.
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
