package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/strata-io/strata/meta"
	plog "github.com/strata-io/strata/node/log"
	"github.com/strata-io/strata/tier"
)

// tierState is an open log's part in tiering. What is left to upload is
// not kept here: each tick derives it from the log's closed segments and
// the manifest, so no list can go stale across a truncation, a deletion
// or a restart. What is kept is which segments are with the uploader.
type tierState struct {
	// enabled: the topic is tiered and this node has a store. Read by
	// the log's Removable hook under the log's append lock, so atomic.
	enabled atomic.Bool
	mu      sync.Mutex
	queued  map[int64]bool // guarded by mu: base offsets handed to the uploader, not done
	// manifestDirty: the bucket's copy of the partition's manifest is
	// behind meta's.
	manifestDirty bool // guarded by mu
	ctx           context.Context
	cancel        context.CancelFunc
	// producers is the producer state computed for the last segment
	// handed to the uploader, as of its end (see producerStateAt). A
	// truncation drops it.
	producers struct {
		sync.Mutex
		at int64
		ps producerStates
	}
}

// forgetProducers drops the producer state kept for uploads: the log
// below it is about to change.
func (s *tierState) forgetProducers() {
	s.producers.Lock()
	s.producers.ps = nil
	s.producers.Unlock()
}

func (s *tierState) init(parent context.Context, enabled bool) {
	s.enabled.Store(enabled)
	s.manifestDirty = true
	s.queued = map[int64]bool{}
	s.ctx, s.cancel = context.WithCancel(parent)
}

func (s *tierState) markDirty() {
	s.mu.Lock()
	s.manifestDirty = true
	s.mu.Unlock()
}

// stop cancels the log's uploads (it is closing).
func (s *tierState) stop() {
	if s.cancel != nil {
		s.cancel()
	}
}

// tierCovers reports whether the bucket holds every offset of [base,
// next) of a partition, by this node's copy of meta: each offset is in
// some manifest entry, or below the partition's log start offset (DeleteRecords
// and total retention raise it; what lies below it was deleted on
// purpose). It walks the entries from base, so a gap in the manifest is
// never taken for coverage. Meta only ever adds coverage: a yes stays a
// yes.
func (n *Node) tierCovers(topic string, p int32, base, next int64) (bool, error) {
	v := n.cfg.Meta.Server().FSM().View()
	defer v.Close()
	part, ok, err := v.Partition(topic, p)
	if err != nil || !ok {
		return false, errors.Join(err, fmt.Errorf("tier: partition %s/%d not in meta", topic, p))
	}
	for pos := max(base, part.LogStartOffset); pos < next; {
		s, ok, err := v.TierSegmentAt(topic, p, pos)
		if err != nil || !ok {
			return false, err
		}
		pos = s.LastOffset + 1
	}
	return true, nil
}

// tierCoveredTo is the first offset from start that the partition's
// manifest does not hold (start itself if none).
func (n *Node) tierCoveredTo(k partitionKey, start int64) int64 {
	v := n.cfg.Meta.Server().FSM().View()
	defer v.Close()
	pos := start
	for {
		s, ok, err := v.TierSegmentAt(k.topic, k.partition, pos)
		if err != nil || !ok {
			return pos
		}
		pos = s.LastOffset + 1
	}
}

// removable is a partition log's Options.Removable. The rules: no
// segment holding an offset at or past the first offset of an open
// transaction goes (retention never passes the last stable offset: the
// transaction's records, and the state its marker ends, must stay until
// it ends); and a tiered partition's segment leaves the local disk only
// once the manifest covers it to its last offset (or it lies below the
// log start, deleted on purpose). The log asks in the same critical
// section as it deletes, and again right before deleting under the
// invariants build tag.
func (n *Node) removable(topic string, p int32, ol *openLog) func(plog.SegmentInfo) bool {
	ts := &ol.tier
	return func(s plog.SegmentInfo) bool {
		if s.NextOffset > ol.firstUnstable.Load() {
			return false // until its producer state is loaded, too: 0
		}
		if !ts.enabled.Load() {
			return true
		}
		covered, err := n.tierCovers(topic, p, s.BaseOffset, s.NextOffset)
		return err == nil && covered
	}
}

