package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Follower is one partition this node replicates from a leader: its local
// log and what metadata says of it.
type Follower interface {
	Topic() string
	Partition() int32
	// LeaderEpoch is the partition's leader epoch as metadata has it: the
	// leader fences fetches that carry another.
	LeaderEpoch() int32
	// LogEndOffset and LastEpoch describe the local log's end: the next
	// offset, and the leader epoch of its last batch (-1: empty).
	LogEndOffset() int64
	LastEpoch() int32
	// EndOffsetForEpoch is the local end of epoch (or of the newest epoch
	// below it) and that epoch.
	EndOffsetForEpoch(epoch int32) (int32, int64)
	// AppendReplicated appends batches the leader sent, keeping their
	// offsets.
	AppendReplicated(batches []byte) error
	// TruncateTo cuts the log at offset; TruncateFullyAndStartAt empties
	// it and restarts at offset.
	TruncateTo(offset int64) error
	TruncateFullyAndStartAt(offset int64) error
	// SetHighWatermark takes the leader's high watermark, bounded by the
	// local log end.
	SetHighWatermark(hw int64)
}

// FetcherConfig configures the fetcher of one leader node.
type FetcherConfig struct {
	// Self is this node's id, sent as the fetch's ReplicaID.
	Self int32
	// Leader is the node fetched from.
	Leader int32
	// Send delivers a fetch to the leader node and returns its answer.
	Send func(ctx context.Context, leader int32, req *kmsg.FetchRequest) (*kmsg.FetchResponse, error)
	// MaxWait is the leader's long poll (default 500ms); PartitionMaxBytes
	// and MaxBytes bound an answer (default 8 MiB and 32 MiB).
	MaxWait           time.Duration
	PartitionMaxBytes int32
	MaxBytes          int32
	// Backoff is the wait after a failed fetch (default 100ms).
	Backoff time.Duration
	// Stale is told of a partition the leader no longer accepts fetches
	// for (not the leader, another epoch): metadata is behind or moved on.
	// The fetcher leaves it out until it is added again.
	Stale  func(p Follower, err error)
	Logger *slog.Logger
}

// Fetcher pulls from one leader node, in one FetchRequest per round, every
// partition this node follows there, and appends what comes back.
type Fetcher struct {
	cfg    FetcherConfig
	logger *slog.Logger
	mu     sync.Mutex
	parts  map[key]Follower
	// interrupt ends the round in flight (nil: none), so a partition
	// added does not wait out the leader's long poll to be fetched.
	interrupt context.CancelCauseFunc
	wake      chan struct{}
	cancel    context.CancelFunc
	done      chan struct{}
}

type key struct {
	topic     string
	partition int32
}

