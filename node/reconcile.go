package node

import (
	"context"
	"time"

	"github.com/strata-io/strata/meta"
	"github.com/strata-io/strata/tier"
)

// reconciler removes objects of the tier no manifest references (see
// tier.Reconcile). One node runs it: the metadata leader, whose copy of
// the manifests is the newest.
type reconciler struct {
	// emptySince is when each deleted topic was first seen with no object
	// left. Its record is dropped only once it stays empty for a grace
	// period, so an upload that was in flight when the topic was deleted
	// cannot land after the record is gone.
	emptySince map[[16]byte]time.Time
}

// reconcileLoop runs a pass every TierReconcileInterval while this node
// leads the metadata group; apart from maintenance, as listing a large
// bucket takes a while.
func (n *Node) reconcileLoop(ctx context.Context) {
	defer n.wg.Done()
	n.reconciler.emptySince = map[[16]byte]time.Time{}
	t := time.NewTicker(n.cfg.TierReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !n.cfg.Meta.Server().IsLeader() {
			continue
		}
		if err := n.reconcile(ctx); err != nil && ctx.Err() == nil {
			n.logger.Warn("tier: reconciling the store with the manifests", "error", err)
		}
	}
}

func (n *Node) reconcile(ctx context.Context) error {
	state := tier.ReconcileState{Live: map[[16]byte]bool{}, Referenced: map[string]bool{}, Deleted: map[[16]byte]bool{}}
	v := n.cfg.Meta.Server().FSM().View()
	topics, err := v.Topics()
	for _, t := range topics {
		state.Live[t.ID] = true
		for p := int32(0); err == nil && p < t.Partitions; p++ {
			var segs []meta.TierSegment
			segs, err = v.TierSegments(t.Name, p)
			for _, s := range segs {
				state.Referenced[s.ObjectKey] = true
			}
			// Replaced by compaction, deleted by the leader once no
			// reader can hold them.
			var retired []meta.RetiredObject
			if err == nil {
				retired, err = v.RetiredObjects(t.Name, p)
			}
			for _, r := range retired {
				state.Referenced[r.ObjectKey] = true
			}
		}
	}
	var deleted []meta.DeletedTopic
	if err == nil {
		deleted, err = v.DeletedTopics()
	}
	v.Close()
	if err != nil {
		return err
	}
	for _, d := range deleted {
		state.Deleted[d.ID] = true
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	now := time.Now()
	res, err := tier.Reconcile(ctx, n.cfg.Tier, state, now.Add(-n.cfg.TierOrphanGrace))
	if err != nil {
		return err
	}
	if res.Removed > 0 || res.Partial > 0 {
		n.logger.Info("tier: removed objects no manifest references", "objects", res.Removed, "bytes", res.RemovedBytes,
			"unfinished_uploads", res.Partial, "listed", res.Listed)
	}
	var forget [][16]byte
	empty := map[[16]byte]bool{}
	for _, id := range res.DeletedEmpty {
		empty[id] = true
		since, ok := n.reconciler.emptySince[id]
		switch {
		case !ok:
			n.reconciler.emptySince[id] = now
		case now.Sub(since) >= n.cfg.TierOrphanGrace:
			forget = append(forget, id)
		}
	}
	for id := range n.reconciler.emptySince {
		if !empty[id] {
			delete(n.reconciler.emptySince, id)
		}
	}
	if len(forget) == 0 {
		return nil
	}
	r, err := n.cfg.Meta.Propose(ctx, &meta.ForgetDeletedTopics{IDs: forget})
	if err == nil {
		err = r.Err
	}
	if err == nil {
		for _, id := range forget {
			delete(n.reconciler.emptySince, id)
		}
	}
	return err
}
