package gateway

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sync/semaphore"

	"github.com/strata-io/strata/internal/bufpool"
	"github.com/strata-io/strata/internal/errcode"
	"github.com/strata-io/strata/meta"
	"github.com/strata-io/strata/tier"
)

// A gateway with a tier (Config.Tier) reads uploaded segments itself:
// its fetches to nodes carry rpc.HeaderTierRead, and a node answers a
// partition whose fetch offset lies below its local log with
// OFFSET_MOVED_TO_TIERED_STORAGE and a remote hint (the manifest entry
// holding the offset, and the next). The gateway then reads the records
// from the store through its own chunk cache and read-ahead, with the
// same CRC check, and the bytes never cross the node or NATS. A replay
// thus scales with gateways and takes nothing from a leader's produce
// path.

// maxFetchBytes caps one fetch response's records, as the nodes do
// (Kafka's fetch.max.bytes).
const maxFetchBytes = 55 << 20

// remoteReader is a gateway's reader of uploaded segments.
type remoteReader struct {
	r      *tier.Reader
	quota  *byteQuota          // bytes read per second; nil: unbounded
	slots  chan struct{}       // one per remote read in progress
	memory *semaphore.Weighted // bytes the reads in progress may hold
	limit  int64               // memory's size
	tmpDir string              // the cache directory made for it, removed by close
	logger *slog.Logger
}

func newRemoteReader(cfg Config, logger *slog.Logger) (*remoteReader, error) {
	rr := &remoteReader{logger: logger}
	// The reader empties its directory at start: a subdirectory of
	// the one configured, never the directory itself.
	dir := filepath.Join(cfg.TierCacheDir, "strata-tier-cache")
	if cfg.TierCacheDir == "" {
		d, err := os.MkdirTemp("", "strata-gateway-tier-cache-")
		if err != nil {
			return nil, err
		}
		dir, rr.tmpDir = d, d
	}
	conc := cfg.TierReadConcurrency
	if conc <= 0 {
		conc = 8
	}
	limit := cfg.TierReadMaxBytes
	if limit <= 0 {
		limit = 256 << 20
	}
	r, err := tier.NewReader(tier.ReaderConfig{Store: cfg.Tier, CacheDir: dir, CacheBytes: cfg.TierCacheBytes,
		Logger: logger.With("component", "tier")})
	if err != nil {
		if rr.tmpDir != "" {
			os.RemoveAll(rr.tmpDir)
		}
		return nil, err
	}
	rr.r, rr.slots, rr.memory, rr.limit = r, make(chan struct{}, conc), semaphore.NewWeighted(limit), limit
	rr.quota = newByteQuota(cfg.TierFetchMaxBytesPerSecond)
	return rr, nil
}

func (rr *remoteReader) close() {
	rr.r.Close()
	if rr.tmpDir != "" {
		os.RemoveAll(rr.tmpDir)
	}
}

// RemoteReadStats reports the gateway's reads of uploaded segments (ok
// false: it reads none, the nodes do).
func (g *Gateway) RemoteReadStats() (st tier.ReaderStats, ok bool) {
	if g.remote == nil {
		return st, false
	}
	return g.remote.r.Stats(), true
}

