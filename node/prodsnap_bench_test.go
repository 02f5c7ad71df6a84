package node

import (
	"context"
	"os"
	"strconv"
	"testing"

	plog "github.com/strata-io/strata/node/log"
	"github.com/strata-io/strata/tier"
)

// BenchmarkProducerState compares, on one log of STRATA_TAKEOVER_BYTES
// (default 1 GiB) in 16 KiB batches from 100 idempotent producers, the
// two ways a partition gets its producer state when it opens or takes
// over: a scan of every batch header (what it always did before
// snapshots; still the fallback), and the newest snapshot plus the
// batches after it. "x-full" is a snapshot open's time over a full
// scan's, measured in the same run.
//
//	go test -run '^$' -bench ProducerState -benchtime 5x ./node
func BenchmarkProducerState(b *testing.B) {
	size := int64(1 << 30)
	if s := os.Getenv("STRATA_TAKEOVER_BYTES"); s != "" {
		size, _ = strconv.ParseInt(s, 10, 64)
	}
	dir, cfg := b.TempDir(), benchProducerLogConfig()
	ol := idempotentLog(b, dir, cfg, func(l *plog.Log) bool { return l.Size() >= size }, true)
	if err := ol.snapshotProducers(); err != nil {
		b.Fatal(err)
	}
	ol.Close()
	l, err := plog.Open(dir, cfg, plog.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.Logf("%d MiB, log end %d, snapshots at %v", l.Size()>>20, l.EndOffset(), producerSnapshots(dir))
	var full float64 // a full scan's ns/op
	for _, c := range []struct {
		name string
		load func() (producerStates, error)
	}{
		{"full-scan", func() (producerStates, error) { return rebuildProducers(l) }},
		{"snapshot", func() (producerStates, error) { ps, _, err := loadProducers(l); return ps, err }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				ps, err := c.load()
				if err != nil || len(ps) != 100 {
					b.Fatalf("%d producers, %v", len(ps), err)
				}
			}
			ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			if c.name == "full-scan" {
				full = ns
			} else if full > 0 {
				b.ReportMetric(ns/full, "x-full")
			}
		})
	}
}

// BenchmarkUploadProducerState is what the producer state uploaded with
// each segment costs: the state as of a 128 MiB segment's end, chained
// from the state at its base (the previous upload's) with a scan of its
// batch headers, against the segment's own upload to a store in a local
// directory (no network: the cheapest an upload gets). "x-upload" is the
// first over the second, in the same run.
//
//	go test -run '^$' -bench UploadProducerState -benchtime 5x ./node
func BenchmarkUploadProducerState(b *testing.B) {
	ol := idempotentLog(b, b.TempDir(), benchProducerLogConfig(), func(l *plog.Log) bool { return len(l.Segments()) >= 3 }, false)
	defer ol.Close()
	l := ol.Log
	segs := l.Segments()
	seg := segs[1] // closed, with a closed one before it
	n := &Node{}
	base, err := n.producerStateAt(ol, "t", 0, segs[0].BaseOffset, seg.BaseOffset)
	if err != nil || base == nil {
		b.Fatal(err)
	}
	store, err := tier.OpenDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	var upload float64
	b.Run("upload-segment", func(b *testing.B) {
		for range b.N {
			f, err := os.Open(seg.LogPath)
			if err != nil {
				b.Fatal(err)
			}
			err = store.Put(context.Background(), "t/0/seg.log", f, seg.Size)
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
		}
		upload = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("state-at-end", func(b *testing.B) {
		_, start, _ := decodeProducerSnapshot(base)
		for range b.N {
			ol.tier.producers.at, ol.tier.producers.ps = seg.BaseOffset, start
			if _, err := n.producerStateAt(ol, "t", 0, seg.BaseOffset, seg.NextOffset); err != nil {
				b.Fatal(err)
			}
		}
		if upload > 0 {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/upload, "x-upload")
		}
	})
}

// benchProducerLogConfig is the producer state benchmarks' log: 128 MiB
// segments.
func benchProducerLogConfig() plog.Config {
	cfg := plog.DefaultConfig()
	cfg.SegmentBytes = 128 << 20
	return cfg
}

// idempotentLog fills a log in dir with 16 KiB batches from 100
// idempotent producers until done, writing a producer snapshot every
// 1,000 batches when snapshots is set, as the maintenance loop does
// after rolls.
func idempotentLog(b *testing.B, dir string, cfg plog.Config, done func(*plog.Log) bool, snapshots bool) *openLog {
	l, err := plog.Open(dir, cfg, plog.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ol := &openLog{Log: l, producers: producerStates{}, snapshotAt: -1}
	seqs := map[int64]int32{}
	for i := 0; !done(l); i++ {
		pid := int64(1000 + i%100)
		if _, _, err := appendIdempotent(ol, idemBatch(pid, 0, seqs[pid], 16<<10), 0, nil); err != nil {
			b.Fatal(err)
		}
		seqs[pid]++
		if snapshots && i%1000 == 0 {
			if err := ol.snapshotProducers(); err != nil {
				b.Fatal(err)
			}
		}
	}
	return ol
}
