package tier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-io/strata/meta"
	plog "github.com/strata-io/strata/node/log"
)

// Job is one closed segment to upload and record.
type Job struct {
	Topic     string
	TopicID   [16]byte
	Partition int32
	Segment   plog.SegmentInfo
	// Epochs are the leader epochs that start inside the segment, and the
	// one in force at its base offset.
	Epochs []meta.EpochStart
	// Producers, when set, is the idempotent producers' state as of the
	// segment's end, uploaded beside it: a replica that starts its log
	// there (a follower behind the leader's local log, a log restored
	// from the store) still knows each producer's last sequences.
	Producers []byte
	// Leader reports the partition's current leader epoch while this node
	// still leads it; ok false ends the job (the new leader uploads).
	Leader func() (epoch int32, ok bool)
	// Done is called once: nil when the segment is recorded in the
	// manifest (by this upload or an earlier one), else why it was given
	// up.
	Done func(error)
	// Ctx cancels the job (the partition closed).
	Ctx context.Context
	// Gone, when set, reports whether the segment's files may have been
	// deleted on purpose (it lies below the log start now): a missing
	// file then ends the job with ErrSegmentGone instead of a retry.
	Gone func() bool

	queued time.Time
}

// ErrNotLeader: the node stopped leading the partition before the
// segment was recorded.
var ErrNotLeader = errors.New("tier: no longer the partition's leader")

// ErrSegmentGone: the segment was deleted below the log start before it
// was uploaded; there is nothing left to upload.
var ErrSegmentGone = errors.New("tier: segment deleted before its upload")

// Recorder is the part of meta the uploader needs: what the manifest
// holds, and a way to add to it.
type Recorder interface {
	// Recorded returns the manifest entry holding offset base, if any.
	Recorded(topic string, partition int32, base int64) (meta.TierSegment, bool, error)
	// Record proposes the entry (AddTierSegment), fenced by its epoch.
	Record(ctx context.Context, s meta.TierSegment) error
}

// UploaderConfig configures an Uploader.
type UploaderConfig struct {
	Store    Store
	Recorder Recorder
	Logger   *slog.Logger
	// Workers bounds concurrent segment uploads (default 2).
	Workers int
	// MaxBackoff caps the wait between attempts (default 30s); the first
	// wait is MinBackoff (default 200ms), doubling, with jitter.
	MinBackoff, MaxBackoff time.Duration
	// MaxAttemptAge, when set, bounds the time from an attempt's first
	// Put to its record: an attempt that took longer uploads again, so
	// objects the reconciler may think orphaned are never recorded. Half
	// the reconciler's grace period.
	MaxAttemptAge time.Duration
}

// Uploader copies closed segments to the store, then records each in the
// manifest. A failing store is retried with exponential backoff and
// jitter, forever, until the job's context ends: nothing is dropped, and
// the caller keeps the segment on disk until Done(nil).
type Uploader struct {
	cfg    UploaderConfig
	logger *slog.Logger
	mu     sync.Mutex
	cond   *sync.Cond
	queue  []*Job
	// busy partitions have a job running: a partition's segments are
	// uploaded one at a time, oldest first, so its manifest never has a
	// gap (a restore from the bucket gets a contiguous history).
	busy   map[partKey]bool
	closed bool
	wg     sync.WaitGroup
	stats  map[partKey]*PartitionStatus
	// uploaded and failed count bytes uploaded and attempts that failed,
	// over the process's life.
	uploaded, uploads, failed atomic.Int64
}

// Totals are the uploader's counts over the process's life: bytes and
// segments uploaded, attempts that failed.
func (u *Uploader) Totals() (bytes, segments, failures int64) {
	return u.uploaded.Load(), u.uploads.Load(), u.failed.Load()
}

type partKey struct {
	topic     string
	partition int32
}

// PartitionStatus is a partition's upload progress.
type PartitionStatus struct {
	Topic          string
	Partition      int32
	PendingBytes   int64     // closed segments not yet recorded
	PendingSince   time.Time // when the oldest of them closed (zero: none)
	Pending        int
	UploadedBytes  int64 // by this process
	LastUpload     time.Time
	LastError      string
	LastErrorAt    time.Time
	UploadedOffset int64 // one past the last offset recorded by this process, or -1
}

