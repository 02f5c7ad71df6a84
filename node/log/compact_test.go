package log

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// testSeed is a randomized test's seed: STRATA_SEED when set, else the
// clock; logged either way.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("STRATA_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (STRATA_SEED=%d replays it)", seed, seed)
	return seed
}

// gzipCodec is Kafka's gzip codec (codec 1: a gzip stream of the
// records), for tests.
var gzipCodec = Codec{
	Decompress: func(codec int, body []byte) ([]byte, error) {
		if codec != CompressionGzip {
			return nil, fmt.Errorf("codec %d", codec)
		}
		r, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	},
	Compress: func(codec int, records []byte) ([]byte, error) {
		if codec != CompressionGzip {
			return nil, fmt.Errorf("codec %d", codec)
		}
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		w.Write(records)
		w.Close()
		return buf.Bytes(), nil
	},
}

// gzipBatch is batch b (uncompressed, from makeBatch) with its records
// gzipped.
func gzipBatch(t testing.TB, b []byte) []byte {
	t.Helper()
	h := mustHeader(t, b)
	body, err := gzipCodec.Compress(CompressionGzip, b[BatchHeaderBytes:])
	if err != nil {
		t.Fatal(err)
	}
	out := frameBatch(CompressionGzip, h.BaseTimestamp, h.MaxTimestamp, h.RecordCount, body)
	return out
}

// TestFilterBatchRandom: random batches (keys from a small space, null
// keys, tombstones, headers, gzip or not) filtered by random choices.
// The result must be a batch a follower accepts (ValidateCleanedBatch),
// with the same base offset, last offset delta and timestamps, holding
// exactly the records chosen, byte for byte, at their offsets; none
// kept drops the batch or, when asked, leaves it empty.
func TestFilterBatchRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 1))
	var scratch filterScratch
	for round := range 2000 {
		n := 1 + rng.IntN(20)
		recs := make([]testRecord, n)
		for i := range recs {
			r := testRecord{tsDelta: int64(rng.IntN(1000))}
			if rng.IntN(10) > 0 {
				r.key = []byte{'k', byte(rng.IntN(8))}
			}
			if rng.IntN(5) > 0 {
				r.value = bytes.Repeat([]byte{byte(i)}, rng.IntN(40))
			}
			if rng.IntN(4) == 0 {
				r.headers = [][2][]byte{{[]byte("h"), []byte("v")}}
			}
			recs[i] = r
		}
		b := makeBatch(1_700_000_000_000, recs...)
		if rng.IntN(2) == 0 {
			b = gzipBatch(t, b)
		}
		base := int64(rng.IntN(1 << 20))
		binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(base))
		h := mustHeader(t, b)
		keepSet := map[int64]bool{}
		keepEmpty := rng.IntN(2) == 0
		var sc *filterScratch
		if round%2 == 0 {
			sc = &scratch // buffers reused from an earlier round
		}
		out, err := filterBatch(b, h, gzipCodec, keepEmpty, func(offset int64, r record) bool {
			k := rng.IntN(3) == 0
			keepSet[offset] = k
			return k
		}, sc)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		var want []testRecord
		for i, r := range recs {
			if keepSet[base+int64(i)] {
				want = append(want, r)
			}
		}
		switch {
		case len(want) == n:
			if !bytes.Equal(out, b) {
				t.Fatalf("round %d: every record kept, but the batch was rewritten", round)
			}
			continue
		case len(want) == 0 && !keepEmpty:
			if out != nil {
				t.Fatalf("round %d: nothing kept, but a batch came back", round)
			}
			continue
		}
		oh, err := ValidateCleanedBatch(out)
		if err != nil {
			t.Fatalf("round %d: the filtered batch does not validate: %v", round, err)
		}
		got := oh.Header
		if got.BaseOffset != base || got.LastOffsetDelta != h.LastOffsetDelta || got.BaseTimestamp != h.BaseTimestamp ||
			got.MaxTimestamp != h.MaxTimestamp || int(got.RecordCount) != len(want) {
			t.Fatalf("round %d: header %+v from %+v, %d records kept", round, got, h, len(want))
		}
		rs, err := gzipCodec.batchRecords(out, got)
		if err != nil {
			t.Fatal(err)
		}
		i := 0
		err = forEachRecord(rs, got.RecordCount, func(r record) error {
			w := want[i]
			if !keepSet[base+int64(r.delta)] || !bytes.Equal(r.key, w.key) || r.tombstone != (w.value == nil) {
				return fmt.Errorf("record %d: offset %d key %q tombstone %v, want key %q tombstone %v", i, base+int64(r.delta), r.key, r.tombstone, w.key, w.value == nil)
			}
			i++
			return nil
		})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}

// TestOffsetMap: the latest offset wins; a full map refuses new keys but
// still updates the ones it holds.
func TestOffsetMap(t *testing.T) {
	m := newOffsetMap(3 * offsetMapEntryBytes)
	for i, k := range []string{"a", "b", "a", "c"} {
		if !m.put([]byte(k), int64(i)) {
			t.Fatalf("put %s refused", k)
		}
	}
	if m.put([]byte("d"), 9) {
		t.Fatal("a full map took a new key")
	}
	if !m.put([]byte("b"), 10) {
		t.Fatal("a full map refused a key it holds")
	}
	for k, want := range map[string]int64{"a": 2, "b": 10, "c": 3} {
		if got, ok := m.latest([]byte(k)); !ok || got != want {
			t.Fatalf("latest(%s) = %d %v, want %d", k, got, ok, want)
		}
	}
	if _, ok := m.latest([]byte("d")); ok {
		t.Fatal("a refused key is in the map")
	}
}

// TestReplicatedGapsSurviveRecovery: a follower takes a compacted
// leader's batches (one with records taken out, then a gap) and marks its
// log compacted before writing the gap; after a crash, recovery keeps
// every batch. A log never marked still cuts a batch whose base offset
// jumps (TestRecoveryCutsBadTail).
func TestReplicatedGapsSurviveRecovery(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	l := openTest(t, dir, cfg, Options{})
	first := makeBatchN(4, 10, 1)
	putBatchOffsetAndEpoch(first, 0, 0)
	cleaned, err := filterBatch(first, mustHeader(t, first), Codec{}, false, func(offset int64, _ record) bool { return offset%2 == 1 }, nil)
	if err != nil {
		t.Fatal(err)
	}
	later := makeBatchN(2, 10, 1)
	putBatchOffsetAndEpoch(later, 10, 0) // offsets 4-9 cleaned away
	if _, err := l.AppendReplicated(append(append([]byte(nil), cleaned...), later...)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, compactedFile)); err != nil {
		t.Fatalf("no compacted marker after a gap: %v", err)
	}
	if l.EndOffset() != 12 {
		t.Fatalf("end offset %d, want 12", l.EndOffset())
	}
	crash(l)
	l = openTest(t, dir, cfg, Options{})
	hs := readAll(t, l, 0)
	if len(hs) != 2 || hs[0].BaseOffset != 0 || hs[0].RecordCount != 2 || hs[1].BaseOffset != 10 || l.EndOffset() != 12 {
		t.Fatalf("after recovery: %+v, end %d", hs, l.EndOffset())
	}
	// Replaying what the follower has is still refused.
	if _, err := l.AppendReplicated(later); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("an old batch replayed: %v", err)
	}
}
