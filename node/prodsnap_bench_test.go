package node

import (
	"os"
	"strconv"
	"testing"

	plog "github.com/strata-io/strata/node/log"
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
	dir := b.TempDir()
	cfg := plog.DefaultConfig()
	cfg.SegmentBytes = 128 << 20
	l, err := plog.Open(dir, cfg, plog.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ol := &openLog{Log: l, producers: producerStates{}, snapshotAt: -1}
	seqs := map[int64]int32{}
	for i := 0; l.Size() < size; i++ {
		pid := int64(1000 + i%100)
		if _, _, err := appendIdempotent(ol, idemBatch(pid, 0, seqs[pid], 16<<10), 0); err != nil {
			b.Fatal(err)
		}
		seqs[pid]++
		if i%1000 == 0 {
			if err := ol.snapshotProducers(); err != nil { // as the maintenance loop does after rolls
				b.Fatal(err)
			}
		}
	}
	if err := ol.snapshotProducers(); err != nil {
		b.Fatal(err)
	}
	l.Close()
	if l, err = plog.Open(dir, cfg, plog.Options{}); err != nil {
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
