package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/strata-io/strata/meta"
	plog "github.com/strata-io/strata/node/log"
	"github.com/strata-io/strata/tier"
)

// Compaction of uploaded segments (beyond Kafka, which cannot compact a
// tiered topic). The leader of a tiered, compacted partition cleans its
// manifest as the local cleaner cleans a log, with the same decisions
// (plog.Compactor):
//
//  1. it maps the keys of the dirty entries (from the remote cleaner
//     checkpoint in meta), reading them from the bucket through the
//     node's chunk cache, paced like the local cleaner;
//  2. it rewrites the entries from the log start to the end of what it
//     mapped, a group of consecutive entries (at most segment.bytes of
//     them) at a time, into one new segment written to a scratch
//     directory;
//  3. it uploads each new segment under new keys (<base>-<epoch>-c<ms>:
//     nothing in the bucket is ever overwritten), then switches the
//     manifest to it with one command (meta.ReplaceTierSegments), fenced
//     by its leader epoch and refused if the entries changed meanwhile;
//  4. the replaced objects are retired: they stay in the bucket until
//     file.delete.delay.ms after the switch, then the leader deletes them
//     (deleteRetired). A reader holds an entry only for one fetch, which
//     the delay (60 s by default) well exceeds, so a reader that took the
//     old entry just before the switch still finds its objects. The
//     reconciler counts retired objects as referenced, and removes the
//     objects of a switch that never committed once they pass its grace
//     period;
//  5. it records how far it reached and when (meta.MarkTierCleaned): the
//     next clean's dirty part, and the tombstone horizon.
//
// An entry never changes its range: a group's new entry starts at its
// first entry's base and ends at its last one's end, whose last batch
// stays (empty if need be). A group of one entry from which nothing
// would go is not uploaded again.

// remotePlan is a tiered compacted partition's uploaded part, as the
// remote cleaner sees it.
type remotePlan struct {
	key     partitionKey
	ol      *openLog
	topic   meta.Topic
	entries []meta.TierSegment // cleanable entries, from the log start
	ends    []int64            // one past each entry's offsets (the next entry's base, where they overlap)
	state   meta.TierCleanerState
	// firstDirty is the checkpoint: entries ending at or below it are
	// clean.
	firstDirty int64
	ratio      float64
	due        bool
}

// planRemoteClean works out what a led, tiered, compacted partition's
// manifest holds to clean. ok false: nothing to plan (not such a
// partition, or not led here).
func (n *Node) planRemoteClean(k partitionKey, ol *openLog, now time.Time) (remotePlan, bool) {
	p := remotePlan{key: k, ol: ol}
	if n.cfg.Tier == nil || n.remote == nil || !ol.tier.enabled.Load() || !compacted(ol.configs()) {
		return p, false
	}
	v := n.cfg.Meta.Server().FSM().View()
	part, ok, err := v.Partition(k.topic, k.partition)
	var all []meta.TierSegment
	if err == nil && ok && part.Leader == n.cfg.ID {
		p.topic, ok, err = v.Topic(k.topic)
		if err == nil && ok {
			all, err = v.TierSegments(k.topic, k.partition)
		}
		if err == nil {
			p.state, err = v.TierCleaner(k.topic, k.partition)
		}
	}
	v.Close()
	if err != nil || !ok || part.Leader != n.cfg.ID || p.topic.ID != ol.topicID || len(all) == 0 {
		return p, false
	}
	hw := ol.highWatermark()
	ol.appendMu.Lock()
	upTo := ol.lastStableOffset(hw) // an open transaction's records stay as written
	ol.appendMu.Unlock()
	lag := configDuration(ol.configs(), "min.compaction.lag.ms", 0)
	maxLag := configDuration(ol.configs(), "max.compaction.lag.ms", math.MaxInt64)
	p.firstDirty = max(p.state.FirstDirty, part.LogStartOffset)
	var dirty, cleanable int64
	for i, e := range all {
		end := e.LastOffset + 1
		if i+1 < len(all) {
			end = min(end, all[i+1].BaseOffset)
		}
		if end <= part.LogStartOffset {
			continue // going by retention
		}
		if end > upTo || lag > 0 && e.MaxTimestamp > now.Add(-lag).UnixMilli() {
			break
		}
		p.entries, p.ends = append(p.entries, e), append(p.ends, end)
		cleanable += e.SizeBytes
		if end > p.firstDirty {
			dirty += e.SizeBytes
			if maxLag < math.MaxInt64 && e.MaxTimestamp < now.Add(-maxLag).UnixMilli() {
				p.due = true
			}
		}
	}
	if cleanable > 0 {
		p.ratio = float64(dirty) / float64(cleanable)
	}
	return p, true
}

