package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-io/strata/meta"
	plog "github.com/strata-io/strata/node/log"
	"github.com/strata-io/strata/tier"
)

// A tiered partition's log spans the manifest (uploaded segments, read
// through n.remote) and the local log. Its log start offset is the
// earlier of the two starts, raised by the partition's LogStartOffset in
// meta (DeleteRecords, total retention).

// tierSpan is what the manifest holds of a partition.
type tierSpan struct {
	first, last meta.TierSegment
	ok          bool // the manifest has entries
}

func (n *Node) tierSpan(topic string, p int32) (tierSpan, error) {
	v := n.cfg.Meta.Server().FSM().View()
	defer v.Close()
	first, last, ok, err := v.TierSpan(topic, p)
	return tierSpan{first, last, ok}, err
}

// manifest is a partition's manifest entries, oldest first, from this
// node's copy of meta.
func (n *Node) manifest(part meta.Partition) ([]meta.TierSegment, error) {
	v := n.cfg.Meta.Server().FSM().View()
	defer v.Close()
	segs, err := v.TierSegments(part.Topic, part.Partition)
	if err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", plog.ErrIO, err)
	}
	return segs, nil
}

// logStartOffset is the partition's log start: where a consumer reading
// from the earliest offset begins.
func (n *Node) logStartOffset(l *openLog, part meta.Partition) int64 {
	local := l.StartOffset()
	if n.remote == nil {
		return local
	}
	span, err := n.tierSpan(part.Topic, part.Partition)
	if err != nil || !span.ok {
		return local
	}
	return max(part.LogStartOffset, min(local, span.first.BaseOffset))
}

// remoteSegment is the manifest entry holding offset, below the local
// log's start, and the one after it (ok false: none). An offset before the
// log start is out of range. One after everything this node's copy of the
// manifest holds, on a tiered partition, may be in an upload this copy
// has not applied yet (a leader just elected, a node just restarted):
// that is OFFSET_NOT_AVAILABLE, retriable, never OFFSET_OUT_OF_RANGE, on
// which a consumer would reset its position and skip or replay records.
func (n *Node) remoteSegment(l *openLog, part meta.Partition, offset int64) (seg, next meta.TierSegment, ok bool, err error) {
	v := n.cfg.Meta.Server().FSM().View()
	defer v.Close()
	seg, found, err := v.TierSegmentAt(part.Topic, part.Partition, offset)
	if err != nil {
		return seg, next, false, fmt.Errorf("%w: manifest: %v", plog.ErrIO, err)
	}
	if offset < part.LogStartOffset {
		return seg, next, false, fmt.Errorf("%w: offset %d is below the log start %d", plog.ErrOffsetOutOfRange, offset, part.LogStartOffset)
	}
	if !found {
		_, last, any, err := v.TierSpan(part.Topic, part.Partition)
		if err == nil && l.tier.enabled.Load() && (!any || offset > last.LastOffset) {
			n.logger.Warn("fetch below the local log of an offset this node's manifest does not hold yet; answering retriably",
				"topic", part.Topic, "partition", part.Partition, "offset", offset, "local_start", l.StartOffset())
			return seg, next, false, fmt.Errorf("%w: offset %d: this node's copy of the manifest does not hold it yet", kerr.OffsetNotAvailable, offset)
		}
		return seg, next, false, fmt.Errorf("%w: offset %d is in neither the tier nor the local log", plog.ErrOffsetOutOfRange, offset)
	}
	next, ok, _ = v.TierSegmentAt(part.Topic, part.Partition, seg.LastOffset+1)
	return seg, next, ok && next.BaseOffset > seg.BaseOffset, nil
}

// readRemote reads uploaded batches from offset, below the local log's
// start. A store failure is tier.ErrUnavailable (retriable).
func (n *Node) readRemote(ctx context.Context, l *openLog, part meta.Partition, offset int64, maxBytes int, alloc func(int) []byte) ([]byte, error) {
	seg, _, _, err := n.remoteSegment(l, part, offset)
	if err != nil {
		return nil, err
	}
	next := func() (meta.TierSegment, bool) {
		v := n.cfg.Meta.Server().FSM().View()
		defer v.Close()
		s, ok, _ := v.TierSegmentAt(part.Topic, part.Partition, seg.LastOffset+1)
		return s, ok
	}
	start := time.Now()
	data, err := n.remote.ReadAlloc(ctx, seg, offset, maxBytes, next, alloc)
	n.stages.remote.Observe(time.Since(start).Seconds())
	if err != nil {
		n.logger.Warn("remote read failed", "topic", part.Topic, "partition", part.Partition, "offset", offset, "error", err)
		return nil, err
	}
	return data, nil
}

