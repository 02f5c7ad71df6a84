package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// crash abandons a log as a killed process would: no flush, no trim, no
// clean-shutdown marker.
func crash(l *Log) {
	l.fail(errors.New("simulated crash"))
	l.Close()
}

// appended is what a test appended: every batch as stored (offsets and
// epoch assigned), in order.
type appended struct{ batches [][]byte }

func (a *appended) bytesUpTo(n int) []byte { return bytes.Join(a.batches[:n], nil) }

// fill appends n batches of varying size and epoch, and returns them as
// stored.
func fill(t testing.TB, l *Log, rng *rand.Rand, n int) *appended {
	t.Helper()
	a := &appended{}
	epoch := int32(0)
	for i := range n {
		if rng.IntN(8) == 0 {
			epoch++
		}
		b := makeBatchN(1+rng.IntN(4), rng.IntN(700), int64(1000+i*10))
		mustAppend(t, l, b, epoch)
		a.batches = append(a.batches, b) // Append rewrote it in place
	}
	return a
}

// openFilled opens a log in dir and fills it with n batches.
func openFilled(t testing.TB, dir string, cfg Config, rng *rand.Rand, n int) (*Log, *appended) {
	t.Helper()
	l, err := Open(dir, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return l, fill(t, l, rng, n)
}

// checkPrefix checks the reopened log holds exactly a prefix of what was
// appended, batch for batch, and returns the prefix length.
func checkPrefix(t *testing.T, l *Log, a *appended) int {
	t.Helper()
	got := readAllBytes(t, l)
	n := 0
	for p := 0; p < len(got); n++ {
		if n == len(a.batches) || !bytes.HasPrefix(got[p:], a.batches[n]) {
			t.Fatalf("recovered log diverges at batch %d (byte %d)", n, p)
		}
		p += len(a.batches[n])
	}
	wantEnd := int64(0)
	if n > 0 {
		wantEnd = mustHeader(t, a.batches[n-1]).LastOffset() + 1
	}
	if l.EndOffset() != wantEnd {
		t.Fatalf("end offset %d, want %d after %d batches", l.EndOffset(), wantEnd, n)
	}
	checkIndexesAgainstScan(t, l)
	// The epoch history matches the surviving batches.
	var want epochCache
	for _, b := range a.batches[:n] {
		h := mustHeader(t, b)
		want.assign(h.LeaderEpoch, h.BaseOffset)
	}
	if !slices.Equal(l.Epochs(), want.entries) && !(len(want.entries) == 0 && len(l.Epochs()) == 0) {
		t.Fatalf("epochs %v, want %v", l.Epochs(), want.entries)
	}
	return n
}

func recoveryConfig() Config {
	cfg := testConfig()
	cfg.SegmentBytes = 4096
	cfg.IndexIntervalBytes = 512
	return cfg
}

func TestRecoveryAfterCrash(t *testing.T) {
	dir := t.TempDir()
	cfg := recoveryConfig()
	l, a := openFilled(t, dir, cfg, rand.New(rand.NewPCG(1, 2)), 60)
	crash(l)
	l = openTest(t, dir, cfg, Options{})
	if n := checkPrefix(t, l, a); n != 60 {
		t.Fatalf("recovered %d of 60 intact batches", n)
	}
	// Appends go on after recovery.
	mustAppend(t, l, makeBatchN(1, 1, 0), 100)
}

func TestRecoveryCutsBadTail(t *testing.T) {
	segs := func(dir string) []string {
		m, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		slices.Sort(m)
		return m
	}
	tests := []struct {
		name       string
		damage     func(t *testing.T, dir string)
		wantAtMost int // batches that may survive
	}{
		{"torn last batch", func(t *testing.T, dir string) {
			s := segs(dir)
			fi, _ := os.Stat(s[len(s)-1])
			os.Truncate(s[len(s)-1], fi.Size()-3)
		}, 59},
		{"garbage after the last batch", func(t *testing.T, dir string) {
			s := segs(dir)
			f, _ := os.OpenFile(s[len(s)-1], os.O_WRONLY|os.O_APPEND, 0)
			f.Write(bytes.Repeat([]byte{0xab}, 100))
			f.Close()
		}, 60},
		{"zeroed tail (preallocated, never written)", func(t *testing.T, dir string) {
			s := segs(dir)
			f, _ := os.OpenFile(s[len(s)-1], os.O_WRONLY|os.O_APPEND, 0)
			f.Write(make([]byte, 4096))
			f.Close()
		}, 60},
		{"flipped byte in a middle segment drops later segments", func(t *testing.T, dir string) {
			s := segs(dir)
			flipByte(t, s[2], 200)
		}, 30},
		{"base offset rewritten (outside the CRC)", func(t *testing.T, dir string) {
			s := segs(dir)
			b, _ := os.ReadFile(s[1])
			binary.BigEndian.PutUint64(b[0:], binary.BigEndian.Uint64(b[0:])+1)
			os.WriteFile(s[1], b, 0o644)
		}, 20},
		{"leader epoch rewritten (outside the CRC)", func(t *testing.T, dir string) {
			s := segs(dir)
			b, _ := os.ReadFile(s[1])
			binary.BigEndian.PutUint32(b[offLeaderEpoch:], 77)
			os.WriteFile(s[1], b, 0o644)
		}, 20},
		{"index files lost", func(t *testing.T, dir string) {
			m, _ := filepath.Glob(filepath.Join(dir, "*index"))
			for _, f := range m {
				os.Remove(f)
			}
		}, 60},
		{"index files garbage", func(t *testing.T, dir string) {
			m, _ := filepath.Glob(filepath.Join(dir, "*index"))
			for _, f := range m {
				os.WriteFile(f, bytes.Repeat([]byte{0xff}, 4000), 0o644)
			}
		}, 60},
		{"epoch checkpoint lost", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, leaderEpochFile))
		}, 60},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := recoveryConfig()
			l, a := openFilled(t, dir, cfg, rand.New(rand.NewPCG(3, 4)), 60)
			crash(l)
			if len(segs(dir)) < 4 {
				t.Fatalf("want several segments, have %d", len(segs(dir)))
			}
			tt.damage(t, dir)
			l = openTest(t, dir, cfg, Options{})
			if n := checkPrefix(t, l, a); n > tt.wantAtMost {
				t.Fatalf("%d batches survived, at most %d may", n, tt.wantAtMost)
			}
			mustAppend(t, l, makeBatchN(1, 1, 0), 100)
		})
	}
}