// dirtiestRemote picks the tiered compacted partition whose manifest to
// clean next, as dirtiestLog does for local logs.
func (n *Node) dirtiestRemote(skip map[partitionKey]bool) (remotePlan, bool) {
	var best *remotePlan
	now := time.Now()
	for k, ol := range n.readyLogs() {
		if ol.Log == nil || skip[k] {
			continue
		}
		p, ok := n.planRemoteClean(k, ol, now)
		if !ok {
			continue
		}
		ol.cleaner.mu.Lock()
		ol.cleaner.remote.dirtyRatio, ol.cleaner.remote.cleanedTo, ol.cleaner.remote.on = p.ratio, p.firstDirty, true
		ol.cleaner.mu.Unlock()
		if worthCleaning(ol.configs(), p.ratio, p.due) && (best == nil || dirtier(p.due, p.ratio, best.due, best.ratio)) {
			best = &p
		}
	}
	if best == nil {
		return remotePlan{}, false
	}
	return *best, true
}

// remoteCleanResult is what one remote clean did.
type remoteCleanResult struct {
	cleanedTo                    int64
	bytesRead, before, after     int64
	groups, uploaded, recordsOut int64
}

// errRemoteMapFull stops a scan when the key map is full.
var errRemoteMapFull = errors.New("key map full")

// cleanRemote runs one clean of a partition's manifest and records what
// it did.
func (n *Node) cleanRemote(ctx context.Context, p remotePlan, pace *pacer, codec plog.Codec) {
	start := time.Now()
	res, err := n.cleanRemoteOnce(ctx, p, pace, codec)
	ol := p.ol
	ol.cleaner.mu.Lock()
	defer ol.cleaner.mu.Unlock()
	r := &ol.cleaner.remote
	r.cleans++
	n.counts.remoteCleans.Add(1)
	n.counts.remoteReadBytes.Add(res.bytesRead)
	if err != nil {
		n.counts.remoteCleanErrors.Add(1)
		r.lastErr = err.Error()
		level := n.logger.Warn
		if errors.Is(err, meta.ErrManifestChanged) || errors.Is(err, meta.ErrStaleEpoch) || ctx.Err() != nil {
			level = n.logger.Debug
		}
		level("tier: compaction of uploaded segments failed; will try again", "topic", p.key.topic, "partition", p.key.partition, "error", err)
		return
	}
	r.lastErr = ""
	r.reclaimed += res.before - res.after
	n.counts.remoteReclaimedBytes.Add(res.before - res.after)
	if res.cleanedTo > 0 {
		r.cleanedTo, r.dirtyRatio = res.cleanedTo, 0
	}
	n.logger.Info("tier: uploaded segments compacted", "topic", p.key.topic, "partition", p.key.partition, "cleaned_to", res.cleanedTo,
		"groups", res.groups, "uploaded", res.uploaded, "bytes_before", res.before, "bytes_after", res.after,
		"records_removed", res.recordsOut, "bytes_read", res.bytesRead, "took", time.Since(start).Round(time.Millisecond))
}

