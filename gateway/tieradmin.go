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

// TierStatus asks every registered node for its tiered partitions.
func (g *Gateway) TierStatus(ctx context.Context) (TierStatus, error) {
	replies, missing, err := askEveryNode[tier.StatusReply](ctx, g, "tier status", func(id int32) string { return rpc.TierStatusSubject(g.cfg.Cluster, id) })
	slices.SortFunc(replies, func(a, b tier.StatusReply) int { return int(a.Node - b.Node) })
	return TierStatus{Nodes: replies, Missing: missing}, err
}

// CompactionStatus is the cluster's answer to compaction status: one
// reply per node that answered, and the registered nodes that did not.
type CompactionStatus struct {
	Nodes   []rpc.CompactionReply `json:"nodes"`
	Missing []int32               `json:"missing,omitempty"`
}

// CompactionStatus asks every registered node for the compaction state
// of its compacted partitions.
func (g *Gateway) CompactionStatus(ctx context.Context) (CompactionStatus, error) {
	replies, missing, err := askEveryNode[rpc.CompactionReply](ctx, g, "compaction status", func(id int32) string { return rpc.CompactionStatusSubject(g.cfg.Cluster, id) })
	slices.SortFunc(replies, func(a, b rpc.CompactionReply) int { return int(a.Node - b.Node) })
	return CompactionStatus{Nodes: replies, Missing: missing}, err
}

// askEveryNode asks every registered node on its own subject (so that a
// big answer can come in chunks) and returns once all of them answered or
// statusWait passed: the replies, and the nodes that did not answer.
func askEveryNode[T any](ctx context.Context, g *Gateway, what string, subject func(id int32) string) ([]T, []int32, error) {
	replies, missing := []T{}, []int32{}
	nodes, err := g.meta.Read(ctx, meta.ReadRequest{Kind: "nodes"})
	if err != nil {
		return replies, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, statusWait)
	defer cancel()
	type answer struct {
		id    int32
		reply T
		err   error
	}
	answers := make(chan answer, len(nodes.Nodes))
	for _, n := range nodes.Nodes {
		go func(id int32) {
			req := nats.NewMsg(subject(id))
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
			replies = append(replies, a.reply)
		case ctx.Err() != nil || errors.Is(a.err, nats.ErrNoResponders):
			missing = append(missing, a.id)
		default:
			bad = fmt.Errorf("%s: bad reply from node %d: %w", what, a.id, a.err)
		}
	}
	slices.Sort(missing)
	if len(missing) == 0 {
		missing = nil
	}
	if bad != nil {
		return replies, missing, bad
	}
	if len(replies) == 0 {
		return replies, missing, fmt.Errorf("%s: no node answered", what)
	}
	return replies, missing, nil
}

// lsTry is how long an ls waits for its first answer; each try after
// waits twice as long, up to meta.ReadTryMax, as a metadata read does. A
// restore, which reads every manifest of the topic from the store, gets
// restoreTry, doubling up to restoreTryMax: a restore of many partitions
// from a slow store may take tens of seconds, and a try that gives up
// before the node answers is never answered.
const (
	lsTry         = time.Second
	restoreTry    = 5 * time.Second
	restoreTryMax = time.Minute
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
