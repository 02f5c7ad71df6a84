package node

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"

	"github.com/strata-io/strata/meta"
	plog "github.com/strata-io/strata/node/log"
	"github.com/strata-io/strata/tier"
)

// holdTier is the node/log hold that keeps a closed segment on disk until
// its upload is recorded in the manifest.
const holdTier = "tier"

// tierState is an open log's part in tiering: which closed segments wait
// for upload. Segments are held from the moment they close (the
// OnSegmentClosed hook, under the log's append lock, so retention never
// sees them unheld) and queued by the maintenance loop.
type tierState struct {
	mu      sync.Mutex
	enabled bool
	waiting map[int64]plog.SegmentInfo // held, not queued
	queued  map[int64]bool
	// manifestDirty: the bucket's copy of the partition's manifest is
	// behind meta's.
	manifestDirty bool
	ctx           context.Context
	cancel        context.CancelFunc
}

func (s *tierState) init(parent context.Context, enabled bool) {
	s.enabled = enabled
	s.manifestDirty = true
	s.waiting = map[int64]plog.SegmentInfo{}
	s.queued = map[int64]bool{}
	s.ctx, s.cancel = context.WithCancel(parent)
}

// closed is the log's OnSegmentClosed hook.
func (s *tierState) closed(l *plog.Log, info plog.SegmentInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.enabled || s.queued[info.BaseOffset] {
		return
	}
	l.Hold(info.BaseOffset, holdTier)
	s.waiting[info.BaseOffset] = info
}

func (s *tierState) setEnabled(on bool) {
	s.mu.Lock()
	s.enabled = on
	s.mu.Unlock()
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

// holdUnuploaded holds, at open, every closed segment the manifest does
// not have yet: a restart or a new leader picks up where uploads stopped.
func (n *Node) holdUnuploaded(ol *openLog, topic string, p int32) error {
	ol.tier.mu.Lock()
	enabled := ol.tier.enabled
	ol.tier.mu.Unlock()
	if !enabled {
		return nil
	}
	v := n.cfg.Meta.Server().FSM().View()
	segs, err := v.TierSegments(topic, p)
	v.Close()
	if err != nil {
		return err
	}
	recorded := map[int64]bool{}
	for _, s := range segs {
		recorded[s.BaseOffset] = true
	}
	for _, info := range ol.Segments() {
		if info.Sealed && !recorded[info.BaseOffset] {
			ol.tier.closed(ol.Log, info)
		}
	}
	return nil
}

// enqueueUploads hands a led log's waiting segments to the uploader. On
// a follower (or a leader whose segments were cut elsewhere than its
// predecessor's) a segment the manifest already covers is released
// instead: the leader uploaded that data.
func (n *Node) enqueueUploads(key partitionKey, ol *openLog) {
	if n.uploader == nil {
		return
	}
	span, err := n.tierSpan(key.topic, key.partition)
	if err != nil {
		return
	}
	ol.repl.mu.Lock()
	leading := ol.repl.leader != nil
	ol.repl.mu.Unlock()
	ol.tier.mu.Lock()
	defer ol.tier.mu.Unlock()
	// Oldest first: the uploader keeps a partition's manifest gap-free.
	// Only what every ISR member has: data above the high watermark may
	// still be truncated by a leader change.
	hw := ol.highWatermark()
	for _, base := range slices.Sorted(maps.Keys(ol.tier.waiting)) {
		info := ol.tier.waiting[base]
		if span.ok && info.NextOffset-1 <= span.last.LastOffset {
			delete(ol.tier.waiting, base)
			ol.Release(base, holdTier)
			continue
		}
		if !leading || info.NextOffset > hw {
			break
		}
		delete(ol.tier.waiting, base)
		ol.tier.queued[base] = true
		n.uploader.Enqueue(&tier.Job{
			Topic: key.topic, TopicID: ol.topicID, Partition: key.partition, Segment: info,
			Epochs: segmentEpochs(ol.Epochs(), info), Leader: n.leaderEpoch(key), Ctx: ol.tier.ctx,
			Done: func(err error) { n.uploaded(key, ol, info, err) },
		})
	}
}

// uploaded ends one upload: a recorded segment is released to local
// retention; one that was not stays held and waits for the next try.
func (n *Node) uploaded(key partitionKey, ol *openLog, info plog.SegmentInfo, err error) {
	ol.tier.mu.Lock()
	defer ol.tier.mu.Unlock()
	delete(ol.tier.queued, info.BaseOffset)
	switch {
	case err == nil:
		ol.Release(info.BaseOffset, holdTier)
		ol.tier.manifestDirty = true
	case ol.tier.ctx.Err() != nil:
		// The log is closing; its holds go with it.
	default:
		if !errors.Is(err, tier.ErrNotLeader) {
			n.logger.Warn("tier: segment not uploaded; will try again", "topic", key.topic, "partition", key.partition,
				"base_offset", info.BaseOffset, "error", err)
		}
		ol.tier.waiting[info.BaseOffset] = info
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
		if maps.Equal(configs, ol.configs) {
			continue
		}
		if err := ol.SetConfig(logConfig(n.cfg.LogDefaults, configs)); err != nil {
			n.logger.Warn("apply topic configs", "topic", key.topic, "partition", key.partition, "error", err)
			continue
		}
		ol.configs = configs
		on := n.uploader != nil && tiered(configs)
		ol.tier.setEnabled(on)
		ol.tier.markDirty()
		if on {
			if err := n.holdUnuploaded(ol, key.topic, key.partition); err != nil {
				n.logger.Warn("tier: reading the manifest", "topic", key.topic, "partition", key.partition, "error", err)
			}
		}
	}
}

// tierRecorder is the uploader's view of the manifest: this node's copy
// to look, a proposal to add.
type tierRecorder struct{ m *meta.Member }

func (r tierRecorder) Recorded(topic string, p int32, base int64) (meta.TierSegment, bool, error) {
	v := r.m.Server().FSM().View()
	defer v.Close()
	segs, err := v.TierSegments(topic, p)
	if err != nil {
		return meta.TierSegment{}, false, err
	}
	for _, s := range segs {
		if s.BaseOffset == base {
			return s, true, nil
		}
	}
	return meta.TierSegment{}, false, nil
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
	if err == nil && len(segs) == 0 && !tiered(ol.configs) {
		return nil // never tiered: nothing to describe
	}
	if err == nil {
		err = tier.WriteManifests(ctx, n.cfg.Tier, t, tier.PartitionManifest{Partition: key.partition,
			LogStartOffset: part.LogStartOffset, Segments: segs})
	}
	if err != nil {
		ol.tier.markDirty() // next tick
		return err
	}
	return nil
}