func (n *Node) cleanRemoteOnce(ctx context.Context, p remotePlan, pace *pacer, codec plog.Codec) (remoteCleanResult, error) {
	var res remoteCleanResult
	ol := p.ol
	var aborted []plog.AbortedTxn
	for _, e := range p.entries {
		a, err := tier.ReadAbortedTxns(ctx, n.cfg.Tier, e.ObjectKey)
		if err != nil {
			return res, err
		}
		aborted = append(aborted, a...)
	}
	last := ol.lastBatches()
	now := time.Now()
	retention := configDuration(ol.configs(), "delete.retention.ms", defaultDeleteRetention)
	c := plog.NewCompactor(plog.CompactorOptions{MapBytes: n.cfg.Cleaner.DedupeBytes, FirstDirty: p.firstDirty, Aborted: aborted,
		TombstoneHorizon: p.state.TombstoneHorizon(now.UnixMilli(), retention.Milliseconds()), LastBatches: last, Codec: codec})
	sc := remoteScanner{n: n, ctx: ctx, pace: pace, plan: &p}

	// 1. The key map over the dirty entries, as many whole ones as fit.
	end := p.firstDirty
	full := false
	for i := range p.entries {
		if p.ends[i] <= p.firstDirty {
			continue
		}
		err := sc.scan(i, func(h plog.BatchHeader, b []byte) error {
			f, err := c.Map(h, b)
			if f {
				full = true
				return errRemoteMapFull
			}
			return err
		})
		if full {
			break
		}
		if err != nil {
			res.bytesRead = sc.read
			return res, err
		}
		end = p.ends[i]
	}
	if end <= p.firstDirty {
		res.bytesRead = sc.read
		if full {
			return res, plog.ErrCleanerMapTooSmall
		}
		return res, nil
	}

	// 2 to 4. Rewrite, upload and switch group by group.
	cfg := logConfig(n.cfg.LogDefaults, ol.configs())
	for i := 0; i < len(p.entries) && p.ends[i] <= end; {
		j := i + 1
		size := p.entries[i].SizeBytes
		for ; j < len(p.entries) && p.ends[j] <= end; j++ {
			if size+p.entries[j].SizeBytes > cfg.SegmentBytes || p.ends[j]-1-p.entries[i].BaseOffset > plog.MaxGroupSpan {
				break
			}
			size += p.entries[j].SizeBytes
		}
		if err := n.cleanRemoteGroup(ctx, &p, i, j, c, aborted, cfg, &sc, &res); err != nil {
			res.bytesRead = sc.read
			return res, err
		}
		i = j
	}
	res.bytesRead = sc.read
	r, err := n.cfg.Meta.Propose(ctx, &meta.MarkTierCleaned{Topic: p.key.topic, Partition: p.key.partition, Offset: end, AtMs: now.UnixMilli()})
	if err == nil {
		err = r.Err
	}
	res.cleanedTo = end
	return res, err
}