// read reads topic's partition from offset, at most maxBytes (but at
// least one batch), as the hint from the partition's leader directs.
func (rr *remoteReader) read(ctx context.Context, topic string, partition int32, offset int64, maxBytes int, hint []byte) ([]byte, error) {
	seg, next, err := tier.DecodeRemoteHint(hint, topic, partition, offset)
	if err != nil {
		return nil, err
	}
	// Wait for a slot and for the memory the answer may take (a first
	// batch larger than maxBytes can exceed it: that is the client's
	// max.message.bytes, as on the node path).
	select {
	case rr.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-rr.slots }()
	weight := min(int64(max(maxBytes, 1)), rr.limit)
	if err := rr.memory.Acquire(ctx, weight); err != nil {
		return nil, err
	}
	defer rr.memory.Release(weight)
	var nextSeg func() (meta.TierSegment, bool)
	if next != nil {
		nextSeg = func() (meta.TierSegment, bool) { return *next, true }
	}
	// Into a pooled buffer, given back once the client's answer is
	// written (the request's releaser); fresh megabytes per fetch would
	// keep the garbage collector busy under every other request.
	rel, ok := ctx.Value(releaserKey{}).(*releaser)
	if !ok {
		return rr.r.Read(ctx, seg, offset, maxBytes, nextSeg)
	}
	return rr.r.ReadAlloc(ctx, seg, offset, maxBytes, nextSeg, func(n int) []byte {
		b := bufpool.Get(n)
		rel.add(func() { bufpool.Put(b) })
		return b
	})
}

// serveRemote answers, from the store, each partition of resp a node
// answered with a remote hint. The reads run at once; in the client's
// order, each answer is kept while the response stays within the
// request's MaxBytes (the first always: a consumer never gets stuck on a
// large batch), and one that does not fit is answered empty, for the
// client to ask again. Under the gateway's remote fetch quota, a fetch
// waits for its turn until deadline (the request's MaxWait); one that
// would wait longer is answered empty, with the wait as its throttle
// time, and the client asks again after it.
func (g *Gateway) serveRemote(ctx context.Context, req *kmsg.FetchRequest, resp *kmsg.FetchResponse, names []string, deadline time.Time) {
	type read struct {
		sp     *kmsg.FetchResponseTopicPartition
		topic  string
		offset int64
		max    int32
		hint   []byte
		data   []byte
		err    error
	}
	var reads []*read
	budget := int(req.MaxBytes)
	if budget <= 0 || budget > maxFetchBytes {
		budget = maxFetchBytes
	}
	used := 0
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			sp := &resp.Topics[i].Partitions[j]
			if sp.ErrorCode != kerr.OffsetMovedToTieredStorage.Code {
				used += len(sp.RecordBatches)
				continue
			}
			if g.remote == nil { // a node that took this gateway for one that reads
				sp.ErrorCode, sp.RecordBatches = kerr.KafkaStorageError.Code, []byte{}
				continue
			}
			rp := req.Topics[i].Partitions[j]
			reads = append(reads, &read{sp: sp, topic: names[i], offset: rp.FetchOffset, max: rp.PartitionMaxBytes, hint: sp.RecordBatches})
			sp.ErrorCode, sp.RecordBatches = 0, []byte{}
		}
	}
	if len(reads) == 0 {
		return
	}
	if wait := g.remote.quota.delay(); wait > 0 {
		if time.Until(deadline) < wait {
			resp.ThrottleMillis = max(resp.ThrottleMillis, int32(wait.Milliseconds())+1)
			return // every remote partition empty: the client asks again after the throttle
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			for _, rd := range reads {
				rd.sp.ErrorCode = kerr.KafkaStorageError.Code // retriable; the client has likely gone
			}
			return
		}
	}
	var wg sync.WaitGroup
	for _, rd := range reads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			rd.data, rd.err = g.remote.read(ctx, rd.topic, rd.sp.Partition, rd.offset, min(int(rd.max), budget), rd.hint)
			g.metrics.remoteRead.Observe(time.Since(start).Seconds())
		}()
	}
	wg.Wait()
	total := 0
	for _, rd := range reads {
		total += len(rd.data)
		switch {
		case rd.err != nil && ctx.Err() != nil:
			rd.sp.ErrorCode = kerr.KafkaStorageError.Code // retriable; the client has likely gone
		case rd.err != nil:
			rd.sp.ErrorCode = errcode.Of(rd.err)
			g.logger.Warn("remote read failed", "partition", rd.sp.Partition, "error", rd.err)
		case used == 0 || used+len(rd.data) <= budget:
			rd.sp.RecordBatches = rd.data
			used += len(rd.data)
		}
	}
	g.remote.quota.take(total)
}
