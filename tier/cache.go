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

	"github.com/strata-io/strata/internal/bufpool"
)

// chunkCache keeps fixed-size byte ranges ("chunks") of remote objects,
// fetched on a bounded budget of workers (the remote-read budget, apart
// from uploads and from produce). Each chunk is fetched once however many
// readers want it.
//
// A chunk downloads into memory, and readers take its bytes as they
// arrive: a replay never waits for a whole chunk, nor for a disk. Chunks
// in memory are bounded by memBytes; the least recently used leave first,
// and go on to the disk (at most diskBytes of files under dir) while it
// has room. Once the disk is full, a chunk leaving memory goes there only
// if it has been fetched before (the "second hit" admission of content
// caches): a long replay that reads history once then costs no disk
// writes, and does not push out what is read again and again.
type chunkCache struct {
	store      Store
	dir        string
	chunkBytes int64
	diskBytes  int64
	memBytes   int64
	workers    chan struct{}
	timeout    time.Duration

	mu        sync.Mutex
	chunks    map[chunkID]*chunk
	memLRU    list.List // whole chunks in memory, most recently used first
	diskLRU   list.List // chunks on disk, most recently used first
	memUsed   int64     // bytes of chunks in memory, whole or not
	diskUsed  int64     // bytes of chunks on disk
	spilling  int64     // bytes of chunks being written to disk
	spills    int       // and how many
	ghosts    map[chunkID]*list.Element
	ghostList list.List // ids fetched before and no longer held, oldest last
	maxGhosts int
	seq       int64 // names chunk files
	loading   int   // fetches started and not finished
	closed    bool

	base   context.Context // cancelled by close: fetches stop
	cancel context.CancelFunc
	wg     sync.WaitGroup

	hits, misses, fetched, spilled atomic.Int64
}

type chunkID struct {
	key   string
	index int64
}

// chunk is one chunk: in memory (mem set; avail bytes of it filled so
// far) or on disk (file set). All its fields are guarded by the cache's
// mutex.
type chunk struct {
	id    chunkID
	size  int64
	mem   []byte
	avail int64
	wake  chan struct{} // closed and replaced as avail grows and when the fetch ends
	done  bool          // the fetch ended: err, or all of mem is filled
	err   error
	file  *os.File
	pins  int           // readers using it: it is neither evicted nor freed
	elem  *list.Element // in memLRU or diskLRU; nil while loading or spilling
	read  bool          // a reader has asked for it (it is not only read ahead)
}

// readStep bounds one read of a chunk's download: readers waiting for
// the first bytes of a chunk get them after this much, not all of it.
const readStep = 256 << 10

func newChunkCache(store Store, dir string, chunkBytes, diskBytes, memBytes int64, workers int, timeout time.Duration) (*chunkCache, error) {
	// The cache lives as long as the process: what an earlier run left
	// is dropped rather than trusted.
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("tier: clear read cache %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("tier: read cache %s: %w", dir, err)
	}
	c := &chunkCache{store: store, dir: dir, chunkBytes: chunkBytes, diskBytes: diskBytes, memBytes: memBytes,
		workers: make(chan struct{}, workers), timeout: timeout, chunks: map[chunkID]*chunk{},
		ghosts: map[chunkID]*list.Element{}, maxGhosts: max(64, int(2*diskBytes/chunkBytes))}
	c.base, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// readAt fills p from object key (size bytes long) at off, through the
// cache, and starts fetching the readAhead chunks after the last one it
// touched.
func (c *chunkCache) readAt(ctx context.Context, key string, size int64, p []byte, off int64, readAhead int) error {
	_, err := c.readUpTo(ctx, key, size, p, off, len(p), readAhead)
	return err
}

// readUpTo is readAt that waits only for the first need bytes of p: past
// them it copies what the cache already holds, and stops at the first
// byte still to come. It returns how many bytes of p it filled.
func (c *chunkCache) readUpTo(ctx context.Context, key string, size int64, p []byte, off int64, need, readAhead int) (int, error) {
	end := off + int64(len(p))
	if off < 0 || end > size {
		return 0, fmt.Errorf("tier: read [%d, %d) of %s beyond its %d bytes", off, end, key, size)
	}
	last := int64(-1)
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		idx := pos / c.chunkBytes
		ch := c.get(chunkID{key, idx}, size)
		in := pos - idx*c.chunkBytes
		n := int(min(int64(len(p)-done), ch.size-in))
		wait := done < need
		if wait {
			n = min(n, need-done)
		}
		got, err := c.copyOut(ctx, ch, p[done:done+n], in, wait)
		c.unpin(ch)
		if err != nil {
			return done, err
		}
		done += got
		last = idx
		if got < n {
			break // the rest is still on its way
		}
	}
	for i := int64(1); i <= int64(readAhead); i++ {
		c.prefetch(chunkID{key, last + i}, size)
	}
	return done, nil
}

