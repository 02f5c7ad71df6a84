package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/internal/rpc"
	plog "github.com/strata-io/strata/node/log"
)

// Log compaction on the node: the cleaner loop picks, every
// CleanerInterval, the dirtiest log of a topic with cleanup.policy
// compact (or compact,delete) whose dirty ratio reached
// min.cleanable.dirty.ratio, or whose oldest dirty record passed
// max.compaction.lag.ms, and cleans it (plog.Log.Clean). One log at a
// time (Kafka's log.cleaner.threads=1), its reads paced to
// CleanerIOBytesPerSecond. Leaders and followers clean their own copies,
// as in Kafka: offsets are kept, so replicas agree on what each offset
// holds whichever cleaned.
//
// Never cleaned: the active segment, anything at or past the high
// watermark or the last stable offset (an open or undecided transaction
// stays as written), and segments holding a record newer than
// min.compaction.lag.ms.

// CleanerSettings configure the cleaner, as Kafka's broker configs.
type CleanerSettings struct {
	// Interval is how often the cleaner looks for a log to clean
	// (log.cleaner.backoff.ms, default 15s).
	Interval time.Duration
	// DedupeBytes bounds its key map (log.cleaner.dedupe.buffer.size,
	// default 128 MiB).
	DedupeBytes int
	// IOBytesPerSecond paces its reads
	// (log.cleaner.io.max.bytes.per.second; 0: unlimited).
	IOBytesPerSecond float64
}

// Cleaner defaults, as Kafka's.
const (
	DefaultCleanerInterval    = 15 * time.Second // log.cleaner.backoff.ms
	DefaultCleanerDedupeBytes = 128 << 20        // log.cleaner.dedupe.buffer.size
)

// Topic config defaults of compaction, as Kafka's.
const (
	defaultMinCleanableRatio = 0.5
	defaultDeleteRetention   = 24 * time.Hour
)

// compacted reports whether a topic's cleanup.policy includes compact.
func compacted(configs map[string]string) bool {
	for _, p := range strings.Split(configs["cleanup.policy"], ",") {
		if strings.TrimSpace(p) == "compact" {
			return true
		}
	}
	return false
}

// deletes reports whether a topic's cleanup.policy includes delete (the
// default): retention by time and size applies.
func deletes(configs map[string]string) bool {
	policy, ok := configs["cleanup.policy"]
	return !ok || strings.Contains(policy, "delete")
}

// cleanerStats is what the cleaner did to one log, for status and
// metrics.
type cleanerStats struct {
	mu         sync.Mutex
	cleanedTo  int64 // the cleaner checkpoint: below it, each key once
	reclaimed  int64 // bytes the cleans removed, since the log opened
	cleans     int64
	lastErr    string
	dirtyRatio float64
	// remote is the remote cleaner's, on the partition's leader
	// (tiercompact.go); on is set once it planned a clean.
	remote struct {
		on                           bool
		cleanedTo, reclaimed, cleans int64
		dirtyRatio                   float64
		lastErr                      string
	}
}

// status is the log's compaction state, without its name and role.
func (s *cleanerStats) status() rpc.PartitionCompaction {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := rpc.PartitionCompaction{DirtyRatio: s.dirtyRatio, CleanedTo: s.cleanedTo, BytesReclaimed: s.reclaimed, Cleans: s.cleans, LastError: s.lastErr}
	if r := s.remote; r.on {
		st.Remote = &rpc.RemoteCompaction{DirtyRatio: r.dirtyRatio, CleanedTo: r.cleanedTo, BytesReclaimed: r.reclaimed, Cleans: r.cleans, LastError: r.lastErr}
	}
	return st
}