// NewUploader starts the workers.
func NewUploader(cfg UploaderConfig) *Uploader {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	u := &Uploader{cfg: cfg, logger: cfg.Logger, stats: map[partKey]*PartitionStatus{}, busy: map[partKey]bool{}}
	u.cond = sync.NewCond(&u.mu)
	for range cfg.Workers {
		u.wg.Add(1)
		go u.work()
	}
	return u
}

// Enqueue adds a segment. It never blocks.
func (u *Uploader) Enqueue(j *Job) {
	j.queued = time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		go j.Done(errors.New("tier: uploader closed"))
		return
	}
	st := u.statLocked(j.Topic, j.Partition)
	st.Pending++
	st.PendingBytes += j.Segment.Size
	if st.PendingSince.IsZero() {
		st.PendingSince = j.queued
	}
	u.queue = append(u.queue, j)
	u.cond.Signal()
}

func (u *Uploader) statLocked(topic string, p int32) *PartitionStatus {
	k := partKey{topic, p}
	st := u.stats[k]
	if st == nil {
		st = &PartitionStatus{Topic: topic, Partition: p, UploadedOffset: -1}
		u.stats[k] = st
	}
	return st
}

// Status lists every partition the uploader has seen.
func (u *Uploader) Status() []PartitionStatus {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]PartitionStatus, 0, len(u.stats))
	for _, st := range u.stats {
		out = append(out, *st)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// Close stops the workers; queued jobs are told the uploader closed. The
// caller cancels running jobs' contexts first for a quick stop.
func (u *Uploader) Close() {
	u.mu.Lock()
	u.closed = true
	queue := u.queue
	u.queue = nil
	u.cond.Broadcast()
	u.mu.Unlock()
	for _, j := range queue {
		j.Done(errors.New("tier: uploader closed"))
	}
	u.wg.Wait()
}

func (u *Uploader) work() {
	defer u.wg.Done()
	for {
		u.mu.Lock()
		i := -1
		for !u.closed {
			if i = u.nextLocked(); i >= 0 {
				break
			}
			u.cond.Wait()
		}
		if u.closed {
			u.mu.Unlock()
			return
		}
		j := u.queue[i]
		u.queue = append(u.queue[:i], u.queue[i+1:]...)
		k := partKey{j.Topic, j.Partition}
		u.busy[k] = true
		u.mu.Unlock()
		err := u.run(j)
		u.mu.Lock()
		delete(u.busy, k)
		u.cond.Broadcast()
		u.mu.Unlock()
		u.finish(j, err)
	}
}

// nextLocked picks the queued job to run next: the oldest segment of a
// partition with nothing running, or -1.
func (u *Uploader) nextLocked() int {
	best := -1
	for i, j := range u.queue {
		if u.busy[partKey{j.Topic, j.Partition}] {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		b := u.queue[best]
		if j.Topic == b.Topic && j.Partition == b.Partition && j.Segment.BaseOffset < b.Segment.BaseOffset {
			best = i
		}
	}
	return best
}

func (u *Uploader) finish(j *Job, err error) {
	u.mu.Lock()
	st := u.statLocked(j.Topic, j.Partition)
	st.Pending--
	st.PendingBytes -= j.Segment.Size
	if st.Pending == 0 {
		st.PendingSince = time.Time{}
	} else {
		oldest := time.Now()
		for _, q := range u.queue {
			if q.Topic == j.Topic && q.Partition == j.Partition && q.queued.Before(oldest) {
				oldest = q.queued
			}
		}
		st.PendingSince = oldest
	}
	if err == nil {
		u.uploaded.Add(j.Segment.Size)
		u.uploads.Add(1)
		st.UploadedBytes += j.Segment.Size
		st.LastUpload = time.Now()
		st.UploadedOffset = max(st.UploadedOffset, j.Segment.NextOffset)
	}
	u.mu.Unlock()
	j.Done(err)
}

// run uploads and records one segment, retrying until it is recorded, the
// node stops leading the partition, or the job is cancelled.
func (u *Uploader) run(j *Job) error {
	backoff := u.cfg.MinBackoff
	for attempt := 1; ; attempt++ {
		err := u.attempt(j)
		if errors.Is(err, fs.ErrNotExist) && j.Gone != nil && j.Gone() {
			// Deleted on purpose meanwhile (DeleteRecords): nothing to
			// upload, and nothing to try again.
			return ErrSegmentGone
		}
		if err == nil || errors.Is(err, ErrNotLeader) || errors.Is(err, meta.ErrStaleEpoch) || j.Ctx.Err() != nil {
			if err != nil && j.Ctx.Err() != nil {
				err = j.Ctx.Err()
			}
			return err
		}
		u.failed.Add(1)
		u.mu.Lock()
		st := u.statLocked(j.Topic, j.Partition)
		st.LastError, st.LastErrorAt = err.Error(), time.Now()
		u.mu.Unlock()
		wait := backoff/2 + rand.N(backoff/2+1) // jitter: [backoff/2, backoff]
		u.logger.Warn("segment upload failed; retrying", "topic", j.Topic, "partition", j.Partition,
			"base_offset", j.Segment.BaseOffset, "attempt", attempt, "retry_in", wait.Round(time.Millisecond), "error", err)
		select {
		case <-time.After(wait):
		case <-j.Ctx.Done():
			return j.Ctx.Err()
		}
		backoff = min(backoff*2, u.cfg.MaxBackoff)
	}
}

func (u *Uploader) attempt(j *Job) error {
	epoch, ok := j.Leader()
	if !ok {
		return ErrNotLeader
	}
	seg := j.Segment
	old, recorded, err := u.cfg.Recorder.Recorded(j.Topic, j.Partition, seg.BaseOffset)
	switch {
	case err != nil:
		return err
	case recorded && old.LastOffset >= seg.NextOffset-1:
		return nil // recorded, by this upload or an earlier leader's
	case recorded:
		// An earlier segment holding this base ended sooner (an
		// earlier leader's, or this log's before a clean merged it
		// with the next): this one replaces it in the manifest (the
		// same batches, and more).
		u.logger.Info("manifest holds a shorter segment at this base offset; uploading this one to replace it",
			"topic", j.Topic, "partition", j.Partition, "base_offset", seg.BaseOffset, "manifest_last", old.LastOffset,
			"segment_last", seg.NextOffset-1)
	}
	base := SegmentKey(j.Topic, j.TopicID, j.Partition, seg.BaseOffset, epoch)
	if recorded && old.ObjectKey == base+".log" {
		// This leader recorded a shorter segment at this base (before a
		// clean of the log merged it with the next): never overwrite an
		// object a manifest entry names.
		base += fmt.Sprintf("-%d", seg.NextOffset-1)
	}
	start := time.Now()
	// Indexes and epochs first, the log last: an entry is only recorded
	// once all of its objects are there.
	for _, f := range []struct{ path, suffix string }{
		{seg.IndexPath, ".index"}, {seg.TimeIndexPath, ".timeindex"},
	} {
		if err := u.putFile(j.Ctx, base+f.suffix, f.path); err != nil {
			return err
		}
	}
	if j.Producers != nil {
		if err := u.cfg.Store.Put(j.Ctx, base+ProducersSuffix, bytes.NewReader(j.Producers), int64(len(j.Producers))); err != nil {
			return err
		}
	}
	if len(seg.AbortedTxns) > 0 {
		b := plog.EncodeAbortedTxns(seg.AbortedTxns)
		if err := u.cfg.Store.Put(j.Ctx, base+TxnIndexSuffix, bytes.NewReader(b), int64(len(b))); err != nil {
			return err
		}
	}
	epochs := EncodeEpochs(j.Epochs)
	if err := u.cfg.Store.Put(j.Ctx, base+".epochs", strings.NewReader(epochs), int64(len(epochs))); err != nil {
		return err
	}
	if err := u.putFile(j.Ctx, base+".log", seg.LogPath); err != nil {
		return err
	}
	if age := time.Since(start); u.cfg.MaxAttemptAge > 0 && age > u.cfg.MaxAttemptAge {
		return fmt.Errorf("tier: uploading %s took %s, more than half the orphan grace period: uploading again (raise the grace)",
			base, age.Round(time.Second))
	}
	entry := meta.TierSegment{
		Topic: j.Topic, Partition: j.Partition, BaseOffset: seg.BaseOffset, LastOffset: seg.NextOffset - 1,
		SizeBytes: seg.Size, LeaderEpoch: epoch, MaxTimestamp: seg.MaxTimestamp, ObjectKey: base + ".log",
		UploadTimeMs: time.Now().UnixMilli(), SegmentEpochs: j.Epochs,
	}
	if err := u.cfg.Recorder.Record(j.Ctx, entry); err != nil {
		if got, ok, rerr := u.cfg.Recorder.Recorded(j.Topic, j.Partition, seg.BaseOffset); rerr == nil && ok && got.LastOffset >= entry.LastOffset {
			return nil // recorded after all (a retried proposal)
		}
		return fmt.Errorf("tier: record %s: %w", entry.ObjectKey, err)
	}
	u.logger.Debug("segment uploaded", "topic", j.Topic, "partition", j.Partition, "base_offset", seg.BaseOffset,
		"bytes", seg.Size, "key", entry.ObjectKey)
	return nil
}

func (u *Uploader) putFile(ctx context.Context, key, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("tier: upload %s: %w", key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("tier: upload %s: %w", key, err)
	}
	return u.cfg.Store.Put(ctx, key, io.NewSectionReader(f, 0, fi.Size()), fi.Size())
}

// SegmentKey is the object key of a segment, without its suffix:
// <topic>-<topic id>/<partition>/<20-digit base offset>-<leader epoch>.
func SegmentKey(topic string, id [16]byte, partition int32, base int64, epoch int32) string {
	return fmt.Sprintf("%s-%x/%d/%020d-%d", topic, id, partition, base, epoch)
}

// TopicPrefix is where a topic's objects live.
func TopicPrefix(topic string, id [16]byte) string { return fmt.Sprintf("%s-%x/", topic, id) }

// EncodeEpochs writes epochs as Kafka's leader-epoch-checkpoint does:
// version, count, then "epoch startOffset" lines.
func EncodeEpochs(epochs []meta.EpochStart) string {
	var b strings.Builder
	b.WriteString("0\n" + strconv.Itoa(len(epochs)) + "\n")
	for _, e := range epochs {
		fmt.Fprintf(&b, "%d %d\n", e.Epoch, e.StartOffset)
	}
	return b.String()
}

// ProducersSuffix names the object holding the producer state as of a
// segment's end (see Job.Producers).
const ProducersSuffix = ".producers"

// TxnIndexSuffix names the object holding a segment's aborted
// transaction index (node/log's .txnindex format), uploaded only for a
// segment that has aborted transactions.
const TxnIndexSuffix = ".txnindex"

// maxTxnIndexObject bounds what ReadAbortedTxns accepts.
const maxTxnIndexObject = 64 << 20

// ReadAbortedTxns reads the aborted transaction index uploaded with the
// segment whose .log object is logKey: none (and no error) when it was
// uploaded without one.
func ReadAbortedTxns(ctx context.Context, s Store, logKey string) ([]plog.AbortedTxn, error) {
	b, err := readObject(ctx, s, strings.TrimSuffix(logKey, ".log")+TxnIndexSuffix, maxTxnIndexObject)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return plog.DecodeAbortedTxns(b)
}

// maxProducersObject bounds what ReadProducers accepts.
const maxProducersObject = 64 << 20

// ReadProducers reads the producer state uploaded with the segment whose
// .log object is logKey: ErrNotFound when it was uploaded without one.
func ReadProducers(ctx context.Context, s Store, logKey string) ([]byte, error) {
	return readObject(ctx, s, strings.TrimSuffix(logKey, ".log")+ProducersSuffix, maxProducersObject)
}