// cleanRemoteGroup rewrites entries [i, j) of the plan into one segment,
// uploads it and switches the manifest to it.
func (n *Node) cleanRemoteGroup(ctx context.Context, p *remotePlan, i, j int, c *plog.Compactor, aborted []plog.AbortedTxn,
	cfg plog.Config, sc *remoteScanner, res *remoteCleanResult) error {
	group := p.entries[i:j]
	base, end := group[0].BaseOffset, p.ends[j-1]
	var size int64
	for _, e := range group {
		size += e.SizeBytes
	}
	dir := filepath.Join(n.cfg.DataDir, ".tier-cleaning")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	w, err := plog.NewSegmentWriter(dir, base, size, cfg)
	if err != nil {
		return fmt.Errorf("%w: %v", plog.ErrIO, err)
	}
	var removed int64
	for k := i; k < j; k++ {
		err := sc.scan(k, func(h plog.BatchHeader, b []byte) error {
			out, r, err := c.Filter(h, b, end)
			removed += int64(r)
			if err != nil || out == nil {
				return err
			}
			return w.Append(out)
		})
		if err != nil {
			w.Discard()
			return err
		}
	}
	info, err := w.Finish()
	if err != nil {
		return fmt.Errorf("%w: %v", plog.ErrIO, err)
	}
	res.groups++
	res.before += size
	if removed == 0 && len(group) == 1 {
		res.after += size
		return nil // nothing to change
	}
	epoch, ok := n.leaderEpoch(p.key)()
	if !ok {
		return tier.ErrNotLeader
	}
	var epochs []meta.EpochStart
	var maxTS int64 = math.MinInt64
	for _, e := range group {
		maxTS = max(maxTS, e.MaxTimestamp)
		for _, ep := range e.SegmentEpochs {
			if ep.StartOffset < end && (len(epochs) == 0 || epochs[len(epochs)-1].Epoch < ep.Epoch) {
				epochs = append(epochs, ep)
			}
		}
	}
	var txns []plog.AbortedTxn
	for _, a := range aborted {
		if a.LastOffset >= base && a.LastOffset < end {
			txns = append(txns, a)
		}
	}
	stem := fmt.Sprintf("%s-c%d", tier.SegmentKey(p.topic.Name, p.topic.ID, p.key.partition, base, epoch), time.Now().UnixMilli())
	entry := meta.TierSegment{Topic: p.key.topic, Partition: p.key.partition, BaseOffset: base, LastOffset: end - 1,
		SizeBytes: info.Size, LeaderEpoch: epoch, MaxTimestamp: maxTS, ObjectKey: stem + ".log",
		UploadTimeMs: time.Now().UnixMilli(), SegmentEpochs: epochs}
	putStart := time.Now()
	if err := n.putCleaned(ctx, stem, info, epochs, txns, group[len(group)-1]); err != nil {
		n.dropObjects(ctx, stem)
		return err
	}
	if age := time.Since(putStart); age > n.cfg.TierOrphanGrace/2 {
		// The reconciler may take objects this old for orphans: never
		// record them (as the uploader).
		n.dropObjects(ctx, stem)
		return fmt.Errorf("tier: uploading compacted %s took %s, more than half the orphan grace period (raise the grace)", stem, age.Round(time.Second))
	}
	res.uploaded += info.Size
	n.counts.remoteWrittenBytes.Add(info.Size)
	cmd := &meta.ReplaceTierSegments{New: entry, AtMs: time.Now().UnixMilli()}
	for _, e := range group {
		cmd.OldBases, cmd.OldKeys = append(cmd.OldBases, e.BaseOffset), append(cmd.OldKeys, e.ObjectKey)
	}
	r, err := n.cfg.Meta.Propose(ctx, cmd)
	if err == nil {
		err = r.Err
	}
	if err != nil {
		// Not switched: the objects would be orphans. If the proposal
		// did commit after all, the entry names them and they stay.
		if !n.tierReferences(p.key, entry.ObjectKey) {
			n.dropObjects(ctx, stem)
		}
		return err
	}
	p.ol.tier.markDirty()
	res.after += info.Size
	res.recordsOut += removed
	return nil
}

// putCleaned uploads a cleaned segment's objects: indexes, epochs, the
// producer state and aborted transactions of the group's last entry,
// the log last (an entry's objects are all there before it is recorded).
func (n *Node) putCleaned(ctx context.Context, stem string, info plog.SegmentInfo, epochs []meta.EpochStart, txns []plog.AbortedTxn,
	last meta.TierSegment) error {
	store := n.cfg.Tier
	putFile := func(key, path string) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		return store.Put(ctx, key, f, fi.Size())
	}
	putBytes := func(key string, b []byte) error { return store.Put(ctx, key, bytes.NewReader(b), int64(len(b))) }
	if err := putFile(stem+".index", info.IndexPath); err != nil {
		return err
	}
	if err := putFile(stem+".timeindex", info.TimeIndexPath); err != nil {
		return err
	}
	if err := putBytes(stem+".epochs", []byte(tier.EncodeEpochs(epochs))); err != nil {
		return err
	}
	switch producers, err := tier.ReadProducers(ctx, store, last.ObjectKey); {
	case errors.Is(err, tier.ErrNotFound):
	case err != nil:
		return err
	default:
		if err := putBytes(stem+tier.ProducersSuffix, producers); err != nil {
			return err
		}
	}
	if len(txns) > 0 {
		if err := putBytes(stem+tier.TxnIndexSuffix, plog.EncodeAbortedTxns(txns)); err != nil {
			return err
		}
	}
	return putFile(stem+".log", info.LogPath)
}

// dropObjects deletes a cleaned segment's objects that were never
// recorded; what fails is left to the reconciler.
func (n *Node) dropObjects(ctx context.Context, stem string) {
	if err := n.cfg.Tier.Delete(context.WithoutCancel(ctx), tier.SegmentObjects(stem+".log")...); err != nil {
		n.logger.Debug("tier: objects of an unrecorded clean not removed; the reconciler will", "objects", stem, "error", err)
	}
}