// unuploaded lists a log's closed segments that the bucket does not hold
// whole yet, oldest first.
func (n *Node) unuploaded(key partitionKey, ol *openLog) ([]plog.SegmentInfo, error) {
	var out []plog.SegmentInfo
	for _, info := range ol.Segments() {
		if !info.Sealed || info.NextOffset <= ol.StartOffset() {
			continue
		}
		covered, err := n.tierCovers(key.topic, key.partition, info.BaseOffset, info.NextOffset)
		if err != nil {
			return nil, err
		}
		if !covered {
			out = append(out, info)
		}
	}
	return out, nil
}

// enqueueUploads hands a led log's closed segments that the manifest
// lacks to the uploader, oldest first, and only those below the high
// watermark: data above it may still be truncated by a leader change.
// A follower uploads nothing; its segments become removable once the
// leader's uploads cover them.
func (n *Node) enqueueUploads(key partitionKey, ol *openLog) {
	if n.uploader == nil || !ol.tier.enabled.Load() {
		return
	}
	ol.repl.mu.Lock()
	leading := ol.repl.leader != nil
	ol.repl.mu.Unlock()
	if !leading {
		return
	}
	segs, err := n.unuploaded(key, ol)
	if err != nil {
		return
	}
	hw := ol.highWatermark()
	ol.tier.mu.Lock()
	var todo []plog.SegmentInfo
	for _, info := range segs {
		if info.NextOffset > hw {
			break
		}
		if !ol.tier.queued[info.BaseOffset] {
			todo = append(todo, info)
		}
	}
	ol.tier.mu.Unlock()
	for _, info := range todo {
		producers, err := n.producerStateAt(ol, key.topic, key.partition, info.BaseOffset, info.NextOffset)
		if err != nil {
			n.logger.Warn("tier: producer state at a segment's end not read; will try again", "topic", key.topic,
				"partition", key.partition, "base_offset", info.BaseOffset, "error", err)
			return
		}
		ol.tier.mu.Lock()
		queued := ol.tier.queued[info.BaseOffset]
		ol.tier.queued[info.BaseOffset] = true
		ol.tier.mu.Unlock()
		if queued {
			continue
		}
		n.uploader.Enqueue(&tier.Job{
			Topic: key.topic, TopicID: ol.topicID, Partition: key.partition, Segment: info,
			Epochs: segmentEpochs(ol.Epochs(), info), Producers: producers, Leader: n.leaderEpoch(key), Ctx: ol.tier.ctx,
			Gone: func() bool { return info.NextOffset <= ol.StartOffset() },
			Done: func(err error) { n.uploaded(key, ol, info, err) },
		})
	}
}

// uploaded ends one upload. A recorded segment becomes removable through
// the manifest; one that was not is found again by the next tick.
func (n *Node) uploaded(key partitionKey, ol *openLog, info plog.SegmentInfo, err error) {
	ol.tier.mu.Lock()
	defer ol.tier.mu.Unlock()
	delete(ol.tier.queued, info.BaseOffset)
	switch {
	case err == nil:
		ol.tier.manifestDirty = true
	case ol.tier.ctx.Err() != nil:
		// The log is closing.
	case !errors.Is(err, tier.ErrNotLeader) && !errors.Is(err, tier.ErrSegmentGone):
		n.logger.Warn("tier: segment not uploaded; will try again", "topic", key.topic, "partition", key.partition,
			"base_offset", info.BaseOffset, "error", err)
	}
}

// leaderEpoch reports the partition's leader epoch while this node leads.
func (n *Node) leaderEpoch(key partitionKey) func() (int32, bool) {
	return func() (int32, bool) {
		v := n.cfg.Meta.Server().FSM().View()
		defer v.Close()
		p, ok, err := v.Partition(key.topic, key.partition)
		if err != nil || !ok || p.Leader != n.cfg.ID {
			return -1, false
		}
		return p.LeaderEpoch, true
	}
}

