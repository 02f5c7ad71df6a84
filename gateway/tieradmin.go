package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/strata-io/strata/internal/rpc"
	"github.com/strata-io/strata/meta"
	"github.com/strata-io/strata/tier"
)

// The tier part of the admin API (adminapi.go): each route is a JSON
// request to the nodes (status to each on rpc.TierStatusSubject, ls and
// restore to one on rpc.TierSubject). A reply whose "error" is set
// comes back as 422 with that reply; a cluster that does not answer, as
// 503.

// TierStatus is the cluster's answer to status: one reply per node that
// answered, and the registered nodes that did not.
type TierStatus struct {
	Nodes   []tier.StatusReply `json:"nodes"`
	Missing []int32            `json:"missing,omitempty"`
}

// statusWait bounds how long status waits for every node to answer.
const statusWait = 2 * time.Second

// TierStatus asks every registered node for its tiered partitions, each
// on its own subject so that a big answer can come in chunks; it returns
// once all of them answered or statusWait passed.
func (g *Gateway) TierStatus(ctx context.Context) (TierStatus, error) {
	out := TierStatus{Nodes: []tier.StatusReply{}}
	nodes, err := g.meta.Read(ctx, meta.ReadRequest{Kind: "nodes"})
	if err != nil {
		return out, err
	}
	ctx, cancel := context.WithTimeout(ctx, statusWait)
	defer cancel()
	type answer struct {
		id    int32
		reply tier.StatusReply
		err   error
	}
	answers := make(chan answer, len(nodes.Nodes))
	for _, n := range nodes.Nodes {
		go func(id int32) {
			req := nats.NewMsg(rpc.TierStatusSubject(g.cfg.Cluster, id))
			req.Data = []byte("{}")
			a := answer{id: id}
			msg, err := g.caller.RequestOne(ctx, req)
			if err == nil {
				err = json.Unmarshal(msg.Data, &a.reply)
			}
			a.err = err
			answers <- a
		}(n.ID)
	}
	var bad error
	for range nodes.Nodes {
		a := <-answers
		switch {
		case a.err == nil:
			out.Nodes = append(out.Nodes, a.reply)
		case ctx.Err() != nil || errors.Is(a.err, nats.ErrNoResponders):
			out.Missing = append(out.Missing, a.id)
		default:
			bad = fmt.Errorf("tier status: bad reply from node %d: %w", a.id, a.err)
		}
	}
	slices.SortFunc(out.Nodes, func(a, b tier.StatusReply) int { return int(a.Node - b.Node) })
	slices.Sort(out.Missing)
	if bad != nil {
		return out, bad
	}
	if len(out.Nodes) == 0 {
		return out, errors.New("tier status: no node answered")
	}
	return out, nil
}

// lsTry is how long an ls waits for its first answer; each try after
// waits twice as long, up to meta.ReadTryMax, as a metadata read does. A
// restore, which reads every manifest of the topic from the store, gets
// restoreTry, doubling up to restoreTryMax.
const (
	lsTry         = time.Second
	restoreTry    = 5 * time.Second
	restoreTryMax = 20 * time.Second
)

// tierAsk sends one request to the one node that takes it, and asks again,
// with up to twice the wait, when no answer comes in time: a node deaf to
// NATS takes its share of the queue and answers none. Asking again is
// safe: ls changes nothing, and a restore of a topic already restored
// (by an earlier try still running, say) answers that it is.
func (g *Gateway) tierAsk(ctx context.Context, op, topic string, reply any) error {
	body, _ := json.Marshal(tier.AdminRequest{Topic: topic})
	req := nats.NewMsg(rpc.TierSubject(g.cfg.Cluster, op))
	req.Data = body
	first, most := lsTry, meta.ReadTryMax
	if op == "restore" {
		first, most = restoreTry, restoreTryMax
	}
	var msg *nats.Msg
	var err error
	for try := first; ; try = min(2*try, most) {
		tctx, cancel := context.WithTimeout(ctx, try)
		msg, err = g.caller.RequestOne(tctx, req) // the answer may come in chunks
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("tier %s: no node answered: %w", op, err)
	}
	if err := json.Unmarshal(msg.Data, reply); err != nil {
		return fmt.Errorf("tier %s: bad reply: %w", op, err)
	}
	return nil
}

func (g *Gateway) serveTierAsk(w http.ResponseWriter, r *http.Request, op string, reply any, replyErr func() string) {
	topic := r.URL.Query().Get("topic")
	if topic == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "name a topic: ?topic=T"})
		return
	}
	// A restore reads every manifest of the topic from the store.
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	if err := g.tierAsk(ctx, op, topic, reply); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	code := http.StatusOK
	if replyErr() != "" {
		code = http.StatusUnprocessableEntity
	}
	writeJSON(w, code, reply)
}