// compactionStatus reports each compacted partition this node holds.
func (n *Node) compactionStatus() rpc.CompactionReply {
	reply := rpc.CompactionReply{Node: n.cfg.ID, Partitions: []rpc.PartitionCompaction{}}
	v := n.cfg.Meta.Server().FSM().View()
	defer v.Close()
	for k, ol := range n.readyLogs() {
		if !compacted(ol.configs()) || ol.Log == nil {
			continue
		}
		part, ok, err := v.Partition(k.topic, k.partition)
		st := ol.cleaner.status()
		st.Topic, st.Partition, st.Leader = k.topic, k.partition, err == nil && ok && part.Leader == n.cfg.ID
		reply.Partitions = append(reply.Partitions, st)
	}
	return reply
}

// cleanerCodec is franz-go's codecs for batches, safe for concurrent
// use: the produce path checks keys with it.
var cleanerCodec = newCodec(false)

// newCodec returns franz-go's codecs for batches, which the cleaner
// rewrites with their own codec. With reuse, for one goroutine only, it
// decompresses into and compresses from buffers it keeps (Release gives
// a batch's records back): a clean of compressed batches then allocates
// next to nothing, where fresh megabytes per batch kept the garbage
// collector busy under every other request.
func newCodec(reuse bool) plog.Codec {
	var pool *scratchBytes
	var d kgo.Decompressor
	if reuse {
		pool = &scratchBytes{}
		d = kgo.DefaultDecompressor(pool)
	} else {
		d = kgo.DefaultDecompressor()
	}
	var mu sync.Mutex
	compressors := map[int]kgo.Compressor{}
	codecs := map[int]kgo.CompressionCodec{1: kgo.GzipCompression(), 2: kgo.SnappyCompression(), 3: kgo.Lz4Compression(), 4: kgo.ZstdCompression()}
	var out bytes.Buffer // with reuse
	c := plog.Codec{
		Decompress: func(codec int, body []byte) ([]byte, error) {
			return d.Decompress(body, kgo.CompressionCodecType(codec))
		},
		Compress: func(codec int, records []byte) ([]byte, error) {
			mu.Lock()
			c, ok := compressors[codec]
			if !ok {
				cc, known := codecs[codec]
				if !known {
					mu.Unlock()
					return nil, fmt.Errorf("unknown compression codec %d", codec)
				}
				var err error
				if c, err = kgo.DefaultCompressor(cc); err != nil {
					mu.Unlock()
					return nil, err
				}
				compressors[codec] = c
			}
			mu.Unlock()
			buf := &out
			if !reuse {
				buf = new(bytes.Buffer)
			}
			buf.Reset()
			b, used := c.Compress(buf, records)
			if int(used) != codec {
				return nil, fmt.Errorf("compressing with codec %d gave codec %d", codec, used)
			}
			if !reuse {
				return bytes.Clone(b), nil
			}
			return b, nil
		},
	}
	if reuse {
		c.Release = pool.PutDecompressBytes
	}
	return c
}

// scratchBytes is a one-buffer pool for decompressing (franz-go's
// PoolDecompressBytes): the buffer a batch was decompressed into comes
// back for the next.
type scratchBytes struct{ buf []byte }

func (p *scratchBytes) GetDecompressBytes(compressed []byte, _ kgo.CompressionCodecType) []byte {
	b := p.buf
	p.buf = nil
	if cap(b) < 4*len(compressed) {
		b = make([]byte, 0, 4*len(compressed))
	}
	return b[:0]
}

func (p *scratchBytes) PutDecompressBytes(b []byte) {
	if cap(b) > cap(p.buf) {
		p.buf = b[:0]
	}
}

// cleanerLoop cleans one log at a time, the dirtiest first.
func (n *Node) cleanerLoop(ctx context.Context) {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.Cleaner.Interval)
	defer t.Stop()
	pace := newPacer(n.cfg.Cleaner.IOBytesPerSecond)
	codec := newCodec(true) // this goroutine's
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Each log at most once a round: one whose clean failed waits
		// for the next.
		tried := map[partitionKey]bool{}
		for ctx.Err() == nil {
			k, ol, upTo := n.dirtiestLog(tried)
			if ol == nil {
				break
			}
			tried[k] = true
			n.clean(ctx, k, ol, upTo, pace, codec)
		}
		clear(tried)
		for ctx.Err() == nil {
			p, ok := n.dirtiestRemote(tried)
			if !ok {
				break
			}
			tried[p.key] = true
			n.cleanRemote(ctx, p, pace, codec)
		}
	}
}

