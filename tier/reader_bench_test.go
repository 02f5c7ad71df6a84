package tier_test

import (
	"context"
	"testing"
	"time"

	"github.com/strata-io/strata/meta"
	"github.com/strata-io/strata/tier"
)

// BenchmarkReaderReplay: the chunk cache's own cost on a sequential
// replay of uploaded segments from a store on the local disk (no network:
// what is left is the cache), cold and then warm, with 1 MiB reads.
//
//	go test -run '^$' -bench ReaderReplay -benchtime 3x ./tier
func BenchmarkReaderReplay(b *testing.B) {
	dir, _ := tier.OpenDir(b.TempDir())
	_, segs := uploadedLogOf(b, dir, 80000, 8000, 0, 64<<20)
	var size int64
	for _, s := range segs {
		size += s.SizeBytes
	}
	replay := func(r *tier.Reader) time.Duration {
		start := time.Now()
		for i, s := range segs {
			next := func() (meta.TierSegment, bool) {
				if i+1 < len(segs) {
					return segs[i+1], true
				}
				return meta.TierSegment{}, false
			}
			for off := s.BaseOffset; off <= s.LastOffset; {
				got, err := r.Read(context.Background(), s, off, 1<<20, next)
				if err != nil {
					b.Fatal(err)
				}
				off = lastOffset(got) + 1
			}
		}
		return time.Since(start)
	}
	var cold, warm time.Duration
	for range b.N {
		r, err := tier.NewReader(tier.ReaderConfig{Store: dir, CacheDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		cold += replay(r)
		warm += replay(r)
		r.Close()
	}
	b.ReportMetric(float64(size)*float64(b.N)/cold.Seconds()/1e6, "cold-MB/s")
	b.ReportMetric(float64(size)*float64(b.N)/warm.Seconds()/1e6, "warm-MB/s")
}