// segmentEpochs are the epochs in force within a segment: the one at its
// base offset and those that start inside it.
func segmentEpochs(all []plog.EpochEntry, info plog.SegmentInfo) []meta.EpochStart {
	var out []meta.EpochStart
	for i, e := range all {
		if e.StartOffset >= info.NextOffset {
			break
		}
		if i+1 < len(all) && all[i+1].StartOffset <= info.BaseOffset {
			continue // ended before the segment
		}
		out = append(out, meta.EpochStart{Epoch: e.Epoch, StartOffset: max(e.StartOffset, info.BaseOffset)})
	}
	return out
}

// topicConfigs are a topic's configs over this node's topic defaults.
func (n *Node) topicConfigs(t meta.Topic) map[string]string {
	c := maps.Clone(n.cfg.TopicDefaults)
	if c == nil {
		c = map[string]string{}
	}
	maps.Copy(c, t.Configs)
	return c
}

// refreshConfigs applies topic config changes (AlterConfigs) to open logs.
func (n *Node) refreshConfigs(logs map[partitionKey]*openLog) {
	v := n.cfg.Meta.Server().FSM().View()
	defer v.Close()
	for key, ol := range logs {
		t, ok, err := v.Topic(key.topic)
		if err != nil || !ok || t.ID != ol.topicID {
			continue
		}
		configs := n.topicConfigs(t)
		if maps.Equal(configs, ol.configs()) {
			continue
		}
		if err := ol.SetConfig(logConfig(n.cfg.LogDefaults, configs)); err != nil {
			n.logger.Warn("apply topic configs", "topic", key.topic, "partition", key.partition, "error", err)
			continue
		}
		ol.setConfigs(configs)
		ol.tier.enabled.Store(n.uploader != nil && tiered(configs))
		ol.tier.markDirty()
	}
}

// tierRecorder is the uploader's view of the manifest: this node's copy
// to look, a proposal to add.
type tierRecorder struct{ m *meta.Member }

// Recorded finds the entry holding base: one at base, or one a clean of
// the uploaded segments merged it into.
func (r tierRecorder) Recorded(topic string, p int32, base int64) (meta.TierSegment, bool, error) {
	v := r.m.Server().FSM().View()
	defer v.Close()
	s, ok, err := v.TierSegmentAt(topic, p, base)
	if err != nil || !ok || s.LastOffset < base {
		return meta.TierSegment{}, false, err
	}
	return s, true, nil
}

func (r tierRecorder) Record(ctx context.Context, s meta.TierSegment) error {
	res, err := r.m.Propose(ctx, &meta.AddTierSegment{Segment: s})
	if err != nil {
		return err
	}
	return res.Err
}

// writeManifest brings the bucket's copy of a partition's manifest (and
// its topic's config) up to meta's, when it is behind and this node leads
// the partition.
func (n *Node) writeManifest(ctx context.Context, key partitionKey, ol *openLog) error {
	ol.tier.mu.Lock()
	dirty := ol.tier.manifestDirty
	ol.tier.manifestDirty = false
	ol.tier.mu.Unlock()
	if !dirty || n.cfg.Tier == nil {
		return nil
	}
	v := n.cfg.Meta.Server().FSM().View()
	t, tok, err := v.Topic(key.topic)
	var part meta.Partition
	var pok bool
	var segs []meta.TierSegment
	if err == nil && tok {
		part, pok, err = v.Partition(key.topic, key.partition)
	}
	if err == nil && pok {
		segs, err = v.TierSegments(key.topic, key.partition)
	}
	v.Close()
	if err == nil && (!tok || !pok || t.ID != ol.topicID || part.Leader != n.cfg.ID) {
		return nil // not ours to write
	}
	if err == nil && len(segs) == 0 && !tiered(ol.configs()) {
		return nil // never tiered: nothing to describe
	}
	if err == nil {
		err = tier.WriteManifests(ctx, n.cfg.Tier, t, key.partition, part.LogStartOffset, segs)
	}
	if err != nil {
		ol.tier.markDirty() // next tick
		return err
	}
	return nil
}