// tierReferences reports whether the partition's manifest names key.
func (n *Node) tierReferences(k partitionKey, key string) bool {
	v := n.cfg.Meta.Server().FSM().View()
	defer v.Close()
	segs, err := v.TierSegments(k.topic, k.partition)
	return err != nil || slices.ContainsFunc(segs, func(s meta.TierSegment) bool { return s.ObjectKey == key })
}

// remoteScanner reads a plan's entries from the bucket, batch by batch,
// through the node's chunk cache, paced.
type remoteScanner struct {
	n    *Node
	ctx  context.Context
	pace *pacer
	plan *remotePlan
	buf  []byte
	read int64 // bytes read
}

// scanReadBytes is how much one read asks for.
const scanReadBytes = 4 << 20

// scan calls fn with each batch of entry i below its end, whole and
// checked.
func (s *remoteScanner) scan(i int, fn func(plog.BatchHeader, []byte) error) error {
	e, end := s.plan.entries[i], s.plan.ends[i]
	var next func() (meta.TierSegment, bool)
	if i+1 < len(s.plan.entries) {
		next = func() (meta.TierSegment, bool) { return s.plan.entries[i+1], true }
	}
	for off := e.BaseOffset; off < end; {
		b, err := s.n.remote.ReadAlloc(s.ctx, e, off, scanReadBytes, next, func(n int) []byte {
			if cap(s.buf) < n {
				s.buf = make([]byte, 0, n)
			}
			return s.buf[:0]
		})
		if err != nil {
			return err
		}
		if len(b) == 0 {
			return nil // past the object's last batch
		}
		s.read += int64(len(b))
		for p := 0; p < len(b); {
			h, err := plog.ParseBatchHeader(b[p:])
			if err != nil {
				return err
			}
			batch := b[p : p+int(h.Size())]
			p += len(batch)
			if h.BaseOffset >= end {
				return nil // the next entry's
			}
			if h.LastOffset() < off {
				continue
			}
			s.pace.wait(s.ctx, len(batch))
			if err := fn(h, batch); err != nil {
				return err
			}
			off = h.LastOffset() + 1
		}
		if err := s.ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// deleteRetired deletes the objects of a led partition's replaced
// manifest entries once file.delete.delay.ms has passed since their
// switch, then forgets them.
func (n *Node) deleteRetired(ctx context.Context, k partitionKey, ol *openLog) error {
	ol.tier.mu.Lock()
	dirty := ol.tier.manifestDirty
	ol.tier.mu.Unlock()
	if n.cfg.Tier == nil || dirty {
		// The bucket's manifest.json may still name the replaced
		// entries (a restore would need them): once it is written.
		return nil
	}
	v := n.cfg.Meta.Server().FSM().View()
	part, ok, err := v.Partition(k.topic, k.partition)
	var retired []meta.RetiredObject
	if err == nil && ok && part.Leader == n.cfg.ID {
		retired, err = v.RetiredObjects(k.topic, k.partition)
	}
	v.Close()
	if err != nil || len(retired) == 0 {
		return err
	}
	delay := configDuration(ol.configs(), "file.delete.delay.ms", defaultFileDeleteDelay)
	due := time.Now().Add(-delay).UnixMilli()
	var keys, objects []string
	for _, r := range retired {
		if r.RetiredAtMs <= due {
			keys = append(keys, r.ObjectKey)
			objects = append(objects, tier.SegmentObjects(r.ObjectKey)...)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	if err := n.cfg.Tier.Delete(ctx, objects...); err != nil {
		return fmt.Errorf("deleting %d replaced segments' objects: %w", len(keys), err)
	}
	for _, key := range keys {
		if n.remote != nil {
			n.remote.Forget(meta.TierSegment{ObjectKey: key})
		}
	}
	r, err := n.cfg.Meta.Propose(ctx, &meta.ForgetRetiredObjects{Topic: k.topic, Partition: k.partition, Keys: keys})
	if err == nil {
		err = r.Err
	}
	if err == nil {
		n.logger.Debug("tier: replaced segments' objects deleted", "topic", k.topic, "partition", k.partition, "segments", len(keys))
	}
	return err
}

// defaultFileDeleteDelay is file.delete.delay.ms's default, as Kafka's.
const defaultFileDeleteDelay = time.Minute