// get returns chunk id, pinned, starting its fetch if it is not held.
func (c *chunkCache) get(id chunkID, size int64) *chunk {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.chunks[id]
	switch {
	case ch == nil:
		c.misses.Add(1)
		ch = c.startLocked(id, size)
	case ch.done:
		c.hits.Add(1)
		if ch.elem != nil {
			if ch.file != nil {
				c.diskLRU.MoveToFront(ch.elem)
			} else {
				c.memLRU.MoveToFront(ch.elem)
			}
		}
	default:
		c.misses.Add(1) // under way: the reader waits for it
	}
	ch.pins++
	ch.read = true
	return ch
}

// copyOut fills p from ch at in, waiting for the bytes to arrive; or
// without wait, copies what has arrived of them, if any, and returns
// how many.
func (c *chunkCache) copyOut(ctx context.Context, ch *chunk, p []byte, in int64, wait bool) (int, error) {
	c.mu.Lock()
	for {
		if ch.err != nil {
			err := ch.err
			c.mu.Unlock()
			return 0, err
		}
		if ch.mem == nil { // on disk
			f := ch.file
			c.mu.Unlock()
			n, err := f.ReadAt(p, in)
			if n < len(p) {
				if err == nil || errors.Is(err, io.EOF) {
					err = fmt.Errorf("chunk %d of %s is short", ch.id.index, ch.id.key)
				}
				return 0, fmt.Errorf("tier: read cache: %w", err)
			}
			return len(p), nil
		}
		if ch.avail >= in+int64(len(p)) || !wait {
			// The filled part of mem is never written again, and a pinned
			// chunk's buffer is not given back.
			mem, avail := ch.mem, ch.avail
			c.mu.Unlock()
			if avail <= in {
				return 0, nil
			}
			return copy(p, mem[in:avail]), nil
		}
		wake := ch.wake
		c.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		c.mu.Lock()
	}
}

// prefetch starts fetching a chunk nobody waits for yet, if it lies in
// the object, is not held and the workers are not all spoken for.
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
	spills := c.evictLocked()
	c.mu.Unlock()
	c.spill(spills)
}

// startLocked registers a chunk and fetches it in the background: the
// fetch outlives any one reader, who may give up waiting.
func (c *chunkCache) startLocked(id chunkID, size int64) *chunk {
	length := min(c.chunkBytes, size-id.index*c.chunkBytes)
	ch := &chunk{id: id, size: length, wake: make(chan struct{})}
	if c.closed {
		// close waits for the fetches under way; none may start now.
		ch.err, ch.done = errStopped, true
		close(ch.wake)
		return ch
	}
	ch.mem = bufpool.Get(int(length))[:length]
	c.chunks[id] = ch
	c.memUsed += length
	c.loading++
	c.wg.Add(1)
	go c.fetch(ch)
	return ch
}

func (c *chunkCache) fetch(ch *chunk) {
	defer c.wg.Done()
	var err error
	select {
	case c.workers <- struct{}{}:
		ctx, cancel := context.WithTimeout(c.base, c.timeout)
		err = c.download(ctx, ch)
		cancel()
		<-c.workers
	case <-c.base.Done():
		err = errStopped
	}

	c.mu.Lock()
	c.loading--
	if err == nil && c.closed {
		err = errStopped
	}
	ch.done = true
	close(ch.wake)
	if err != nil {
		ch.err = err
		c.dropLocked(ch) // the next reader tries again
		c.mu.Unlock()
		return
	}
	c.fetched.Add(ch.size)
	ch.elem = c.memLRU.PushFront(ch)
	spills := c.evictLocked()
	c.mu.Unlock()
	c.spill(spills)
}

