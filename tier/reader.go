package tier

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/strata-io/strata/meta"
	plog "github.com/strata-io/strata/node/log"
)

// ReaderConfig configures a Reader.
type ReaderConfig struct {
	Store Store
	// CacheDir holds cached chunks of remote logs; it is emptied at start.
	CacheDir string
	// CacheBytes bounds the chunk cache on disk (default 1 GiB).
	CacheBytes int64
	// MemoryBytes bounds the chunks held in memory, where every chunk
	// is fetched to and read from first (default 64 MiB: the read-ahead
	// of four workers, two chunks each, fits); see
	// chunkCache for which go on to the disk.
	MemoryBytes int64
	// ChunkBytes is the size of one ranged GET (default 8 MiB).
	ChunkBytes int64
	// ReadAhead is how many chunks past the one being read are fetched
	// ahead of a sequential reader (default 4).
	ReadAhead int
	// Workers bounds concurrent GETs for remote reads (default 4), apart
	// from uploads.
	Workers int
	// IndexCacheBytes bounds the in-memory cache of remote offset and
	// time indexes (default 64 MiB).
	IndexCacheBytes int64
	// Timeout bounds one GET (default 30s).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Reader serves reads of uploaded segments: the remote offset index
// (cached in memory) finds the batch, and byte ranges of the remote log
// come through a chunk cache in memory and on disk, with read-ahead, so a sequential
// replay streams at object-store speed.
type Reader struct {
	cfg     ReaderConfig
	chunks  *chunkCache
	indexes *indexCache
}

// ErrUnavailable wraps a failure to read remote data (the store is down
// or answering errors): retriable, never partial data.
var ErrUnavailable = errors.New("tier: remote data unavailable")

// NewReader prepares the cache directory.
func NewReader(cfg ReaderConfig) (*Reader, error) {
	if cfg.Store == nil || cfg.CacheDir == "" {
		return nil, errors.New("tier: a reader needs a store and a cache directory")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = 1 << 30
	}
	if cfg.MemoryBytes <= 0 {
		cfg.MemoryBytes = 64 << 20
	}
	if cfg.ChunkBytes <= 0 {
		cfg.ChunkBytes = 8 << 20
	}
	if cfg.ReadAhead < 0 {
		cfg.ReadAhead = 0
	} else if cfg.ReadAhead == 0 {
		cfg.ReadAhead = 4
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.IndexCacheBytes <= 0 {
		cfg.IndexCacheBytes = 64 << 20
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	chunks, err := newChunkCache(cfg.Store, cfg.CacheDir, cfg.ChunkBytes, cfg.CacheBytes, cfg.MemoryBytes, cfg.Workers, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	return &Reader{cfg: cfg, chunks: chunks, indexes: newIndexCache(cfg.IndexCacheBytes)}, nil
}

// Close stops fetches and drops the cache.
func (r *Reader) Close() { r.chunks.close() }

// ReaderStats counts cache use since start.
type ReaderStats struct {
	ChunkHits, ChunkMisses int64
	FetchedBytes           int64 // bytes of log chunks fetched from the store
	SpilledBytes           int64 // bytes of chunks written to the disk cache
	CachedBytes            int64 // on disk
	MemoryBytes            int64 // in memory
	// Working counts chunks being fetched or written to disk now.
	Working int
}

// Stats reports cache use.
func (r *Reader) Stats() ReaderStats {
	r.chunks.mu.Lock()
	disk, mem, working := r.chunks.diskUsed, r.chunks.memUsed, r.chunks.loading+r.chunks.spills
	r.chunks.mu.Unlock()
	return ReaderStats{ChunkHits: r.chunks.hits.Load(), ChunkMisses: r.chunks.misses.Load(),
		FetchedBytes: r.chunks.fetched.Load(), SpilledBytes: r.chunks.spilled.Load(), CachedBytes: disk, MemoryBytes: mem,
		Working: working}
}

// Read returns whole batches of seg from the one holding offset: at most
// maxBytes of them, but always the first whole. Every batch's CRC is
// checked. A store failure is ErrUnavailable.
//
// next, when not nil, names the segment after seg (ok false: none). It is
// asked only when the read-ahead window runs past seg's end, and the
// window then goes on into that segment: its offset index and first
// chunks are fetched in the background, so a replay does not stall on
// two GETs at every segment boundary.
func (r *Reader) Read(ctx context.Context, seg meta.TierSegment, offset int64, maxBytes int, next func() (meta.TierSegment, bool)) ([]byte, error) {
	return r.ReadAlloc(ctx, seg, offset, maxBytes, next, func(n int) []byte { return make([]byte, 0, n) })
}

// ReadAlloc is Read into a buffer from alloc (a pool's, say: a replay
// reads megabytes per fetch, and fresh ones keep the garbage collector
// busy under every other request). alloc returns a slice of length 0
// and capacity at least n; the result is that buffer, cut.
func (r *Reader) ReadAlloc(ctx context.Context, seg meta.TierSegment, offset int64, maxBytes int, next func() (meta.TierSegment, bool),
	alloc func(n int) []byte) ([]byte, error) {
	pos, h, err := r.findBatch(ctx, seg, offset)
	if err != nil || pos < 0 {
		return nil, err
	}
	// Wait for the first batch only: past it, what the cache already
	// holds. A replay's first answer then comes once one batch is in,
	// not megabytes, and later ones carry what the read-ahead fetched
	// meanwhile.
	n := min(max(int64(maxBytes), h.Size()), seg.SizeBytes-pos)
	buf := alloc(int(n))[:n]
	got, err := r.chunks.readUpTo(ctx, seg.ObjectKey, seg.SizeBytes, buf, pos, int(h.Size()), r.cfg.ReadAhead)
	if err != nil {
		return nil, unavailable(seg.ObjectKey, err)
	}
	buf = buf[:got]
	if next != nil {
		chunk := r.cfg.ChunkBytes
		spill := (pos+n-1)/chunk + int64(r.cfg.ReadAhead) - (seg.SizeBytes-1)/chunk
		if spill > 0 {
			if ns, ok := next(); ok {
				r.prefetch(ns, int(spill))
			}
		}
	}
	// Keep whole batches only, each verified.
	p := 0
	for p+plog.BatchHeaderBytes <= len(buf) {
		bh, err := plog.ParseBatchHeader(buf[p:])
		if err != nil {
			return nil, fmt.Errorf("tier: %s at position %d: %w", seg.ObjectKey, pos+int64(p), err)
		}
		if p+int(bh.Size()) > len(buf) {
			break
		}
		if _, err := plog.VerifyBatch(buf[p : p+int(bh.Size())]); err != nil {
			return nil, fmt.Errorf("tier: %s at position %d: %w", seg.ObjectKey, pos+int64(p), err)
		}
		p += int(bh.Size())
	}
	return buf[:p], nil
}

// OffsetForTimestamp finds in seg the first record whose timestamp is >=
// timestamp and at or after offset start, as the local log does.
func (r *Reader) OffsetForTimestamp(ctx context.Context, seg meta.TierSegment, timestamp, start int64) (offset, recordTimestamp int64, found bool, err error) {
	if seg.MaxTimestamp < timestamp || seg.LastOffset < start {
		return 0, 0, false, nil
	}
	tix, err := r.index(ctx, seg, ".timeindex")
	if err != nil {
		return 0, 0, false, err
	}
	from := max(plog.TimeIndexFloor(tix, seg.BaseOffset, timestamp), start)
	pos, h, err := r.findBatch(ctx, seg, from)
	for err == nil && pos >= 0 {
		if h.MaxTimestamp >= timestamp {
			b := make([]byte, h.Size())
			if err := r.readLog(ctx, seg, b, pos); err != nil {
				return 0, 0, false, err
			}
			if _, err := plog.VerifyBatch(b); err != nil {
				return 0, 0, false, fmt.Errorf("tier: %s at position %d: %w", seg.ObjectKey, pos, err)
			}
			off, ts := plog.RecordAtOrAfter(b, h, timestamp, start, nil)
			return off, ts, true, nil
		}
		if pos += h.Size(); pos >= seg.SizeBytes {
			return 0, 0, false, nil
		}
		h, err = r.header(ctx, seg, pos)
	}
	return 0, 0, false, err
}

// findBatch returns the position and header of the first batch of seg
// whose last offset is >= offset, or position -1 when none is.
func (r *Reader) findBatch(ctx context.Context, seg meta.TierSegment, offset int64) (int64, plog.BatchHeader, error) {
	ix, err := r.index(ctx, seg, ".index")
	if err != nil {
		return -1, plog.BatchHeader{}, err
	}
	_, pos, _ := plog.OffsetIndexFloor(ix, seg.BaseOffset, offset)
	for pos < seg.SizeBytes {
		h, err := r.header(ctx, seg, pos)
		if err != nil {
			return -1, h, err
		}
		if h.LastOffset() >= offset {
			return pos, h, nil
		}
		pos += h.Size()
	}
	return -1, plog.BatchHeader{}, nil
}

func (r *Reader) header(ctx context.Context, seg meta.TierSegment, pos int64) (plog.BatchHeader, error) {
	if pos+plog.BatchHeaderBytes > seg.SizeBytes {
		return plog.BatchHeader{}, fmt.Errorf("tier: %s: batch at position %d runs past the object's end", seg.ObjectKey, pos)
	}
	var b [plog.BatchHeaderBytes]byte
	if err := r.readLog(ctx, seg, b[:], pos); err != nil {
		return plog.BatchHeader{}, err
	}
	h, err := plog.ParseBatchHeader(b[:])
	if err != nil {
		return h, fmt.Errorf("tier: %s at position %d: %w", seg.ObjectKey, pos, err)
	}
	if pos+h.Size() > seg.SizeBytes {
		return h, fmt.Errorf("tier: %s: batch at position %d runs past the object's end", seg.ObjectKey, pos)
	}
	return h, nil
}

// prefetch starts fetching seg's first chunks (on the remote-read
// workers) and its offset index, in the background.
func (r *Reader) prefetch(seg meta.TierSegment, chunks int) {
	for i := range int64(min(chunks, r.cfg.ReadAhead)) {
		r.chunks.prefetch(chunkID{seg.ObjectKey, i}, seg.SizeBytes)
	}
	if r.indexes.has(indexKey(seg, ".index")) || !r.chunks.goBackground() {
		return
	}
	go func() {
		defer r.chunks.wg.Done()
		r.index(r.chunks.base, seg, ".index")
	}()
}

func (r *Reader) readLog(ctx context.Context, seg meta.TierSegment, p []byte, pos int64) error {
	if err := r.chunks.readAt(ctx, seg.ObjectKey, seg.SizeBytes, p, pos, r.cfg.ReadAhead); err != nil {
		return unavailable(seg.ObjectKey, err)
	}
	return nil
}

// index returns a segment's offset or time index, from memory or the
// store.
func (r *Reader) index(ctx context.Context, seg meta.TierSegment, suffix string) ([]byte, error) {
	key := indexKey(seg, suffix)
	b, err := r.indexes.get(key, func() ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		defer cancel()
		rc, err := r.cfg.Store.Get(ctx, key, 0, -1)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	})
	if err != nil {
		return nil, unavailable(key, err)
	}
	return b, nil
}

// indexKey names the object of seg's index with suffix (".index",
// ".timeindex") beside its log.
func indexKey(seg meta.TierSegment, suffix string) string {
	return strings.TrimSuffix(seg.ObjectKey, ".log") + suffix
}

// Forget drops what is cached of a deleted segment.
func (r *Reader) Forget(seg meta.TierSegment) {
	r.indexes.forget(indexKey(seg, ".index"))
	r.indexes.forget(indexKey(seg, ".timeindex"))
	r.chunks.forget(seg.ObjectKey)
}

func unavailable(key string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, key, err)
}

// indexCache keeps whole remote index objects in memory, least recently
// used evicted first; concurrent misses on one key fetch it once.
type indexCache struct {
	max     int64
	mu      sync.Mutex
	entries map[string]*indexEntry
	lru     list.List
	used    int64
}

type indexEntry struct {
	key   string
	data  []byte
	err   error
	ready chan struct{}
	elem  *list.Element
}

func newIndexCache(max int64) *indexCache {
	return &indexCache{max: max, entries: map[string]*indexEntry{}}
}

func (c *indexCache) get(key string, load func() ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	e := c.entries[key]
	if e != nil {
		if e.elem != nil {
			c.lru.MoveToFront(e.elem)
		}
		c.mu.Unlock()
		<-e.ready
		return e.data, e.err
	}
	e = &indexEntry{key: key, ready: make(chan struct{})}
	c.entries[key] = e
	c.mu.Unlock()

	data, err := load()
	c.mu.Lock()
	e.data, e.err = data, err
	if err != nil {
		delete(c.entries, key)
	} else {
		e.elem = c.lru.PushFront(e)
		c.used += int64(len(data))
		for c.used > c.max && c.lru.Len() > 1 {
			old := c.lru.Remove(c.lru.Back()).(*indexEntry)
			delete(c.entries, old.key)
			c.used -= int64(len(old.data))
		}
	}
	close(e.ready)
	c.mu.Unlock()
	return data, err
}

// has reports whether key is cached or being loaded.
func (c *indexCache) has(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[key] != nil
}

func (c *indexCache) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[key]; e != nil && e.elem != nil {
		c.lru.Remove(e.elem)
		delete(c.entries, key)
		c.used -= int64(len(e.data))
	}
}
