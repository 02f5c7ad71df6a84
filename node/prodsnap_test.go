package node

import (
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"testing"
	"time"

	plog "github.com/strata-io/strata/node/log"
)

// TestProducerSnapshotsMatchFullScan drives a partition log with a seeded
// random mix of idempotent appends from several producers, snapshots,
// truncations, corrupted snapshot files and restarts. The checker: the
// producer state a partition opens with (newest usable snapshot plus the
// batches after it) is always the state a scan of every batch gives.
// STRATA_SEED replays a seed.
func TestProducerSnapshotsMatchFullScan(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("STRATA_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 5))
	dir := t.TempDir()
	cfg := plog.DefaultConfig()
	cfg.SegmentBytes = 600 // a few batches a segment
	open := func() *openLog {
		t.Helper()
		l, err := plog.Open(dir, cfg, plog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ps, at, err := loadProducers(l)
		if err != nil {
			t.Fatal(err)
		}
		return &openLog{Log: l, producers: ps, snapshotAt: at}
	}
	check := func(ol *openLog, what string, step int) {
		t.Helper()
		full, err := rebuildProducers(ol.Log)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ol.producers, full) {
			t.Fatalf("seed %d step %d, %s: producer state %v, a full scan gives %v", seed, step, what, ol.producers, full)
		}
	}
	ol := open()
	next := map[int64]int32{} // producer -> next sequence
	epoch := int16(0)         // every producer's; a truncation moves it, so a history written again differs
	for step := range 600 {
		switch k := rng.IntN(100); {
		case k < 60:
			pid := int64(1000 + rng.IntN(6))
			if _, _, err := appendIdempotent(ol, idemTestBatch(pid, epoch, next[pid]), 0, nil); err != nil {
				t.Fatalf("step %d: append: %v", step, err)
			}
			next[pid]++
		case k < 70:
			if err := ol.snapshotProducers(); err != nil {
				t.Fatal(err)
			}
		case k < 77:
			to := ol.StartOffset() + rng.Int64N(ol.EndOffset()-ol.StartOffset()+1)
			if err := ol.truncate(func() error { return ol.Log.TruncateTo(to) }, to); err != nil {
				t.Fatal(err)
			}
			check(ol, "after a truncation", step)
			epoch++ // producers start a new epoch at sequence 0
			for pid := range next {
				next[pid] = 0
			}
		case k < 80:
			// A new leadership builds a stale state again.
			if ol.producersStale {
				ps, at, err := loadProducers(ol.Log)
				if err != nil {
					t.Fatal(err)
				}
				ol.producers, ol.snapshotAt, ol.producersStale = ps, at, false
				check(ol, "after taking over", step)
			}
		case k < 85:
			if offs := producerSnapshots(dir); len(offs) > 0 {
				path := producerSnapshotPath(dir, offs[rng.IntN(len(offs))])
				b, _ := os.ReadFile(path)
				if len(b) > 0 {
					b[rng.IntN(len(b))] ^= 0x40
					os.WriteFile(path, b, 0o644)
				}
			}
		default:
			ol.Close()
			ol = open()
			check(ol, "after a restart", step)
		}
	}
	ol.Close()
}

func TestProducerSnapshotCodec(t *testing.T) {
	ps := producerStates{7: {epoch: 2, lastSeq: 9, recent: []seqBatch{{0, 4, 100}, {5, 9, 105}}}, -3: {epoch: 0, lastSeq: 0}}
	b := encodeProducerSnapshot(110, ps)
	off, got, err := decodeProducerSnapshot(b)
	if err != nil || off != 110 || !reflect.DeepEqual(got[7], ps[7]) || len(got) != 2 {
		t.Fatalf("round trip: %d %v %v", off, got, err)
	}
	for i := range b {
		bad := append([]byte(nil), b...)
		bad[i] ^= 1
		if _, _, err := decodeProducerSnapshot(bad); err == nil {
			t.Fatalf("byte %d flipped: decoded", i)
		}
	}
	for n := range len(b) {
		if _, _, err := decodeProducerSnapshot(b[:n]); err == nil {
			t.Fatalf("cut to %d bytes: decoded", n)
		}
	}
}

// rebuildProducers reads the producer state from every batch of a log:
// what the snapshots and the uploaded states must agree with.
func rebuildProducers(l *plog.Log) (producerStates, error) {
	ps := producerStates{}
	err := l.ScanBatches(l.StartOffset(), func(h plog.BatchHeader) bool {
		ps.record(h, h.BaseOffset, nil)
		return true
	})
	return ps, err
}