// StartFetcher starts the fetch loop; it idles while no partition is
// added.
func StartFetcher(cfg FetcherConfig) *Fetcher {
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 500 * time.Millisecond
	}
	if cfg.PartitionMaxBytes <= 0 {
		cfg.PartitionMaxBytes = 8 << 20
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 32 << 20
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Stale == nil {
		cfg.Stale = func(Follower, error) {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Fetcher{cfg: cfg, logger: cfg.Logger.With("leader", cfg.Leader), parts: map[key]Follower{},
		wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	go f.loop(ctx)
	return f
}

// Add starts (or continues) fetching p; a partition added again replaces
// the one before (a new leader epoch).
func (f *Fetcher) Add(p Follower) {
	f.mu.Lock()
	f.parts[key{p.Topic(), p.Partition()}] = p
	if f.interrupt != nil {
		f.interrupt(errAdded)
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Remove stops fetching a partition.
func (f *Fetcher) Remove(topic string, partition int32) {
	f.mu.Lock()
	delete(f.parts, key{topic, partition})
	f.mu.Unlock()
}

// Has reports whether p is fetched, as added (the same Follower).
func (f *Fetcher) Has(p Follower) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.parts[key{p.Topic(), p.Partition()}] == p
}

// Len is how many partitions are fetched.
func (f *Fetcher) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.parts)
}

// Close stops the loop and waits for it.
func (f *Fetcher) Close() {
	f.cancel()
	<-f.done
}

// errAdded interrupts a round: a partition was added.
var errAdded = errors.New("replica: partition added")

// warnEvery spaces the warnings of a fetcher whose fetches keep failing.
const warnEvery = 10 * time.Second

func (f *Fetcher) loop(ctx context.Context) {
	defer close(f.done)
	var lastWarn time.Time
	for ctx.Err() == nil {
		rctx, interrupt := context.WithCancelCause(ctx)
		f.mu.Lock()
		parts := make([]Follower, 0, len(f.parts))
		for _, p := range f.parts {
			parts = append(parts, p)
		}
		f.interrupt = interrupt
		f.mu.Unlock()
		if len(parts) == 0 {
			select {
			case <-f.wake:
			case <-ctx.Done():
			}
			interrupt(nil)
			continue
		}
		err := f.round(rctx, parts)
		f.mu.Lock()
		f.interrupt = nil
		f.mu.Unlock()
		interrupt(nil)
		if errors.Is(context.Cause(rctx), errAdded) && ctx.Err() == nil {
			// Start over with the partition added. A fetch the leader
			// answers anyway is dropped: the next asks again from each
			// log's end.
			f.settle(ctx)
			continue
		}
		if err != nil && ctx.Err() == nil {
			// A failure that lasts keeps a replica out of sync: say so,
			// at most every warnEvery.
			if now := time.Now(); now.Sub(lastWarn) >= warnEvery {
				lastWarn = now
				f.logger.Warn("replica fetch failed; retrying", "error", err)
			} else {
				f.logger.Debug("replica fetch failed", "error", err)
			}
			select {
			case <-time.After(f.cfg.Backoff):
			case <-ctx.Done():
			}
		}
	}
}

// Partitions are added one after another (roles are brought in line a
// partition at a time; a node starting follows hundreds): an interrupted
// round starts again once none was added for addQuiet, or after addBurst,
// so a burst costs a few fetches, not one abandoned long poll on the
// leader per partition.
const (
	addQuiet = 2 * time.Millisecond
	addBurst = 50 * time.Millisecond
)

// settle waits for a burst of additions to end.
func (f *Fetcher) settle(ctx context.Context) {
	burst := time.NewTimer(addBurst)
	defer burst.Stop()
	quiet := time.NewTimer(addQuiet)
	defer quiet.Stop()
	for {
		select {
		case <-f.wake:
			quiet.Reset(addQuiet)
		case <-quiet.C:
			return
		case <-burst.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// round sends one fetch for parts and applies the answer.
func (f *Fetcher) round(ctx context.Context, parts []Follower) error {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = f.cfg.Self, int32(f.cfg.MaxWait/time.Millisecond), 1, f.cfg.MaxBytes
	req.SessionEpoch = -1
	byTopic := map[string]int{}
	type sent struct {
		p      Follower
		offset int64
	}
	asked := map[key]sent{}
	for _, p := range parts {
		i, ok := byTopic[p.Topic()]
		if !ok {
			i = len(req.Topics)
			byTopic[p.Topic()] = i
			t := kmsg.NewFetchRequestTopic()
			t.Topic = p.Topic()
			req.Topics = append(req.Topics, t)
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.FetchOffset = p.Partition(), p.LeaderEpoch(), p.LogEndOffset()
		rp.LastFetchedEpoch, rp.LogStartOffset, rp.PartitionMaxBytes = p.LastEpoch(), -1, f.cfg.PartitionMaxBytes
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
		asked[key{p.Topic(), p.Partition()}] = sent{p, rp.FetchOffset}
	}
	// A request lost with a connection (a NATS reconnect) gets no
	// answer: give up on it soon after the leader's long poll.
	ctx, cancel := context.WithTimeout(ctx, f.cfg.MaxWait+2*time.Second)
	defer cancel()
	resp, err := f.cfg.Send(ctx, f.cfg.Leader, req)
	if err != nil {
		return err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return err
	}
	var failed error
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			s, ok := asked[key{rt.Topic, rp.Partition}]
			if !ok || !f.Has(s.p) {
				continue // removed meanwhile
			}
			if err := f.apply(s.p, s.offset, &rp); err != nil {
				failed = errors.Join(failed, fmt.Errorf("%s-%d: %w", rt.Topic, rp.Partition, err))
			}
		}
	}
	return failed
}

// apply takes one partition's answer to a fetch at offset.
func (f *Fetcher) apply(p Follower, offset int64, rp *kmsg.FetchResponseTopicPartition) error {
	switch err := kerr.ErrorForCode(rp.ErrorCode); {
	case err == nil:
	case errors.Is(err, kerr.OffsetOutOfRange) && offset < rp.LogStartOffset:
		// The leader's log starts past ours (retention, tiering): start
		// over where it starts.
		f.logger.Info("follower log behind the leader's log start: starting there", "topic", p.Topic(), "partition", p.Partition(),
			"log_end", offset, "leader_log_start", rp.LogStartOffset)
		return p.TruncateFullyAndStartAt(rp.LogStartOffset)
	case errors.Is(err, kerr.NotLeaderForPartition), errors.Is(err, kerr.FencedLeaderEpoch),
		errors.Is(err, kerr.UnknownLeaderEpoch), errors.Is(err, kerr.UnknownTopicOrPartition):
		f.logger.Debug("the leader refuses the partition's fetch: metadata to be read again", "topic", p.Topic(),
			"partition", p.Partition(), "leader_epoch", p.LeaderEpoch(), "error", err)
		f.Remove(p.Topic(), p.Partition())
		f.cfg.Stale(p, err)
		return nil
	default:
		return err
	}
	if rp.DivergingEpoch.EndOffset >= 0 && rp.DivergingEpoch.Epoch >= 0 {
		// Our log has batches of an epoch the leader ended earlier (or
		// never had): cut back to where the two agree.
		epoch, end := p.EndOffsetForEpoch(rp.DivergingEpoch.Epoch)
		cut := rp.DivergingEpoch.EndOffset
		if epoch == rp.DivergingEpoch.Epoch {
			cut = min(cut, end)
		}
		f.logger.Info("follower log diverged from the leader's: truncating", "topic", p.Topic(), "partition", p.Partition(),
			"leader_epoch", rp.DivergingEpoch.Epoch, "leader_end_offset", rp.DivergingEpoch.EndOffset, "truncate_to", cut)
		return p.TruncateTo(cut)
	}
	if len(rp.RecordBatches) > 0 {
		if err := p.AppendReplicated(rp.RecordBatches); err != nil {
			return err
		}
	}
	p.SetHighWatermark(min(rp.HighWatermark, p.LogEndOffset()))
	return nil
}