// remoteHint tells a gateway that reads the tier itself where offset,
// below the local log's start, is: the manifest entry holding it and the
// next (tier.EncodeRemoteHint).
func (n *Node) remoteHint(l *openLog, part meta.Partition, offset int64) ([]byte, error) {
	seg, next, ok, err := n.remoteSegment(l, part, offset)
	if err != nil {
		return nil, err
	}
	segs := []meta.TierSegment{seg}
	if ok {
		segs = append(segs, next)
	}
	return tier.EncodeRemoteHint(part.Topic, l.topicID, part.Partition, part.LogStartOffset, segs...), nil
}

// remoteOffsetForTimestamp searches the uploaded segments that lie before
// the local log for the first record at or after timestamp (found false:
// search the local log).
func (n *Node) remoteOffsetForTimestamp(ctx context.Context, l *openLog, part meta.Partition, timestamp int64) (int64, int64, bool, error) {
	if n.remote == nil {
		return 0, 0, false, nil
	}
	segs, err := n.manifest(part)
	if err != nil {
		return 0, 0, false, err
	}
	local := l.StartOffset()
	for _, s := range segs {
		if s.LastOffset < part.LogStartOffset || s.MaxTimestamp < timestamp {
			continue
		}
		if s.BaseOffset >= local {
			break // the local log answers from here
		}
		off, ts, found, err := n.remote.OffsetForTimestamp(ctx, s, timestamp, part.LogStartOffset)
		if err != nil || found {
			return off, ts, found, err
		}
	}
	return 0, 0, false, nil
}

// remoteMaxTimestamp returns the largest timestamp of the uploaded
// segments before the local log, if larger than localMax, and the offset
// of its first record.
func (n *Node) remoteMaxTimestamp(ctx context.Context, l *openLog, part meta.Partition, localMax int64) (int64, int64, bool, error) {
	if n.remote == nil {
		return 0, 0, false, nil
	}
	segs, err := n.manifest(part)
	if err != nil {
		return 0, 0, false, err
	}
	var best *meta.TierSegment
	for i, s := range segs {
		if s.LastOffset >= part.LogStartOffset && s.BaseOffset < l.StartOffset() && s.MaxTimestamp > localMax &&
			(best == nil || s.MaxTimestamp > best.MaxTimestamp) {
			best = &segs[i]
		}
	}
	if best == nil {
		return 0, 0, false, nil
	}
	off, _, found, err := n.remote.OffsetForTimestamp(ctx, *best, best.MaxTimestamp, part.LogStartOffset)
	return best.MaxTimestamp, off, found, err
}

// epochHistory is the partition's leader epochs, oldest first: those of
// the uploaded segments, then the local log's.
func (n *Node) epochHistory(l *openLog, part meta.Partition) []plog.EpochEntry {
	local := l.Epochs()
	if n.remote == nil {
		return local
	}
	segs, err := n.manifest(part)
	if err != nil || len(segs) == 0 {
		return local
	}
	var out []plog.EpochEntry
	add := func(e plog.EpochEntry) {
		if len(out) == 0 || e.Epoch > out[len(out)-1].Epoch {
			out = append(out, e)
		}
	}
	for _, s := range segs {
		for _, e := range s.SegmentEpochs {
			add(plog.EpochEntry{Epoch: e.Epoch, StartOffset: e.StartOffset})
		}
	}
	for _, e := range local {
		add(e)
	}
	return out
}

// deleteTiered raises a tiered partition's log start offset to offset:
// manifest entries wholly below it go, then their objects.
func (n *Node) deleteTiered(ctx context.Context, l *openLog, part meta.Partition, offset int64) error {
	segs, err := n.manifest(part)
	if err != nil {
		return err
	}
	var doomed []meta.TierSegment
	for _, s := range segs {
		if s.LastOffset < offset {
			doomed = append(doomed, s)
		}
	}
	return n.dropTierSegments(ctx, l, part, doomed, offset)
}

// dropTierSegments removes manifest entries and raises the partition's
// log start offset (one proposal), then deletes the entries' objects. An
// object that cannot be deleted now is left to the reconciler.
func (n *Node) dropTierSegments(ctx context.Context, l *openLog, part meta.Partition, doomed []meta.TierSegment, logStart int64) error {
	cmd := &meta.DeleteTierSegments{Topic: part.Topic, Partition: part.Partition, LogStartOffset: logStart}
	for _, s := range doomed {
		cmd.BaseOffsets = append(cmd.BaseOffsets, s.BaseOffset)
	}
	res, err := n.cfg.Meta.Propose(ctx, cmd)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return fmt.Errorf("%w: record deletion in the manifest: %v", plog.ErrIO, err)
	}
	l.tier.markDirty()
	if logStart > l.StartOffset() {
		if _, err := l.DeleteRecordsBefore(min(logStart, l.EndOffset())); err != nil {
			return err
		}
	}
	var keys []string
	for _, s := range doomed {
		keys = append(keys, tier.SegmentObjects(s.ObjectKey)...)
		if n.remote != nil {
			n.remote.Forget(s)
		}
	}
	if len(keys) > 0 {
		if err := n.cfg.Tier.Delete(ctx, keys...); err != nil {
			n.logger.Warn("tier: objects of deleted segments not removed; the reconciler will", "topic", part.Topic,
				"partition", part.Partition, "objects", len(keys), "error", err)
		}
		n.logger.Info("tier: segments deleted", "topic", part.Topic, "partition", part.Partition,
			"segments", len(doomed), "log_start_offset", logStart)
	}
	return nil
}