// cleanPlan is one compacted log's cleanable state.
type cleanPlan struct {
	key   partitionKey
	ol    *openLog
	upTo  int64
	ratio float64
	due   bool // max.compaction.lag.ms passed for its oldest dirty record
	// firstDirty is the cleaner checkpoint.
	firstDirty int64
}

// dirtiestLog picks the compacted log to clean next: among those whose
// dirty ratio reached min.cleanable.dirty.ratio or whose oldest dirty
// record passed max.compaction.lag.ms, those overdue first, then the
// dirtiest. Nil when none is.
func (n *Node) dirtiestLog(skip map[partitionKey]bool) (partitionKey, *openLog, int64) {
	var best *cleanPlan
	now := time.Now()
	for k, ol := range n.readyLogs() {
		if !compacted(ol.configs()) || ol.Log == nil || skip[k] {
			continue
		}
		p := n.planClean(k, ol, now)
		ol.cleaner.mu.Lock()
		ol.cleaner.dirtyRatio, ol.cleaner.cleanedTo = p.ratio, p.firstDirty
		ol.cleaner.mu.Unlock()
		if worthCleaning(ol.configs(), p.ratio, p.due) && (best == nil || dirtier(p.due, p.ratio, best.due, best.ratio)) {
			best = &p
		}
	}
	if best == nil {
		return partitionKey{}, nil, 0
	}
	return best.key, best.ol, best.upTo
}

// worthCleaning reports whether a log's dirty ratio reached
// min.cleanable.dirty.ratio, or its oldest dirty record passed
// max.compaction.lag.ms (due).
func worthCleaning(configs map[string]string, ratio float64, due bool) bool {
	return ratio > 0 && (due || ratio >= configFloat(configs, "min.cleanable.dirty.ratio", defaultMinCleanableRatio))
}

// dirtier orders logs to clean: those overdue first, then the dirtiest.
func dirtier(due bool, ratio float64, thanDue bool, thanRatio float64) bool {
	return due && !thanDue || due == thanDue && ratio > thanRatio
}

// planClean works out how far a log may be cleaned and how dirty it is.
func (n *Node) planClean(k partitionKey, ol *openLog, now time.Time) cleanPlan {
	p := cleanPlan{key: k, ol: ol}
	hw := ol.highWatermark()
	ol.appendMu.Lock()
	upTo := ol.lastStableOffset(hw)
	ol.appendMu.Unlock()
	lag := configDuration(ol.configs(), "min.compaction.lag.ms", 0)
	maxLag := configDuration(ol.configs(), "max.compaction.lag.ms", math.MaxInt64)
	dirty, cleanable, firstDirty := ol.DirtyRatio(upTo)
	for _, s := range ol.Segments() {
		if !s.Sealed || s.BaseOffset >= upTo {
			break
		}
		if lag > 0 && s.MaxTimestamp > now.Add(-lag).UnixMilli() {
			upTo = min(upTo, s.BaseOffset) // too new to clean
			break
		}
		if s.NextOffset > firstDirty && maxLag < math.MaxInt64 && s.MaxTimestamp != math.MinInt64 &&
			s.MaxTimestamp < now.Add(-maxLag).UnixMilli() {
			p.due = true
		}
	}
	if ol.tier.enabled.Load() {
		// A tiered log is cleaned only where the bucket holds it: the
		// uploader reads a segment's files while it uploads them, and
		// a clean renames new files in their place.
		upTo = min(upTo, n.tierCoveredTo(k, ol.StartOffset()))
	}
	if upTo < ol.EndOffset() {
		dirty, cleanable, _ = ol.DirtyRatio(upTo)
	}
	p.upTo, p.firstDirty = upTo, firstDirty
	if cleanable > 0 {
		p.ratio = float64(dirty) / float64(cleanable)
	}
	return p
}

