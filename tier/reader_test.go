package tier_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-io/strata/meta"
	plog "github.com/strata-io/strata/node/log"
	"github.com/strata-io/strata/testenv"
	"github.com/strata-io/strata/tier"
)

// uploadedLog writes n records of random sizes (up to maxSize) with
// increasing timestamps from ts0, uploads every sealed segment to store
// and returns the log (for reference reads) and the manifest entries.
func uploadedLog(t *testing.T, store tier.Store, n, maxSize int, ts0 int64) (*plog.Log, []meta.TierSegment) {
	t.Helper()
	return uploadedLogOf(t, store, n, maxSize, ts0, 64<<10)
}

// uploadedLogOf is uploadedLog with segments of segmentBytes.
func uploadedLogOf(t testing.TB, store tier.Store, n, maxSize int, ts0 int64, segmentBytes int64) (*plog.Log, []meta.TierSegment) {
	t.Helper()
	cfg := plog.DefaultConfig()
	cfg.SegmentBytes = segmentBytes
	cfg.IndexIntervalBytes = 2048
	l, err := plog.Open(t.TempDir(), cfg, plog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		v := make([]byte, 1+rng.IntN(maxSize))
		for j := range v {
			v[j] = byte(i + j)
		}
		if _, err := l.Append(testBatchAt(v, ts0+int64(i)*10), 0); err != nil {
			t.Fatal(err)
		}
	}
	m := &fakeManifest{entries: map[int64]meta.TierSegment{}}
	u := tier.NewUploader(tier.UploaderConfig{Store: store, Recorder: m})
	defer u.Close()
	done := make(chan error, n)
	var sealed int
	for _, s := range l.Segments() {
		if s.Sealed {
			u.Enqueue(newJob(s, func() (int32, bool) { return 0, true }, done))
			sealed++
		}
	}
	for range sealed {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	var segs []meta.TierSegment
	for _, s := range l.Segments() {
		if e, ok := m.entries[s.BaseOffset]; ok {
			segs = append(segs, e)
		}
	}
	if len(segs) < 3 {
		t.Fatalf("only %d segments uploaded", len(segs))
	}
	return l, segs
}

func segmentFor(segs []meta.TierSegment, offset int64) meta.TierSegment {
	for _, s := range segs {
		if s.BaseOffset <= offset && offset <= s.LastOffset {
			return s
		}
	}
	panic(fmt.Sprintf("no segment holds %d", offset))
}

// TestReaderMatchesLocalReads: every offset of every uploaded segment,
// read remotely through small chunks and a cache smaller than the data,
// gives exactly the bytes the local log gives.
func TestReaderMatchesLocalReads(t *testing.T) {
	dir, _ := tier.OpenDir(t.TempDir())
	l, segs := uploadedLog(t, dir, 400, 12000, 1_000_000)
	r, err := tier.NewReader(tier.ReaderConfig{Store: dir, CacheDir: t.TempDir(), ChunkBytes: 4096, CacheBytes: 5 * 4096,
		MemoryBytes: 3 * 4096, ReadAhead: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	last := segs[len(segs)-1].LastOffset
	for off := int64(0); off <= last; off++ {
		for _, maxBytes := range []int{1, 30000} {
			want, err := l.Read(nil, off, maxBytes, -1)
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Read(ctx, segmentFor(segs, off), off, maxBytes, nil)
			if err != nil {
				t.Fatalf("offset %d: %v", off, err)
			}
			if !remotePrefix(got, want) {
				t.Fatalf("offset %d max %d: remote %d bytes, local %d", off, maxBytes, len(got), len(want))
			}
		}
	}
	if st := r.Stats(); st.CachedBytes > 5*4096 || st.ChunkMisses == 0 {
		t.Fatalf("cache stats %+v", st)
	}
}

// TestReaderOffsetForTimestamp agrees with the local log.
func TestReaderOffsetForTimestamp(t *testing.T) {
	dir, _ := tier.OpenDir(t.TempDir())
	l, segs := uploadedLog(t, dir, 300, 3000, 1_000_000)
	r, err := tier.NewReader(tier.ReaderConfig{Store: dir, CacheDir: t.TempDir(), ChunkBytes: 8192})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	last := segs[len(segs)-1]
	for ts := int64(999_990); ts <= last.MaxTimestamp+5; ts += 7 {
		wantOff, wantTs, wantFound, err := l.OffsetForTimestamp(ts, last.LastOffset+1)
		if err != nil {
			t.Fatal(err)
		}
		var got [3]int64
		for _, s := range segs {
			off, rts, found, err := r.OffsetForTimestamp(context.Background(), s, ts, 0)
			if err != nil {
				t.Fatal(err)
			}
			if found {
				got = [3]int64{off, rts, 1}
				break
			}
		}
		want := [3]int64{wantOff, wantTs, 0}
		if wantFound {
			want[2] = 1
		} else {
			want = [3]int64{}
		}
		if got != want {
			t.Fatalf("timestamp %d: remote %v, local %v", ts, got, want)
		}
	}
}

// TestReaderOutage: with the store down a read fails with ErrUnavailable,
// never with partial data, and succeeds once the store is back; a second
// sequential pass is served from the cache.
func TestReaderOutage(t *testing.T) {
	dir, _ := tier.OpenDir(t.TempDir())
	store := &flakyStore{Store: dir}
	l, segs := uploadedLog(t, store, 200, 5000, 0)
	r, err := tier.NewReader(tier.ReaderConfig{Store: store, CacheDir: t.TempDir(), ChunkBytes: 16 << 10, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	store.down.Store(true)
	if got, err := r.Read(ctx, segs[1], segs[1].BaseOffset, 1<<20, nil); !errors.Is(err, tier.ErrUnavailable) || got != nil {
		t.Fatalf("read during outage: %d bytes, %v", len(got), err)
	}
	store.down.Store(false)
	replay := func() {
		for _, s := range segs {
			for off := s.BaseOffset; off <= s.LastOffset; {
				got, err := r.Read(ctx, s, off, 20000, nil)
				if err != nil {
					t.Fatal(err)
				}
				want, _ := l.Read(nil, off, 20000, -1)
				if !remotePrefix(got, want) {
					t.Fatalf("offset %d differs", off)
				}
				var last int64
				for b := got; len(b) > 0; {
					h, _ := plog.ParseBatchHeader(b)
					last, b = h.LastOffset(), b[h.Size():]
				}
				off = last + 1
			}
		}
	}
	replay()
	first := r.Stats()
	replay()
	second := r.Stats()
	if second.FetchedBytes != first.FetchedBytes || second.ChunkHits <= first.ChunkHits {
		t.Fatalf("second replay fetched again: %+v then %+v", first, second)
	}
}

// gets counts a store's reads, per key and per (key, offset).
type gets struct {
	tier.Store
	mu     sync.Mutex
	counts map[string]int
}

func (g *gets) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	g.mu.Lock()
	g.counts[key]++
	g.counts[fmt.Sprint(key, "@", off)]++
	g.mu.Unlock()
	return g.Store.Get(ctx, key, off, n)
}

func (g *gets) count(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.counts[key]
}

// TestReaderReadsAheadIntoNextSegment: a read near a segment's end
// starts fetching the next segment's offset index and first chunks, so a
// replay does not wait on both at the boundary; a read whose window stays
// inside its segment does not even look the next one up.
func TestReaderReadsAheadIntoNextSegment(t *testing.T) {
	dir, _ := tier.OpenDir(t.TempDir())
	store := &gets{Store: dir, counts: map[string]int{}}
	_, segs := uploadedLog(t, store, 400, 1000, 0)
	const chunk = 4 << 10
	r, err := tier.NewReader(tier.ReaderConfig{Store: store, CacheDir: t.TempDir(), ChunkBytes: chunk, ReadAhead: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	cur, next := segs[0], segs[1]
	asked := 0
	nextOf := func() (meta.TierSegment, bool) { asked++; return next, true }
	if _, err := r.Read(ctx, cur, cur.BaseOffset, 100, nextOf); err != nil {
		t.Fatal(err)
	}
	if asked != 0 {
		t.Fatalf("a read at the start of a %d-byte segment asked for the next one", cur.SizeBytes)
	}
	if _, err := r.Read(ctx, cur, cur.LastOffset, 100, nextOf); err != nil {
		t.Fatal(err)
	}
	if asked != 1 {
		t.Fatalf("a read of the last batch asked for the next segment %d times", asked)
	}
	index := strings.TrimSuffix(next.ObjectKey, ".log") + ".index"
	deadline := time.Now().Add(5 * time.Second)
	for store.count(index) == 0 || store.count(next.ObjectKey) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("next segment not fetched ahead: index %d GETs, log %d", store.count(index), store.count(next.ObjectKey))
		}
		time.Sleep(time.Millisecond)
	}
	// Reading there uses what was fetched ahead: nothing is fetched twice.
	if _, err := r.Read(ctx, next, next.BaseOffset, 2*chunk, nil); err != nil {
		t.Fatal(err)
	}
	if n := store.count(index); n != 1 {
		t.Fatalf("the next segment's index was fetched %d times", n)
	}
	for off := int64(0); off < 4*chunk; off += chunk {
		if n := store.count(fmt.Sprint(next.ObjectKey, "@", off)); n > 1 {
			t.Fatalf("the next segment's chunk at %d was fetched %d times", off, n)
		}
	}
}

// TestReaderCloseWhileReading: closing the reader while reads and
// read-ahead are under way stops them cleanly, and a read after Close
// fails at once with ErrUnavailable.
func TestReaderCloseWhileReading(t *testing.T) {
	dir, _ := tier.OpenDir(t.TempDir())
	_, segs := uploadedLog(t, dir, 400, 1000, 0)
	for range 20 {
		r, err := tier.NewReader(tier.ReaderConfig{Store: dir, CacheDir: t.TempDir(), ChunkBytes: 1 << 10, ReadAhead: 4, Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k, s := range segs {
					next := func() (meta.TierSegment, bool) {
						if k+1 < len(segs) {
							return segs[k+1], true
						}
						return meta.TierSegment{}, false
					}
					for off := s.BaseOffset + int64(i); off <= s.LastOffset; off += 7 {
						if _, err := r.Read(context.Background(), s, off, 3000, next); err != nil {
							if !errors.Is(err, tier.ErrUnavailable) {
								t.Errorf("offset %d: %v", off, err)
							}
							return
						}
					}
				}
			}()
		}
		time.Sleep(time.Millisecond)
		r.Close()
		wg.Wait()
		start := time.Now()
		if _, err := r.Read(context.Background(), segs[0], segs[0].BaseOffset, 100, nil); !errors.Is(err, tier.ErrUnavailable) {
			t.Fatalf("read after close: %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("read after close took %v", d)
		}
	}
}

// TestReaderDiskAdmission: chunks leaving memory fill the disk cache
// while it has room, so history read again comes without a GET; once the
// disk is full, a chunk read once is not written there, and a chunk read
// again is.
func TestReaderDiskAdmission(t *testing.T) {
	const chunk = 2 << 10
	dir, _ := tier.OpenDir(t.TempDir())
	store := &gets{Store: dir, counts: map[string]int{}}
	l, segs := uploadedLog(t, store, 600, 1000, 0)
	seg := segs[0]
	if seg.SizeBytes < 16*chunk {
		t.Fatalf("segment of %d bytes: too small for the test", seg.SizeBytes)
	}
	reader := func(diskBytes int64) (*tier.Reader, func() tier.ReaderStats) {
		r, err := tier.NewReader(tier.ReaderConfig{Store: store, CacheDir: t.TempDir(), ChunkBytes: chunk,
			MemoryBytes: 4 * chunk, CacheBytes: diskBytes, ReadAhead: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		return r, func() tier.ReaderStats {
			for off := seg.BaseOffset; off <= seg.LastOffset; {
				got, err := r.Read(context.Background(), seg, off, 3000, nil)
				if err != nil {
					t.Fatal(err)
				}
				want, _ := l.Read(nil, off, 3000, -1)
				if !remotePrefix(got, want) {
					t.Fatalf("offset %d differs", off)
				}
				off = lastOffset(got) + 1
			}
			waitQuiet(t, r)
			return r.Stats()
		}
	}

	// Room for all of it: the second reading is served from memory and
	// disk.
	_, pass := reader(1 << 20)
	first := pass()
	if first.FetchedBytes != seg.SizeBytes || first.SpilledBytes == 0 {
		t.Fatalf("first reading: %+v of a %d-byte segment", first, seg.SizeBytes)
	}
	if second := pass(); second.FetchedBytes != first.FetchedBytes {
		t.Fatalf("second reading fetched %d bytes again", second.FetchedBytes-first.FetchedBytes)
	}

	// Room for four chunks: the first four to leave memory fill it, the
	// rest of a first reading is not written; read again, it is.
	_, pass = reader(4 * chunk)
	first = pass()
	if first.SpilledBytes != 4*chunk || first.CachedBytes != 4*chunk {
		t.Fatalf("first reading with a 4-chunk disk cache: %+v", first)
	}
	second := pass()
	if second.SpilledBytes <= first.SpilledBytes || second.CachedBytes > 4*chunk {
		t.Fatalf("second reading: %+v after %+v", second, first)
	}
	if second.MemoryBytes > 4*chunk {
		t.Fatalf("%d bytes in memory, bound %d", second.MemoryBytes, 4*chunk)
	}
}

// TestReaderRandomReads: readers at seeded random offsets and sizes, side
// by side, with memory and disk bounds of a few chunks and objects
// forgotten under them, always get the local log's bytes; the bounds
// hold once they stop.
func TestReaderRandomReads(t *testing.T) {
	dir, _ := tier.OpenDir(t.TempDir())
	l, segs := uploadedLog(t, dir, 400, 3000, 0)
	const chunk = 1 << 10
	r, err := tier.NewReader(tier.ReaderConfig{Store: dir, CacheDir: t.TempDir(), ChunkBytes: chunk,
		MemoryBytes: 3 * chunk, CacheBytes: 6 * chunk, ReadAhead: 2, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	seed := testenv.Seed(t)
	last := segs[len(segs)-1].LastOffset
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			for range 300 {
				off := rng.Int64N(last + 1)
				s := segmentFor(segs, off)
				if rng.IntN(20) == 0 {
					r.Forget(s)
				}
				max := 1 + rng.IntN(4*chunk)
				got, err := r.Read(context.Background(), s, off, max, nil)
				if err != nil {
					t.Errorf("offset %d: %v", off, err)
					return
				}
				want, _ := l.Read(nil, off, max, -1)
				if !remotePrefix(got, want) {
					t.Errorf("offset %d max %d: remote %d bytes, local %d", off, max, len(got), len(want))
					return
				}
			}
		}()
	}
	wg.Wait()
	waitQuiet(t, r)
	if st := r.Stats(); st.MemoryBytes > 3*chunk || st.CachedBytes > 6*chunk {
		t.Fatalf("bounds exceeded once reads stopped: %+v", st)
	}
}

// lastOffset is the last offset of the batches in b.
func lastOffset(b []byte) int64 {
	var last int64
	for len(b) > 0 {
		h, _ := plog.ParseBatchHeader(b)
		last, b = h.LastOffset(), b[h.Size():]
	}
	return last
}

// waitQuiet waits until the reader fetches and spills nothing.
func waitQuiet(t *testing.T, r *tier.Reader) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	testenv.WaitFor(ctx, t, 2*time.Millisecond, func() bool { return r.Stats().Working == 0 },
		func() string { return fmt.Sprintf("the reader's fetches never settled: %+v", r.Stats()) })
}

// remotePrefix reports whether a remote read's answer got agrees with
// the local log's want for the same offset and bound: whole batches, a
// prefix of want, at least its first batch. (A remote read waits for the
// first batch only, then gives what the cache already holds.)
func remotePrefix(got, want []byte) bool {
	if len(want) == 0 {
		return len(got) == 0
	}
	first, _ := plog.ParseBatchHeader(want)
	return int64(len(got)) >= first.Size() && bytes.HasPrefix(want, got)
}

// gatedStore serves the first open bytes of each GET at once and the
// rest once gate is closed.
type gatedStore struct {
	tier.Store
	open int
	gate chan struct{}
}

func (g *gatedStore) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	rc, err := g.Store.Get(ctx, key, off, n)
	if err != nil || !strings.HasSuffix(key, ".log") {
		return rc, err
	}
	return &gatedReader{rc: rc, left: g.open, gate: g.gate}, nil
}

type gatedReader struct {
	rc   io.ReadCloser
	left int
	gate chan struct{}
}

func (r *gatedReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		<-r.gate
		return r.rc.Read(p)
	}
	n, err := r.rc.Read(p[:min(len(p), r.left)])
	r.left -= n
	return n, err
}

func (r *gatedReader) Close() error { return r.rc.Close() }

// TestReaderAnswersWithWhatIsIn: a read waits for its first batch only;
// the bytes after it that are still on their way are left for the next
// read, which gets them all once they are in.
func TestReaderAnswersWithWhatIsIn(t *testing.T) {
	dir, _ := tier.OpenDir(t.TempDir())
	l, segs := uploadedLog(t, dir, 400, 1000, 0)
	seg := segs[0]
	gate := make(chan struct{})
	store := &gatedStore{Store: dir, open: 4 << 10, gate: gate}
	r, err := tier.NewReader(tier.ReaderConfig{Store: store, CacheDir: t.TempDir(), ChunkBytes: 32 << 10, ReadAhead: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want, _ := l.Read(nil, seg.BaseOffset, 32<<10, -1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := r.Read(ctx, seg, seg.BaseOffset, 32<<10, nil)
	if err != nil {
		t.Fatalf("a read that needs one batch, with 4 KiB in: %v", err)
	}
	if !remotePrefix(got, want) || len(got) > 4<<10 || len(got) == len(want) {
		t.Fatalf("with 4 KiB of the chunk in: %d bytes, local %d", len(got), len(want))
	}
	close(gate)
	waitQuiet(t, r) // the chunk is in
	if got, err = r.Read(ctx, seg, seg.BaseOffset, 32<<10, nil); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after the chunk came in: %d bytes, local %d: %v", len(got), len(want), err)
	}
}
