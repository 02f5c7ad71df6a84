package gateway

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/rpc"
)

// forward sends a Kafka request to a node over NATS and decodes its
// response at the same version. Either may be bigger than the NATS max
// payload: the rpc layer sends those in chunks. appended, when not nil,
// is called on a produce's interim reply (every partition appended).
func (g *Gateway) forward(ctx context.Context, nodeID int32, req kmsg.Request, appended func()) (kmsg.Response, error) {
	call := rpc.KafkaCall{Appended: appended}
	if _, fetch := req.(*kmsg.FetchRequest); fetch && g.remote != nil {
		call.Header = tierReadHeader // this gateway reads the tier
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
