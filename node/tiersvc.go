package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/strata-io/strata/internal/rpc"
	"github.com/strata-io/strata/meta"
	"github.com/strata-io/strata/tier"
)

// The node's tier admin service: status (every node answers for the
// partitions it leads), ls and restore (one node answers), as JSON on
// rpc.TierSubject.

func (n *Node) subscribeTier() ([]*nats.Subscription, error) {
	var subs []*nats.Subscription
	for _, s := range []struct {
		subject string
		queue   string
		fn      func(context.Context, tier.AdminRequest) any
	}{
		{rpc.TierStatusSubject(n.cfg.Cluster, n.cfg.ID), "", func(context.Context, tier.AdminRequest) any { return n.tierStatus() }},
		{rpc.CompactionStatusSubject(n.cfg.Cluster, n.cfg.ID), "", func(context.Context, tier.AdminRequest) any { return n.compactionStatus() }},
		{rpc.TierSubject(n.cfg.Cluster, "ls"), rpc.TierQueue, n.tierLs},
		{rpc.TierSubject(n.cfg.Cluster, "restore"), rpc.TierQueue, n.tierRestore},
	} {
		handler := n.handlers.Wrap(func(msg *nats.Msg) {
			var req tier.AdminRequest
			var reply any
			if err := json.Unmarshal(msg.Data, &req); err != nil {
				reply = map[string]string{"error": "bad request: " + err.Error()}
			} else {
				ctx, cancel := context.WithTimeout(n.base, 2*time.Minute)
				reply = s.fn(ctx, req)
				cancel()
			}
			r := nats.NewMsg(msg.Reply)
			r.Data, _ = json.Marshal(reply)
			// In chunks when big: ls of a topic with thousands of segments.
			if err := rpc.Respond(n.cfg.Conn, msg, r); err != nil {
				n.logger.Warn("tier admin reply failed", "op", msg.Subject, "bytes", len(r.Data), "error", err)
			}
		})
		sub, err := n.cfg.Conn.QueueSubscribe(s.subject, s.queue, handler)
		if err != nil {
			for _, s := range subs {
				s.Unsubscribe()
			}
			return nil, fmt.Errorf("node: subscribe: %w", err)
		}
		subs = append(subs, sub)
	}
	return subs, nil
}

// tierStatus reports each tiered partition this node leads.
func (n *Node) tierStatus() tier.StatusReply {
	reply := tier.StatusReply{Node: n.cfg.ID, Partitions: []tier.PartitionTierStatus{}}
	if n.cfg.Tier == nil {
		reply.Error = "no tier store configured"
		return reply
	}
	reply.Store, reply.Cache = n.cfg.Tier.String(), n.remote.Stats()
	uploads := map[partitionKey]tier.PartitionStatus{}
	for _, s := range n.uploader.Status() {
		uploads[partitionKey{s.Topic, s.Partition}] = s
	}
	logs := n.readyLogs()
	v := n.cfg.Meta.Server().FSM().View()
	defer v.Close()
	for k, l := range logs {
		part, ok, err := v.Partition(k.topic, k.partition)
		if err != nil || !ok || part.Leader != n.cfg.ID {
			continue
		}
		segs, err := v.TierSegments(k.topic, k.partition)
		if err != nil || (len(segs) == 0 && !tiered(l.configs())) {
			continue
		}
		st := tier.PartitionTierStatus{Topic: k.topic, Partition: k.partition, Node: n.cfg.ID, LocalBytes: l.Size(), RemoteSegments: len(segs),
			OpenTxnOffset: -1}
		if first := l.firstUnstable.Load(); first != math.MaxInt64 {
			st.OpenTxnOffset = first
		}
		for _, s := range segs {
			st.RemoteBytes += s.SizeBytes
		}
		// Closed segments not uploaded yet are the lag: those queued and
		// those waiting for their turn.
		lag, _ := n.unuploaded(k, l)
		for _, info := range lag {
			st.LagBytes += info.Size
		}
		if u, ok := uploads[k]; ok {
			if !u.PendingSince.IsZero() {
				st.LagSeconds = time.Since(u.PendingSince).Seconds()
			}
			if !u.LastUpload.IsZero() {
				st.LastUploadMs = u.LastUpload.UnixMilli()
			}
			if u.LastError != "" && u.LastErrorAt.After(u.LastUpload) {
				st.LastError, st.LastErrorMs = u.LastError, u.LastErrorAt.UnixMilli()
			}
		}
		if len(segs) > 0 && st.LastUploadMs == 0 {
			st.LastUploadMs = segs[len(segs)-1].UploadTimeMs
		}
		reply.Partitions = append(reply.Partitions, st)
	}
	return reply
}

