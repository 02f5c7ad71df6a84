package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"github.com/strata-io/strata/meta"
	"github.com/strata-io/strata/tier"
)

// The gateway's admin API, on its admin address, for `strata cluster`,
// `strata tier` and scripts:
//
//	GET  /v1/cluster/status         nodes, controller, gateways, partitions in trouble, tier lag
//	GET  /v1/tier/status            every node's tiered partitions
//	GET  /v1/tier/ls?topic=T        T's uploaded segments
//	POST /v1/tier/restore?topic=T   recreate T from the bucket alone
//	GET  /v1/share/partitions?group=G  G's share-partitions: start, records in flight
//
// Answers are JSON; an error is {"error": "..."}.

// ClusterStatus is the cluster as the controller and this gateway see it.
type ClusterStatus struct {
	Controller int32           `json:"controller"`
	Nodes      []NodeStatus    `json:"nodes"`
	Gateways   []GatewayStatus `json:"gateways"`
	Partitions int             `json:"partitions"`
	// UnderReplicated partitions have fewer in-sync replicas than
	// replicas; Offline ones have no leader.
	UnderReplicated []meta.Partition `json:"under_replicated"`
	Offline         []meta.Partition `json:"offline"`
	// TierLagBytes is closed segments not yet uploaded, over all nodes
	// that answered (TierMissing did not).
	TierLagBytes int64   `json:"tier_lag_bytes"`
	TierMissing  []int32 `json:"tier_missing,omitempty"`
}

// NodeStatus is one registered node.
type NodeStatus struct {
	ID       int32  `json:"id"`
	RaftAddr string `json:"raft_addr"`
	Rack     string `json:"rack,omitempty"`
	// Live: the controller heard its heartbeat within the session
	// timeout.
	Live bool `json:"live"`
	// Leads and Replicas count its partitions.
	Leads    int `json:"leads"`
	Replicas int `json:"replicas"`
}

// GatewayStatus is one live gateway (a broker to clients).
type GatewayStatus struct {
	ID   int32  `json:"id"`
	Addr string `json:"addr"`
}

// ClusterStatus reads the cluster from the controller, the live gateways
// from this one's peers, and the tier lag from the nodes.
func (g *Gateway) ClusterStatus(ctx context.Context) (ClusterStatus, error) {
	r, err := g.meta.Read(ctx, meta.ReadRequest{Kind: "cluster"})
	if err != nil {
		return ClusterStatus{}, err
	}
	st := ClusterStatus{Controller: r.Controller, Partitions: len(r.Partitions),
		UnderReplicated: []meta.Partition{}, Offline: []meta.Partition{}}
	byID := map[int32]*NodeStatus{}
	for _, n := range r.Nodes {
		st.Nodes = append(st.Nodes, NodeStatus{ID: n.ID, RaftAddr: n.RaftAddr, Rack: n.Rack, Live: slices.Contains(r.Live, n.ID)})
	}
	for i := range st.Nodes {
		byID[st.Nodes[i].ID] = &st.Nodes[i]
	}
	for _, p := range r.Partitions {
		if n := byID[p.Leader]; n != nil {
			n.Leads++
		}
		for _, id := range p.Replicas {
			if n := byID[id]; n != nil {
				n.Replicas++
			}
		}
		switch {
		case p.Leader < 0:
			st.Offline = append(st.Offline, p)
		case len(p.ISR) < len(p.Replicas):
			st.UnderReplicated = append(st.UnderReplicated, p)
		}
	}
	for _, p := range g.peers.live() {
		st.Gateways = append(st.Gateways, GatewayStatus{ID: p.id, Addr: addr(p.host, p.port)})
	}
	if ts, err := g.TierStatus(ctx); err == nil {
		for _, n := range ts.Nodes {
			for _, p := range n.Partitions {
				st.TierLagBytes += p.LagBytes
			}
		}
		st.TierMissing = ts.Missing
	}
	return st, nil
}

// RegisterAdmin adds the gateway's admin routes to mux.
func (g *Gateway) RegisterAdmin(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/cluster/status", func(w http.ResponseWriter, r *http.Request) {
		st, err := g.ClusterStatus(r.Context())
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("GET /v1/tier/status", func(w http.ResponseWriter, r *http.Request) {
		st, err := g.TierStatus(r.Context())
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("GET /v1/compaction/status", func(w http.ResponseWriter, r *http.Request) {
		st, err := g.CompactionStatus(r.Context())
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("GET /v1/share/partitions", func(w http.ResponseWriter, r *http.Request) {
		ps, err := g.SharePartitions(r.Context(), r.URL.Query().Get("group"))
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, ps)
	})
	mux.HandleFunc("GET /v1/tier/ls", func(w http.ResponseWriter, r *http.Request) {
		var reply tier.LsReply
		g.serveTierAsk(w, r, "ls", &reply, func() string { return reply.Error })
	})
	mux.HandleFunc("POST /v1/tier/restore", func(w http.ResponseWriter, r *http.Request) {
		var reply tier.RestoreReply
		g.serveTierAsk(w, r, "restore", &reply, func() string { return reply.Error })
		if reply.Error == "" {
			g.cache.invalidate()
		}
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// TopicPartitions are topic's partitions as the metadata holds them:
// replicas, ISR and leader by node (a Kafka client's Metadata names
// gateways instead).
func (g *Gateway) TopicPartitions(ctx context.Context, topic string) ([]meta.Partition, error) {
	r, err := g.meta.Read(ctx, meta.ReadRequest{Kind: "topics", Topic: topic})
	if err != nil {
		return nil, err
	}
	return r.Partitions, nil
}

// TierLs lists topic's uploaded segments, by partition, as the bucket's
// manifests hold them.
func (g *Gateway) TierLs(ctx context.Context, topic string) (tier.LsReply, error) {
	var reply tier.LsReply
	if err := g.tierAsk(ctx, "ls", topic, &reply); err != nil {
		return reply, err
	}
	if reply.Error != "" {
		return reply, errors.New(reply.Error)
	}
	return reply, nil
}