// download fills ch.mem from the store, telling waiting readers as the
// bytes arrive.
func (c *chunkCache) download(ctx context.Context, ch *chunk) error {
	rc, err := c.store.Get(ctx, ch.id.key, ch.id.index*c.chunkBytes, ch.size)
	if err != nil {
		return err
	}
	defer rc.Close()
	for got := int64(0); got < ch.size; {
		n, err := rc.Read(ch.mem[got:min(ch.size, got+readStep)])
		if n > 0 {
			got += int64(n)
			c.mu.Lock()
			ch.avail = got
			close(ch.wake)
			ch.wake = make(chan struct{})
			c.mu.Unlock()
		}
		if errors.Is(err, io.EOF) && got < ch.size {
			return fmt.Errorf("tier: %s: got %d bytes of chunk %d, want %d", ch.id.key, got, ch.id.index, ch.size)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
	}
	return nil
}

// dropLocked takes ch out of the cache. Its memory goes back to the pool
// and its file is closed only if no reader holds it; a pinned chunk's
// are left to the garbage collector.
func (c *chunkCache) dropLocked(ch *chunk) {
	if c.chunks[ch.id] == ch {
		delete(c.chunks, ch.id)
	}
	if ch.elem != nil {
		if ch.file != nil {
			c.diskLRU.Remove(ch.elem)
		} else {
			c.memLRU.Remove(ch.elem)
		}
		ch.elem = nil
	}
	if ch.mem != nil {
		c.memUsed -= ch.size
		if ch.pins == 0 {
			bufpool.Put(ch.mem)
		}
		ch.mem = nil
	}
	if ch.file != nil {
		c.diskUsed -= ch.size
		if ch.pins == 0 {
			ch.file.Close()
		}
	}
	if ch.err == nil {
		ch.err = errStopped // a reader still holding it retries
	}
}

// remember notes that id was fetched and is no longer held.
func (c *chunkCache) remember(id chunkID) {
	if e := c.ghosts[id]; e != nil {
		c.ghostList.MoveToFront(e)
		return
	}
	c.ghosts[id] = c.ghostList.PushFront(id)
	for c.ghostList.Len() > c.maxGhosts {
		e := c.ghostList.Back()
		delete(c.ghosts, e.Value.(chunkID))
		c.ghostList.Remove(e)
	}
}

// evictLocked brings the cache within its bounds, least recently used
// first, leaving pinned chunks be. In memory, chunks read ahead that no
// reader has asked for yet go last: a replay reads them next, and an LRU
// alone would take them first (they were fetched before the chunks now
// being read were last touched). A chunk leaving memory that was fetched
// before is returned, to be spilled to disk; any other is dropped and
// remembered.
func (c *chunkCache) evictLocked() []*chunk {
	var spills []*chunk
	for _, ahead := range []bool{false, true} {
		spills = c.evictMemLocked(ahead, spills)
	}
	for e := c.diskLRU.Back(); e != nil && c.diskUsed > c.diskBytes; {
		ch := e.Value.(*chunk)
		prev := e.Prev()
		if ch.pins == 0 {
			c.dropLocked(ch)
			c.remember(ch.id)
		}
		e = prev
	}
	return spills
}

// evictMemLocked is evictLocked's pass over memory: over chunks read, or
// with ahead over those read ahead too.
func (c *chunkCache) evictMemLocked(ahead bool, spills []*chunk) []*chunk {
	for e := c.memLRU.Back(); e != nil && c.memUsed > c.memBytes; {
		ch := e.Value.(*chunk)
		prev := e.Prev()
		if ch.pins == 0 && (ch.read || ahead) {
			g := c.ghosts[ch.id]
			room := c.diskUsed+c.spilling+ch.size <= c.diskBytes
			if (g != nil || room) && c.diskBytes >= ch.size && !c.closed {
				if g != nil {
					c.ghostList.Remove(g)
					delete(c.ghosts, ch.id)
				}
				c.memLRU.Remove(e)
				ch.elem = nil
				c.memUsed -= ch.size // its buffer is the spill's until written
				c.spilling += ch.size
				c.spills++
				c.wg.Add(1)
				spills = append(spills, ch)
			} else {
				c.dropLocked(ch)
				c.remember(ch.id)
			}
		}
		e = prev
	}
	return spills
}

// spill writes chunks leaving memory to disk, in the background (each
// was counted in c.wg by evictLocked).
func (c *chunkCache) spill(spills []*chunk) {
	for _, ch := range spills {
		go func() {
			defer c.wg.Done()
			c.mu.Lock()
			c.seq++
			path := filepath.Join(c.dir, strconv.FormatInt(c.seq, 10)+".chunk")
			mem := ch.mem // whole, and written by no one now
			c.mu.Unlock()
			f, err := writeChunk(path, mem)
			c.mu.Lock()
			defer c.mu.Unlock()
			c.spilling -= ch.size
			c.spills--
			if c.chunks[ch.id] != ch || c.closed || err != nil {
				// Forgotten, closing or failed: it leaves the cache.
				if f != nil {
					f.Close()
				}
				c.memUsed += ch.size // dropLocked takes it off again
				c.dropLocked(ch)
				return
			}
			c.spilled.Add(ch.size)
			ch.file = f
			if ch.pins == 0 {
				bufpool.Put(ch.mem)
			}
			ch.mem = nil
			ch.elem = c.diskLRU.PushFront(ch)
			c.diskUsed += ch.size
			c.spill(c.evictLocked()) // starts goroutines only
		}()
	}
}

// writeChunk writes b to a new file at path and unlinks the name: the
// open file lives until the chunk is evicted.
func writeChunk(path string, b []byte) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("tier: read cache: %w", err)
	}
	_, err = f.Write(b)
	if rerr := os.Remove(path); err == nil {
		err = rerr
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("tier: read cache: %w", err)
	}
	return f, nil
}

// forget drops an object's chunks (it was deleted from the store).
func (c *chunkCache) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, ch := range c.chunks {
		if id.key == key && ch.elem != nil && ch.pins == 0 {
			c.dropLocked(ch)
		}
	}
}

// close stops fetches and spills and drops every cached chunk.
func (c *chunkCache) close() {
	c.mu.Lock()
	c.closed = true // no fetch starts from here on: wg.Wait below is final
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range c.chunks {
		c.dropLocked(ch)
	}
}