// tierLs lists a topic's manifest from this node's copy of meta.
func (n *Node) tierLs(_ context.Context, req tier.AdminRequest) any {
	reply := tier.LsReply{Topic: req.Topic, Partitions: []tier.PartitionManifest{}}
	v := n.cfg.Meta.Server().FSM().View()
	defer v.Close()
	t, ok, err := v.Topic(req.Topic)
	if err == nil && !ok {
		err = fmt.Errorf("unknown topic %q", req.Topic)
	}
	for p := int32(0); err == nil && p < t.Partitions; p++ {
		var part meta.Partition
		var segs []meta.TierSegment
		if part, _, err = v.Partition(req.Topic, p); err == nil {
			segs, err = v.TierSegments(req.Topic, p)
		}
		if segs == nil {
			segs = []meta.TierSegment{}
		}
		reply.Partitions = append(reply.Partitions, tier.PartitionManifest{Version: tier.ManifestVersion, Topic: req.Topic,
			Partition: p, LogStartOffset: part.LogStartOffset, Segments: tier.SegmentEntries(segs)})
	}
	if err != nil {
		reply.Error = err.Error()
	}
	return reply
}

// tierRestore recreates a topic from the bucket alone: its topic.json and
// each partition's manifest.json become a new topic (same id and
// configs) whose manifest is the uploaded segments; its leaders then
// serve the whole history and append after it.
func (n *Node) tierRestore(ctx context.Context, req tier.AdminRequest) any {
	reply := tier.RestoreReply{Topic: req.Topic}
	if err := n.restore(ctx, req.Topic, &reply); err != nil {
		reply.Error = err.Error()
	}
	return reply
}

func (n *Node) restore(ctx context.Context, name string, reply *tier.RestoreReply) error {
	if n.cfg.Tier == nil {
		return errors.New("this node has no tier store (--tier-url)")
	}
	tm, err := tier.FindTopic(ctx, n.cfg.Tier, name)
	if err != nil {
		return err
	}
	t, err := tm.Topic()
	if err != nil {
		return err
	}
	restore := make([]meta.RestoredPartition, t.Partitions)
	reply.EndOffsets = make([]int64, t.Partitions)
	for p := range t.Partitions {
		pm, err := tier.ReadPartitionManifest(ctx, n.cfg.Tier, t, p)
		if err != nil {
			return err
		}
		restore[p] = meta.RestoredPartition{LogStartOffset: pm.LogStartOffset, Segments: pm.TierSegments()}
		for _, s := range pm.Segments {
			reply.Segments++
			reply.Bytes += s.SizeBytes
			reply.EndOffsets[p] = s.LastOffset + 1
		}
	}
	res, err := meta.NewClient(n.cfg.Conn, n.cfg.Cluster).Propose(ctx, &meta.CreateTopic{Topic: t, Restore: restore})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	reply.Partitions = t.Partitions
	if res.Value == 1 {
		reply.Already = true
		n.logger.Info("tier: topic already restored", "topic", name)
		return nil
	}
	n.logger.Info("tier: topic restored from the store", "topic", name, "partitions", t.Partitions, "segments", reply.Segments, "bytes", reply.Bytes)
	return nil
}