func flipByte(t *testing.T, path string, pos int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	f.ReadAt(b[:], pos)
	b[0] ^= 0x10
	f.WriteAt(b[:], pos)
}

// TestRecoveryPointSkipsSyncedSegments checks that segments below the
// recovery point are trusted (not rescanned) after a crash.
func TestRecoveryPointSkipsSyncedSegments(t *testing.T) {
	dir := t.TempDir()
	cfg := recoveryConfig()
	l, a := openFilled(t, dir, cfg, rand.New(rand.NewPCG(5, 6)), 40)
	if _, err := l.Maintain(); err != nil {
		t.Fatal(err)
	}
	segs := l.Segments()
	crash(l)
	// Damage a synced segment's body where only a rescan would notice; a
	// trusted segment is not rescanned, so the damage stays (as in Kafka,
	// the recovery point bounds the work).
	flipByte(t, segs[0].LogPath, 100)
	l = openTest(t, dir, cfg, Options{})
	if l.EndOffset() != mustHeader(t, a.batches[39]).LastOffset()+1 {
		t.Fatalf("end %d", l.EndOffset())
	}
}

// TestConcurrentReadersNeverSeePartialBatches runs readers against an
// appender that rolls and retains; every read must return whole, valid,
// contiguous batches. Run under -race.
func TestConcurrentReadersNeverSeePartialBatches(t *testing.T) {
	cfg := recoveryConfig()
	cfg.RetentionBytes = 64 << 10
	l := openTest(t, t.TempDir(), cfg, Options{})
	const appends = 3000
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 8)
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			var buf []byte
			for {
				select {
				case <-done:
					return
				default:
				}
				start, end := l.StartOffset(), l.EndOffset()
				if end == start {
					continue
				}
				off := start + rng.Int64N(end-start)
				var err error
				buf, err = l.Read(buf[:0], off, 1+rng.IntN(8192), -1)
				if errors.Is(err, ErrOffsetOutOfRange) {
					continue // retention moved the start under us
				}
				if err != nil {
					errs <- err
					return
				}
				next := int64(-1)
				for p := 0; p < len(buf); {
					h, err := checkStoredBatch(buf[p:min(len(buf), p+int(mustHeaderOrZero(buf[p:]).Size()))])
					if err != nil {
						errs <- err
						return
					}
					if (next < 0 && (h.BaseOffset > off || h.LastOffset() < off)) || (next >= 0 && h.BaseOffset != next) {
						errs <- errors.New("batches out of order")
						return
					}
					next = h.LastOffset() + 1
					p += int(h.Size())
				}
			}
		}()
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range appends {
		mustAppend(t, l, makeBatchN(1+rng.IntN(3), rng.IntN(400), int64(i)), 0)
		if i%200 == 0 {
			if _, err := l.Maintain(); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(done)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

func mustHeaderOrZero(b []byte) BatchHeader {
	h, _ := ParseBatchHeader(b)
	if h.Size() < BatchHeaderBytes {
		h.Length = minBatchLength
	}
	return h
}

// TestRecoveryLogsBytesDropped checks recovery says how much it cut.
func TestRecoveryLogsBytesDropped(t *testing.T) {
	dir := t.TempDir()
	cfg := recoveryConfig()
	l, _ := openFilled(t, dir, cfg, rand.New(rand.NewPCG(9, 9)), 5)
	crash(l)
	f, _ := os.OpenFile(filepath.Join(dir, segmentName(0)+logSuffix), os.O_WRONLY|os.O_APPEND, 0)
	f.Write(bytes.Repeat([]byte{1}, 77))
	f.Close()
	var out bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&out, nil))
	openTest(t, dir, cfg, Options{Logger: logger})
	if !strings.Contains(out.String(), `"bytes_dropped":77`) {
		t.Fatalf("recovery log lacks bytes_dropped 77:\n%s", out.String())
	}
}
