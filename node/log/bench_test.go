package log

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// benchBatch is a producer batch of records of recordBytes each, about
// batchBytes in all.
func benchBatch(recordBytes, batchBytes int) []byte {
	return makeBatchN(max(1, batchBytes/(recordBytes+10)), recordBytes, time.Now().UnixMilli())
}

// BenchmarkAppend measures Append of 1 KiB records in 16 KiB batches
// beside a plain sequential write of the same bytes to a file in the same
// directory, in the same run: the ratio of the two is the log's overhead
// (validation, CRC, indexing).
func BenchmarkAppend(b *testing.B) {
	batch := benchBatch(1024, 16<<10)
	b.Run("log", func(b *testing.B) {
		l, err := Open(b.TempDir(), DefaultConfig(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		b.SetBytes(int64(len(batch)))
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if _, err := l.Append(batch, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw-write", func(b *testing.B) {
		w := newRawWriter(b)
		b.SetBytes(int64(len(batch)))
		b.ReportAllocs()
		for b.Loop() {
			w.write(batch)
		}
	})
	b.Run("log-fsync-each", func(b *testing.B) {
		cfg := DefaultConfig()
		cfg.FlushMessages = 1
		l, err := Open(b.TempDir(), cfg, Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		b.SetBytes(int64(len(batch)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := l.Append(batch, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchLog builds a log of about totalBytes in batches of batchBytes.
func benchLog(b *testing.B, totalBytes int64, recordBytes, batchBytes int) *Log {
	b.Helper()
	l, err := Open(b.TempDir(), DefaultConfig(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	batch := benchBatch(recordBytes, batchBytes)
	for l.Size() < totalBytes {
		if _, err := l.Append(batch, 0); err != nil {
			b.Fatal(err)
		}
	}
	return l
}

// BenchmarkReadSequential reads a 256 MiB log from the start in 1 MiB
// fetches, as a consumer catching up does.
func BenchmarkReadSequential(b *testing.B) {
	l := benchLog(b, 256<<20, 1024, 16<<10)
	buf := make([]byte, 0, 2<<20)
	off := int64(0)
	b.ReportAllocs()
	b.ResetTimer()
	var bytes int64
	for b.Loop() {
		if off >= l.EndOffset() {
			off = 0
		}
		out, err := l.Read(buf[:0], off, 1<<20, -1)
		if err != nil {
			b.Fatal(err)
		}
		bytes += int64(len(out))
		off = lastOffsetIn(out) + 1
	}
	b.ReportMetric(float64(bytes)/b.Elapsed().Seconds()/1e6, "MB/s")
}

// BenchmarkReadRandom reads one batch at a random offset: an index lookup,
// a header scan and one pread.
func BenchmarkReadRandom(b *testing.B) {
	for _, sz := range []struct{ record, batch int }{{1024, 16 << 10}, {100, 1 << 10}} {
		b.Run(fmt.Sprintf("record=%d/batch=%d", sz.record, sz.batch), func(b *testing.B) {
			l := benchLog(b, 256<<20, sz.record, sz.batch)
			rng := rand.New(rand.NewPCG(1, 2))
			buf := make([]byte, 0, 64<<10)
			end := l.EndOffset()
			b.ReportAllocs()
			b.ResetTimer()
			var bytes int64
			for b.Loop() {
				out, err := l.Read(buf[:0], rng.Int64N(end), 1, -1)
				if err != nil {
					b.Fatal(err)
				}
				bytes += int64(len(out))
			}
			b.ReportMetric(float64(bytes)/b.Elapsed().Seconds()/1e6, "MB/s")
		})
	}
}

// BenchmarkLookup1GiB finds the file position of a random offset in one
// 1 GiB segment: binary search of the mmapped index, then a header scan of
// at most one index interval. It also reports index bytes per
// index.interval.bytes of log.
func BenchmarkLookup1GiB(b *testing.B) {
	for _, sz := range []struct{ record, batch int }{{1024, 16 << 10}, {100, 1 << 10}} {
		b.Run(fmt.Sprintf("record=%d/batch=%d", sz.record, sz.batch), func(b *testing.B) {
			l := benchLog(b, 1<<30-(64<<10), sz.record, sz.batch)
			segs := *l.segments.Load()
			if len(segs) != 1 {
				b.Fatalf("%d segments, want one 1 GiB segment", len(segs))
			}
			s := segs[0]
			size := s.size.Load()
			rng := rand.New(rand.NewPCG(3, 4))
			scratch := make([]byte, 0, 8<<10)
			end := s.nextOffset.Load()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				off := rng.Int64N(end)
				_, h, found, err := s.findBatch(off, size, scratch)
				if err != nil || !found || h.BaseOffset > off || h.LastOffset() < off {
					b.Fatalf("lookup %d: %v %v", off, found, err)
				}
			}
			// Reported after the loop: ResetTimer drops user metrics.
			intervals := float64(size) / float64(l.cfg.IndexIntervalBytes)
			b.ReportMetric(float64(s.index.entries.Load()*offsetIndexEntryBytes)/intervals, "index-B/interval")
			b.ReportMetric(float64(s.timeIndex.entries.Load()*timeIndexEntryBytes)/intervals, "timeindex-B/interval")
		})
	}
}

// BenchmarkRecovery1GiB opens 1 GiB of segments written without a clean
// shutdown: every batch is CRC-checked and both indexes are rebuilt.
// "warm" has the files in the page cache (the CPU cost of recovery);
// "cold" drops the page cache before each open (needs root; skipped
// otherwise), so it includes reading 1 GiB from disk.
func BenchmarkRecovery1GiB(b *testing.B) {
	dir := b.TempDir()
	cfg := DefaultConfig()
	cfg.SegmentBytes = 256 << 20
	l, err := Open(dir, cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	batch := benchBatch(1024, 16<<10)
	for l.Size() < 1<<30 {
		if _, err := l.Append(batch, 0); err != nil {
			b.Fatal(err)
		}
	}
	size := l.Size()
	crash(l)
	for _, cold := range []bool{false, true} {
		name := "warm"
		if cold {
			name = "cold"
		}
		b.Run(name, func(b *testing.B) {
			if cold && dropPageCache() != nil {
				b.Skip("cannot drop the page cache here (needs root): ", dropPageCache())
			}
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				if cold {
					b.StopTimer()
					if err := dropPageCache(); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				l, err := Open(dir, cfg, Options{})
				if err != nil {
					b.Fatal(err)
				}
				if l.Size() != size {
					b.Fatalf("recovered %d of %d bytes", l.Size(), size)
				}
				crash(l)
			}
		})
	}
}

// dropPageCache writes back dirty pages and drops clean ones.
func dropPageCache() error {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("1"), 0)
}

func lastOffsetIn(data []byte) int64 {
	last := int64(-1)
	for len(data) > 0 {
		h, _ := ParseBatchHeader(data)
		last = h.LastOffset()
		data = data[h.Size():]
	}
	return last
}

// BenchmarkAppendVsRawWrite interleaves, in every iteration, one Append
// and one plain write of the same bytes to a file in the same directory,
// and times each: on a shared, noisy machine with page-cache writeback
// coming and going, only a side-by-side ratio means anything. It reports
// both rates and log/raw.
func BenchmarkAppendVsRawWrite(b *testing.B) {
	batch := benchBatch(1024, 16<<10)
	raw := append([]byte(nil), batch...)
	l, err := Open(b.TempDir(), DefaultConfig(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	w := newRawWriter(b)
	var logTime, rawTime time.Duration
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		// Alternate which goes first so neither always follows the
		// other's writeback.
		for k := range 2 {
			if (i+k)%2 == 0 {
				t0 := time.Now()
				if _, err := l.Append(batch, 0); err != nil {
					b.Fatal(err)
				}
				logTime += time.Since(t0)
			} else {
				t0 := time.Now()
				w.write(raw)
				rawTime += time.Since(t0)
			}
		}
	}
	total := float64(b.N) * float64(len(batch))
	b.ReportMetric(total/logTime.Seconds()/1e6, "log-MB/s")
	b.ReportMetric(total/rawTime.Seconds()/1e6, "raw-MB/s")
	b.ReportMetric(rawTime.Seconds()/logTime.Seconds(), "log/raw")
}

// rawWriter writes bytes sequentially with plain pwrite, starting a new
// file every 1 GiB as the log starts a new segment, so both pay for the
// same page-cache growth and writeback.
type rawWriter struct {
	b       *testing.B
	dir     string
	f       *os.File
	written int64
	files   int
}

func newRawWriter(b *testing.B) *rawWriter {
	w := &rawWriter{b: b, dir: b.TempDir()}
	w.roll()
	b.Cleanup(func() { w.f.Close() })
	return w
}

func (w *rawWriter) roll() {
	if w.f != nil {
		w.f.Close()
	}
	f, err := os.Create(filepath.Join(w.dir, fmt.Sprintf("raw-%d", w.files)))
	if err != nil {
		w.b.Fatal(err)
	}
	w.f, w.written = f, 0
	w.files++
}

func (w *rawWriter) write(p []byte) {
	if w.written >= 1<<30 {
		w.roll()
	}
	n, err := w.f.WriteAt(p, w.written)
	if err != nil {
		w.b.Fatal(err)
	}
	w.written += int64(n)
}
