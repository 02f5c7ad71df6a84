package gateway

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/bufpool"
	"github.com/strata-io/strata/internal/rpc"
)

// forward sends a Kafka request to a node over NATS and decodes its
// response at the same version. Either may be bigger than the NATS max
// payload: the rpc layer sends those in chunks. appended, when not nil,
// is called on a produce's interim reply (every partition appended).
func (g *Gateway) forward(ctx context.Context, nodeID int32, req kmsg.Request, appended func()) (kmsg.Response, error) {
	msg := nats.NewMsg(rpc.KafkaSubject(g.cfg.Cluster, nodeID))
	msg.Header.Set(rpc.HeaderAPIKey, strconv.Itoa(int(req.Key())))
	msg.Header.Set(rpc.HeaderAPIVersion, strconv.Itoa(int(req.GetVersion())))
	if _, fetch := req.(*kmsg.FetchRequest); fetch && g.remote != nil {
		msg.Header.Set(rpc.HeaderTierRead, "1") // this gateway reads the tier
	}
	msg.Data = rpc.Append(bufpool.Get(rpc.SizeHint(req)), req)
	defer bufpool.Put(msg.Data) // NATS copies it before Request returns
	var reply *nats.Msg
	var err error
	if appended != nil {
		reply, err = g.caller.RequestProgress(ctx, msg, rpc.ProgressAppended, func(string) { appended() })
	} else {
		reply, err = g.caller.Request(ctx, msg)
	}
	if err != nil {
		return nil, fmt.Errorf("gateway: node %d: %w", nodeID, err)
	}
	if e := reply.Header.Get(rpc.HeaderError); e != "" {
		return nil, fmt.Errorf("gateway: node %d: %s", nodeID, e)
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if err := resp.ReadFrom(reply.Data); err != nil {
		return nil, fmt.Errorf("gateway: node %d: decode %s: %w", nodeID, kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}

// slot is where a partition sits in the client's request: topic index i,
// partition index j.
type slot struct{ i, j int }
