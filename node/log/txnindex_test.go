package log

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestAbortedTxnIndexRandom drives a log with a seeded random mix of
// appends, transactions that begin and abort or commit (an entry per
// abort, with the last stable offset a partition would compute),
// truncations, DeleteRecordsBefore, clean and unclean reopens, and entries
// added again as a rebuild would. After every step AbortedTxns of random
// ranges must equal the model's filter of the surviving entries.
func TestAbortedTxnIndexRandom(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("STRATA_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (STRATA_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 34))
	dir := t.TempDir()
	cfg := testConfig()
	cfg.SegmentBytes = 8 << 10
	l := openTest(t, dir, cfg, Options{})
	var entries []AbortedTxn
	ongoing := map[int64]int64{} // producer → first offset
	lso := func(except int64, end int64) int64 {
		s := end
		for p, first := range ongoing {
			if p != except {
				s = min(s, first)
			}
		}
		return s
	}
	var trail []string
	for step := range 1500 {
		switch r := rng.IntN(100); {
		case r < 50: // a batch, perhaps beginning a transaction
			res := mustAppend(t, l, makeBatchN(1+rng.IntN(4), 200, 1), 0)
			if p := rng.Int64N(6); rng.IntN(3) == 0 {
				if _, ok := ongoing[p]; !ok {
					ongoing[p] = res.FirstOffset
				}
			}
		case r < 75: // a marker ends one transaction
			for p, first := range ongoing {
				res := mustAppend(t, l, makeBatchN(1, 8, 1), 0)
				delete(ongoing, p)
				if rng.IntN(2) == 0 {
					e := AbortedTxn{ProducerID: p, FirstOffset: first, LastOffset: res.FirstOffset, LastStableOffset: lso(p, res.FirstOffset+1)}
					if err := l.AppendAbortedTxn(e); err != nil {
						t.Fatalf("seed %d step %d: %v", seed, step, err)
					}
					entries = append(entries, e)
					trail = append(trail, "abort")
				}
				break
			}
		case r < 80 && len(entries) > 0: // a rebuild adds an entry again
			if err := l.AppendAbortedTxn(entries[len(entries)-1]); err != nil {
				t.Fatalf("seed %d step %d: %v", seed, step, err)
			}
		case r < 85: // a follower's truncation
			to := l.StartOffset() + rng.Int64N(l.EndOffset()-l.StartOffset()+1)
			if err := l.TruncateTo(to); err != nil {
				t.Fatal(err)
			}
			end := l.EndOffset()
			entries = slices.DeleteFunc(entries, func(e AbortedTxn) bool { return e.LastOffset >= end })
			for p, first := range ongoing {
				if first >= end {
					delete(ongoing, p)
				}
			}
			trail = append(trail, "truncate "+strconv.FormatInt(end, 10))
		case r < 88:
			to := l.StartOffset() + rng.Int64N(l.EndOffset()-l.StartOffset()+1)
			if _, err := l.DeleteRecordsBefore(to); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Maintain(); err != nil {
				t.Fatal(err)
			}
			trail = append(trail, "delete before "+strconv.FormatInt(to, 10))
		case r < 94: // a clean restart
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openTest(t, dir, cfg, Options{})
			trail = append(trail, "reopen")
		default: // an unclean one: every segment is recovered
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(dir, cleanShutdownFile)); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(dir, recoveryPointFile)); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			l = openTest(t, dir, cfg, Options{})
			trail = append(trail, "recover")
		}
		start, end := l.StartOffset(), l.EndOffset()
		if start > end {
			t.Fatalf("seed %d step %d: log [%d, %d)\nlast: %v", seed, step, start, end, trail[max(len(trail)-8, 0):])
		}
		for range 3 {
			from := start + rng.Int64N(end-start+1)
			upTo := from + rng.Int64N(end-from+1)
			got := l.AbortedTxns(from, upTo)
			var want []AbortedTxn
			for _, e := range entries {
				if e.LastOffset >= from && e.FirstOffset < upTo {
					want = append(want, e)
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("seed %d step %d: AbortedTxns(%d, %d) = %+v, want %+v\nlast: %v", seed, step, from, upTo, got, want, trail[max(len(trail)-8, 0):])
			}
		}
	}
}

// TestAbortedTxnIndexTorn: a torn last entry and an entry past the
// segment's end (its marker lost in a crash) are dropped on open.
func TestAbortedTxnIndexTorn(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, testConfig(), Options{})
	for range 10 {
		mustAppend(t, l, makeBatchN(1, 100, 1), 0)
	}
	keep := AbortedTxn{ProducerID: 1, FirstOffset: 2, LastOffset: 5, LastStableOffset: 6}
	if err := l.AppendAbortedTxn(keep); err != nil {
		t.Fatal(err)
	}
	if err := l.AppendAbortedTxn(AbortedTxn{ProducerID: 1, FirstOffset: 2, LastOffset: 10}); err == nil {
		t.Fatal("an entry past the log end was taken")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	path := txnIndexPath(dir, 0)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	past := AbortedTxn{ProducerID: 2, FirstOffset: 7, LastOffset: 12, LastStableOffset: 13}.append(nil)
	if err := os.WriteFile(path, append(append(b, past...), past[:20]...), 0o644); err != nil {
		t.Fatal(err)
	}
	l = openTest(t, dir, testConfig(), Options{})
	if got := l.AbortedTxns(0, 10); !slices.Equal(got, []AbortedTxn{keep}) {
		t.Fatalf("after reopening: %+v, want only %+v", got, keep)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != abortedTxnBytes {
		t.Fatalf("index file not cut back to one entry: %v %v", fi, err)
	}
	if err := l.TruncateTo(5); err != nil {
		t.Fatal(err)
	}
	if got := l.AbortedTxns(0, 10); len(got) != 0 {
		t.Fatalf("after truncating the marker away: %+v", got)
	}
}
