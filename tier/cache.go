package tier

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// chunkCache keeps fixed-size byte ranges ("chunks") of remote objects in
// files under a directory: at most maxBytes of them, the least recently
// used evicted first. Each chunk is fetched once however many readers
// want it; fetches run on a bounded budget of workers (the remote-read
// budget, apart from uploads and from produce).
type chunkCache struct {
	store      Store
	dir        string
	chunkBytes int64
	maxBytes   int64
	workers    chan struct{}
	timeout    time.Duration

	mu      sync.Mutex
	chunks  map[chunkID]*chunk
	lru     list.List // ready chunks, most recently used first
	used    int64     // bytes of ready chunks
	seq     int64     // names chunk files
	loading int       // fetches started and not finished
	closed  bool

	base   context.Context // cancelled by close: fetches stop
	cancel context.CancelFunc
	wg     sync.WaitGroup

	hits, misses, fetched atomic.Int64
}

type chunkID struct {
	key   string
	index int64
}

type chunk struct {
	id    chunkID
	file  *os.File
	size  int64
	ready chan struct{} // closed when the fetch ends; then err or file is set
	err   error
	pins  int
	elem  *list.Element
}

func newChunkCache(store Store, dir string, chunkBytes, maxBytes int64, workers int, timeout time.Duration) (*chunkCache, error) {
	// The cache lives as long as the process: what an earlier run left
	// is dropped rather than trusted.
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("tier: clear read cache %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("tier: read cache %s: %w", dir, err)
	}
	c := &chunkCache{store: store, dir: dir, chunkBytes: chunkBytes, maxBytes: maxBytes,
		workers: make(chan struct{}, workers), timeout: timeout, chunks: map[chunkID]*chunk{}}
	c.base, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// readAt fills p from object key (size bytes long) at off, through the
// cache, and starts fetching the readAhead chunks after the last one it
// touched.
func (c *chunkCache) readAt(ctx context.Context, key string, size int64, p []byte, off int64, readAhead int) error {
	end := off + int64(len(p))
	if off < 0 || end > size {
		return fmt.Errorf("tier: read [%d, %d) of %s beyond its %d bytes", off, end, key, size)
	}
	last := int64(-1)
	for done := 0; done < len(p); {
		pos := off + int64(done)
		idx := pos / c.chunkBytes
		ch, err := c.get(ctx, chunkID{key, idx}, size)
		if err != nil {
			return err
		}
		n, err := ch.file.ReadAt(p[done:min(len(p), done+int(ch.size-(pos-idx*c.chunkBytes)))], pos-idx*c.chunkBytes)
		c.unpin(ch)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("tier: read cache: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("tier: read cache: chunk %d of %s is short", idx, key)
		}
		done += n
		last = idx
	}
	for i := int64(1); i <= int64(readAhead); i++ {
		c.prefetch(chunkID{key, last + i}, size)
	}
	return nil
}

// get returns chunk id, pinned (so it is not evicted while read),
// fetching it if needed.
func (c *chunkCache) get(ctx context.Context, id chunkID, size int64) (*chunk, error) {
	c.mu.Lock()
	ch := c.chunks[id]
	if ch != nil && ch.elem != nil {
		c.hits.Add(1)
		c.lru.MoveToFront(ch.elem)
	} else {
		c.misses.Add(1)
		if ch == nil {
			ch = c.startLocked(id, size)
		}
	}
	ch.pins++
	c.mu.Unlock()
	select {
	case <-ch.ready:
	case <-ctx.Done():
		c.unpin(ch)
		return nil, ctx.Err()
	}
	if ch.err != nil {
		c.unpin(ch)
		return nil, ch.err
	}
	return ch, nil
}

// prefetch starts fetching a chunk nobody waits for yet, if it lies in
// the object, is not cached and the workers are not all spoken for.
func (c *chunkCache) prefetch(id chunkID, size int64) {
	if id.index*c.chunkBytes >= size {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.chunks[id] == nil && c.loading < 2*cap(c.workers) {
		c.startLocked(id, size)
	}
}

var errStopped = errors.New("tier: remote reads stopped")

// goBackground registers a background job that close waits for (the
// job calls c.wg.Done); it reports false once the cache is stopping.
func (c *chunkCache) goBackground() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	return true
}

func (c *chunkCache) unpin(ch *chunk) {
	c.mu.Lock()
	ch.pins--
	c.evictLocked()
	c.mu.Unlock()
}

// startLocked registers a chunk and fetches it in the background: the
// fetch outlives any one reader, who may give up waiting.
func (c *chunkCache) startLocked(id chunkID, size int64) *chunk {
	ch := &chunk{id: id, ready: make(chan struct{})}
	if c.closed {
		// close waits for the fetches under way; none may start now.
		ch.err = errStopped
		close(ch.ready)
		return ch
	}
	c.chunks[id] = ch
	c.loading++
	c.seq++
	path := filepath.Join(c.dir, strconv.FormatInt(c.seq, 10)+".chunk")
	c.wg.Add(1)
	go c.fetch(ch, path, min(c.chunkBytes, size-id.index*c.chunkBytes))
	return ch
}

func (c *chunkCache) fetch(ch *chunk, path string, length int64) {
	defer c.wg.Done()
	var f *os.File
	var err error
	select {
	case c.workers <- struct{}{}:
		ctx, cancel := context.WithTimeout(c.base, c.timeout)
		f, err = c.download(ctx, ch.id, path, length)
		cancel()
		<-c.workers
	case <-c.base.Done():
		err = errStopped
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	c.loading--
	if err == nil && c.closed {
		f.Close()
		err = errStopped
	}
	if err != nil {
		ch.err = err
		delete(c.chunks, ch.id) // the next reader tries again
		close(ch.ready)
		return
	}
	c.fetched.Add(length)
	ch.file, ch.size = f, length
	ch.elem = c.lru.PushFront(ch)
	c.used += length
	close(ch.ready)
	c.evictLocked()
}

// download copies one chunk of an object into a new file, whole or not
// at all.
func (c *chunkCache) download(ctx context.Context, id chunkID, path string, length int64) (*os.File, error) {
	rc, err := c.store.Get(ctx, id.key, id.index*c.chunkBytes, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("tier: read cache: %w", err)
	}
	n, err := io.Copy(f, rc)
	if err == nil && n != length {
		err = fmt.Errorf("tier: %s: got %d bytes of chunk %d, want %d", id.key, n, id.index, length)
	}
	// The name goes at once; the open file lives until evicted.
	if rerr := os.Remove(path); err == nil && rerr != nil {
		err = fmt.Errorf("tier: read cache: %w", rerr)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// evictLocked closes least recently used chunks nobody reads until the
// cache fits.
func (c *chunkCache) evictLocked() {
	for e := c.lru.Back(); e != nil && c.used > c.maxBytes; {
		ch := e.Value.(*chunk)
		prev := e.Prev()
		if ch.pins == 0 {
			c.lru.Remove(e)
			delete(c.chunks, ch.id)
			c.used -= ch.size
			ch.file.Close()
		}
		e = prev
	}
}

// forget drops an object's chunks (it was deleted from the store).
func (c *chunkCache) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, ch := range c.chunks {
		if id.key == key && ch.elem != nil && ch.pins == 0 {
			c.lru.Remove(ch.elem)
			delete(c.chunks, id)
			c.used -= ch.size
			ch.file.Close()
		}
	}
}

// close stops fetches and closes every cached chunk.
func (c *chunkCache) close() {
	c.mu.Lock()
	c.closed = true // no fetch starts from here on: wg.Wait below is final
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.lru.Front(); e != nil; e = e.Next() {
		e.Value.(*chunk).file.Close()
	}
	c.lru.Init()
	c.chunks = map[chunkID]*chunk{}
	c.used = 0
}