// retainRemote applies a tiered partition's total retention (retention.ms,
// retention.bytes) to its uploaded segments, oldest first. Only the
// leader does.
func (n *Node) retainRemote(ctx context.Context, key partitionKey, ol *openLog) error {
	if n.cfg.Tier == nil {
		return nil
	}
	v := n.cfg.Meta.Server().FSM().View()
	part, ok, err := v.Partition(key.topic, key.partition)
	var segs []meta.TierSegment
	if err == nil && ok && part.Leader == n.cfg.ID {
		segs, err = v.TierSegments(key.topic, key.partition)
	}
	v.Close()
	if err != nil || len(segs) == 0 {
		return err
	}
	age, limit := totalRetention(n.cfg.LogDefaults, ol.configs())
	// The partition's size: uploaded segments and the local ones after
	// them.
	size := ol.Size()
	remoteEnd := segs[len(segs)-1].LastOffset
	for _, s := range ol.Segments() {
		if s.BaseOffset <= remoteEnd {
			size -= s.Size
		}
	}
	for _, s := range segs {
		size += s.SizeBytes
	}
	now := time.Now().UnixMilli()
	var doomed []meta.TierSegment
	for _, s := range segs {
		byAge := age >= 0 && s.MaxTimestamp < now-age.Milliseconds()
		bySize := limit >= 0 && size-s.SizeBytes >= limit
		if !byAge && !bySize {
			break
		}
		doomed = append(doomed, s)
		size -= s.SizeBytes
	}
	if len(doomed) == 0 {
		return nil
	}
	return n.dropTierSegments(ctx, ol, part, doomed, doomed[len(doomed)-1].LastOffset+1)
}

// totalRetention is a topic's retention.ms and retention.bytes, which a
// tiered topic applies to its uploaded data.
func totalRetention(defaults plog.Config, configs map[string]string) (time.Duration, int64) {
	c := maps.Clone(configs)
	delete(c, "remote.storage.enable")
	lc := logConfig(defaults, c)
	return lc.RetentionAge, lc.RetentionBytes
}

// deleteRemotePartition removes every object of a deleted topic's
// partition. What fails is left to the reconciler.
func (n *Node) deleteRemotePartition(ctx context.Context, topic string, id [16]byte, p int32) {
	prefix := fmt.Sprintf("%s%d/", tier.TopicPrefix(topic, id), p)
	var keys []string
	err := n.cfg.Tier.List(ctx, prefix, func(o tier.Object) error {
		keys = append(keys, o.Key)
		return nil
	})
	if p == 0 {
		keys = append(keys, tier.TopicManifestKey(topic, id)) // the topic's own description goes with partition 0
	}
	if err == nil {
		err = n.cfg.Tier.Delete(ctx, keys...)
	}
	if err != nil {
		n.logger.Warn("tier: objects of a deleted partition not removed; the reconciler will", "topic", topic, "partition", p, "error", err)
		return
	}
	n.logger.Info("tier: deleted partition's objects removed", "topic", topic, "partition", p, "objects", len(keys))
}

// RemoteReadStats reports the remote read cache's use (zero without a
// tier).
func (n *Node) RemoteReadStats() tier.ReaderStats {
	if n.remote == nil {
		return tier.ReaderStats{}
	}
	return n.remote.Stats()
}

// remoteProducers reads the producer state uploaded with seg, as of its
// end: nil when it was uploaded without one, or when the object fails its
// checks (logged: the producers' state then starts empty there, as it did
// before states were uploaded). Other errors may pass: the caller tries
// again.
func (n *Node) remoteProducers(ctx context.Context, seg meta.TierSegment) ([]byte, error) {
	b, err := tier.ReadProducers(ctx, n.cfg.Tier, seg.ObjectKey)
	switch {
	case errors.Is(err, tier.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("%w: producer state of %s: %v", plog.ErrIO, seg.ObjectKey, err)
	}
	if err := checkProducerSnapshot(b, seg.LastOffset+1); err != nil {
		n.logger.Error("tier: producer state object unusable; idempotent producers of the partition start afresh there",
			"topic", seg.Topic, "partition", seg.Partition, "object", seg.ObjectKey, "error", err)
		return nil, nil
	}
	return b, nil
}

// remoteProducersTimeout bounds one read of a producer state object: the
// replication and maintenance loops wait for it.
const remoteProducersTimeout = 5 * time.Second