// lastBatches maps each idempotent producer of the log to the base
// offset of its last batch, which a clean keeps for its sequence.
func (ol *openLog) lastBatches() map[int64]int64 {
	ol.appendMu.Lock()
	defer ol.appendMu.Unlock()
	last := make(map[int64]int64, len(ol.producers))
	for pid, st := range ol.producers {
		if len(st.recent) > 0 {
			last[pid] = st.recent[len(st.recent)-1].firstOffset
		}
	}
	return last
}

// clean runs one clean of a log and records what it did.
func (n *Node) clean(ctx context.Context, k partitionKey, ol *openLog, upTo int64, pace *pacer, codec plog.Codec) {
	last := ol.lastBatches()
	start := time.Now()
	retention := configDuration(ol.configs(), "delete.retention.ms", defaultDeleteRetention)
	if ol.tier.enabled.Load() {
		// A tiered log's tombstones go from the bucket only: the clean
		// that removed a key's earlier values here did not reach those
		// already uploaded, and a tombstone dropped before its upload
		// would bring them back. The remote cleaner maps it and drops
		// it once delete.retention.ms has passed after that.
		retention = math.MaxInt64
	}
	res, err := ol.Clean(plog.CleanOptions{UpTo: upTo, MapBytes: n.cfg.Cleaner.DedupeBytes,
		DeleteRetention: retention,
		LastBatches:     last, Codec: codec, Throttle: func(b int) { pace.wait(ctx, b) }})
	ol.cleaner.mu.Lock()
	defer ol.cleaner.mu.Unlock()
	ol.cleaner.cleans++
	n.counts.cleans.Add(1)
	if err != nil {
		n.counts.cleanErrors.Add(1)
		ol.cleaner.lastErr = err.Error()
		level := n.logger.Warn
		if errors.Is(err, plog.ErrCleanAbandoned) {
			level = n.logger.Debug
		}
		level("log clean failed", "topic", k.topic, "partition", k.partition, "error", err)
		return
	}
	ol.cleaner.lastErr = ""
	ol.cleaner.reclaimed += res.BytesBefore - res.BytesAfter
	n.counts.cleanedBytes.Add(res.BytesBefore)
	n.counts.reclaimedBytes.Add(res.BytesBefore - res.BytesAfter)
	_, _, ol.cleaner.cleanedTo = ol.DirtyRatio(upTo)
	ol.cleaner.dirtyRatio = 0
	n.logger.Debug("log cleaned", "topic", k.topic, "partition", k.partition, "cleaned_to", res.CleanedTo,
		"reclaimed_bytes", res.BytesBefore-res.BytesAfter, "took", time.Since(start).Round(time.Millisecond))
}

func configFloat(configs map[string]string, key string, def float64) float64 {
	if v, ok := configs[key]; ok {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	}
	return def
}

func configDuration(configs map[string]string, key string, def time.Duration) time.Duration {
	if v, ok := configs[key]; ok {
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms >= 0 {
			if ms > math.MaxInt64/int64(time.Millisecond) {
				return math.MaxInt64
			}
			return time.Duration(ms) * time.Millisecond
		}
	}
	return def
}

// pacer keeps the cleaner's reads under a byte rate (0: unlimited).
// Used by the cleaner loop's goroutine only.
type pacer struct {
	rate    float64
	started time.Time
	bytes   int64
}

func newPacer(rate float64) *pacer { return &pacer{rate: rate, started: time.Now()} }

func (p *pacer) wait(ctx context.Context, n int) {
	if p.rate <= 0 {
		return
	}
	p.bytes += int64(n)
	due := p.started.Add(time.Duration(float64(p.bytes) / p.rate * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		sleep(ctx, d)
	} else if d < -time.Second {
		// Idle for a while: do not let the saved-up allowance burst.
		p.started, p.bytes = time.Now(), 0
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
