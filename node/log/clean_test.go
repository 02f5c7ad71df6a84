package log

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// withProducer sets a batch's idempotent producer fields (inside the CRC).
func withProducer(b []byte, pid int64, epoch int16, seq int32) []byte {
	binary.BigEndian.PutUint64(b[offProducerID:], uint64(pid))
	binary.BigEndian.PutUint16(b[offProducerEpoch:], uint16(epoch))
	binary.BigEndian.PutUint32(b[offBaseSequence:], uint32(seq))
	binary.BigEndian.PutUint32(b[offCRC:], crcOf(b))
	return b
}

// markerTestBatch is a transaction marker of pid: a control batch of one
// record, as the node writes them.
func markerTestBatch(pid int64, commit bool, ts int64) []byte {
	typ := byte(0)
	if commit {
		typ = 1
	}
	b := makeBatch(ts, testRecord{key: []byte{0, 0, 0, typ}, value: []byte{0, 0, 0, 0, 0, 0}})
	binary.BigEndian.PutUint16(b[offAttributes:], attrTransactional|attrControl)
	return withProducer(b, pid, 0, -1)
}

// transactional sets a batch's transactional bit.
func transactional(b []byte) []byte {
	binary.BigEndian.PutUint16(b[offAttributes:], binary.BigEndian.Uint16(b[offAttributes:])|attrTransactional)
	binary.BigEndian.PutUint32(b[offCRC:], crcOf(b))
	return b
}

// modelRecord is one record the oracle appended.
type modelRecord struct {
	offset int64
	key    []byte // nil: no key
	value  []byte // nil: a tombstone
}

// logRecords reads every record of the log, in order, with its batch.
func logRecords(t *testing.T, l *Log) (recs []modelRecord, batches []BatchHeader) {
	t.Helper()
	for off := l.StartOffset(); off < l.EndOffset(); {
		data, err := l.Read(nil, off, 1<<20, -1)
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		if len(data) == 0 {
			t.Fatalf("read %d: nothing, though the log ends at %d", off, l.EndOffset())
		}
		for len(data) > 0 {
			h := mustHeader(t, data)
			b := data[:h.Size()]
			data = data[h.Size():]
			if _, err := ValidateCleanedBatch(b); err != nil {
				t.Fatalf("batch at %d: %v", h.BaseOffset, err)
			}
			if h.BaseOffset < off && len(batches) > 0 {
				t.Fatalf("batch at %d read after offset %d", h.BaseOffset, off)
			}
			batches = append(batches, h)
			off = h.LastOffset() + 1
			if h.Control() {
				continue
			}
			rs, err := gzipCodec.batchRecords(b, h)
			if err != nil {
				t.Fatal(err)
			}
			err = forEachRecord(rs, h.RecordCount, func(r record) error {
				var v []byte
				if !r.tombstone {
					v = r.raw // compared through the model by offset
				}
				recs = append(recs, modelRecord{offset: h.BaseOffset + int64(r.delta), key: bytes.Clone(r.key), value: v})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return recs, batches
}

// latestView is what a consumer reading from the start keeps: each key's
// last value, a tombstone removing it; records without a key are not
// part of it.
func latestView(recs []modelRecord, tombstone func(modelRecord) bool) map[string]int64 {
	view := map[string]int64{}
	for _, r := range recs {
		switch {
		case r.key == nil:
		case tombstone(r):
			delete(view, string(r.key))
		default:
			view[string(r.key)] = r.offset
		}
	}
	return view
}

// TestCleanOracleRandom is compaction's oracle test: random keyed writes
// (tombstones, records without keys, gzip batches, idempotent producers,
// transactions that commit or abort) interleaved with cleans (some with a key map too small for the dirty
// part), clock moves past delete.retention.ms, crashes and clean
// restarts. After every step the log must give a consumer reading from
// the start the same latest value per key as everything written (the
// model), each record it holds must be one written at that offset,
// offsets must increase, no key may appear twice below the cleaner
// checkpoint, each producer's last batch must remain, and tombstones
// older than the horizon must be gone from what a clean rewrote.
func TestCleanOracleRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 7))
	clock := newManualClock()
	dir := t.TempDir()
	cfg := testConfig()
	cfg.SegmentBytes = 1500
	cfg.IndexIntervalBytes = 200
	open := func() *Log { return openTest(t, dir, cfg, Options{Clock: clock}) }
	l := open()
	defer func() { l.Close() }()
	byOffset := map[int64]modelRecord{}
	var model []modelRecord
	// A transaction of producer 9: its records wait in pending until its
	// marker; an abort's records are never in the view (abortedAt), and
	// no clean goes past an open one (the last stable offset).
	const txnPID = 9
	var pending []modelRecord
	txnOpen, txnFirst := false, int64(0)
	abortedAt := map[int64]bool{}
	lastBatch := map[int64]BatchHeader{}
	seqs := map[int64]int32{}
	const retention = time.Minute
	cleans := 0
	maxHorizon := int64(0) // the furthest horizon a clean used

	check := func(step int, what string) {
		t.Helper()
		recs, batches := logRecords(t, l)
		prev := int64(-1)
		var visible []modelRecord // what read_committed sees
		for _, r := range recs {
			if !abortedAt[r.offset] && !(txnOpen && r.offset >= txnFirst && slices.ContainsFunc(pending, func(p modelRecord) bool { return p.offset == r.offset })) {
				visible = append(visible, r)
			}
		}
		for _, r := range recs {
			w, ok := byOffset[r.offset]
			if !ok || !bytes.Equal(w.key, r.key) || (w.value == nil) != (r.value == nil) {
				t.Fatalf("step %d (%s): offset %d holds key %q tombstone %v, never written so", step, what, r.offset, r.key, r.value == nil)
			}
			if r.offset <= prev {
				t.Fatalf("step %d (%s): offset %d after %d", step, what, r.offset, prev)
			}
			prev = r.offset
		}
		isTombstone := func(r modelRecord) bool { return r.value == nil }
		sorted := slices.Clone(model)
		slices.SortFunc(sorted, func(a, b modelRecord) int { return cmp.Compare(a.offset, b.offset) })
		got, want := latestView(visible, isTombstone), latestView(sorted, isTombstone)
		if len(got) != len(want) {
			t.Fatalf("step %d (%s): the log's view has %d keys, the model's %d:\n%v\n%v", step, what, len(got), len(want), got, want)
		}
		for k, o := range want {
			if got[k] != o {
				t.Fatalf("step %d (%s): key %q: the log's latest at %d, the model's at %d", step, what, k, got[k], o)
			}
		}
		// A key's latest record, a tombstone, stays until a clean's
		// horizon passes it.
		latest := map[string]modelRecord{}
		for _, r := range sorted {
			if r.key != nil {
				latest[string(r.key)] = r
			}
		}
		have := map[int64]bool{}
		for _, r := range recs {
			have[r.offset] = true
		}
		for k, r := range latest {
			if r.value == nil && r.offset >= maxHorizon && !have[r.offset] {
				t.Fatalf("step %d (%s): key %q's tombstone at %d is gone, above every horizon (%d)", step, what, k, r.offset, maxHorizon)
			}
		}
		st := l.readCleanerState()
		seen := map[string]bool{}
		for _, r := range visible {
			if r.offset >= st.firstDirty || r.key == nil {
				continue
			}
			if seen[string(r.key)] {
				t.Fatalf("step %d (%s): key %q twice below the cleaner checkpoint %d", step, what, r.key, st.firstDirty)
			}
			seen[string(r.key)] = true
		}
		for pid, h := range lastBatch {
			found := false
			for _, b := range batches {
				if b.BaseOffset == h.BaseOffset && b.ProducerID == pid && b.BaseSequence == h.BaseSequence && b.LastOffsetDelta == h.LastOffsetDelta {
					found = true
				}
			}
			if !found {
				t.Fatalf("step %d (%s): producer %d's last batch (offset %d) is gone", step, what, pid, h.BaseOffset)
			}
		}
	}

	// 600 steps, then more (up to 1,800) until ten cleans have done
	// something: the floor below must hold for every seed.
	for step := 0; step < 600 || cleans < 10 && step < 1800; step++ {
		switch r := rng.IntN(20); {
		case r < 13:
			n := 1 + rng.IntN(6)
			recs := make([]testRecord, n)
			for i := range recs {
				if rng.IntN(15) > 0 {
					recs[i].key = fmt.Appendf(nil, "k%d", rng.IntN(16))
				}
				if rng.IntN(6) > 0 {
					recs[i].value = fmt.Appendf(nil, "v%d-%d", step, i)
				}
			}
			b := makeBatch(clock.Now().UnixMilli(), recs...)
			if rng.IntN(3) == 0 {
				b = gzipBatch(t, b)
			}
			var pid int64 = -1
			inTxn := rng.IntN(5) == 0
			switch {
			case inTxn:
				pid = txnPID
				b = transactional(withProducer(b, pid, 0, seqs[pid]))
				seqs[pid] += int32(n)
			case rng.IntN(3) == 0:
				pid = int64(7 + rng.IntN(2))
				b = withProducer(b, pid, 0, seqs[pid])
				seqs[pid] += int32(n)
			}
			res := mustAppend(t, l, b, 0)
			if inTxn && !txnOpen {
				txnOpen, txnFirst = true, res.FirstOffset
			}
			for i, tr := range recs {
				mr := modelRecord{offset: res.FirstOffset + int64(i), key: tr.key, value: tr.value}
				byOffset[mr.offset] = mr
				if inTxn {
					pending = append(pending, mr)
				} else {
					model = append(model, mr)
				}
			}
			if pid >= 0 {
				h := mustHeader(t, b)
				h.BaseOffset = res.FirstOffset
				lastBatch[pid] = h
			}
		case r < 16:
			entries := []int{2, 8, 1000}[rng.IntN(3)]
			before := l.readCleanerState()
			horizon := before.tombstoneHorizon(clock.Now(), retention)
			maxHorizon = max(maxHorizon, horizon)
			last := map[int64]int64{}
			for pid, h := range lastBatch {
				last[pid] = h.BaseOffset
			}
			upTo := l.EndOffset()
			if txnOpen {
				upTo = txnFirst // the last stable offset
			}
			res, err := l.Clean(CleanOptions{UpTo: upTo, MapBytes: entries * offsetMapEntryBytes, DeleteRetention: retention,
				LastBatches: last, Codec: gzipCodec})
			if err != nil && !errors.Is(err, ErrCleanerMapTooSmall) {
				t.Fatalf("step %d: clean: %v", step, err)
			}
			if res.CleanedTo > 0 {
				cleans++
			}
			check(step, fmt.Sprintf("after a clean to %d with %d map entries", res.CleanedTo, entries))
			recs, _ := logRecords(t, l)
			for _, r := range recs {
				if r.value == nil && r.key != nil && r.offset < min(horizon, res.CleanedTo) {
					t.Fatalf("step %d: tombstone at %d kept below the horizon %d by a clean to %d", step, r.offset, horizon, res.CleanedTo)
				}
			}
		case r < 17:
			clock.Advance(time.Duration(rng.IntN(90)) * time.Second)
		case r < 18:
			if !txnOpen {
				continue
			}
			commit := rng.IntN(2) == 0
			res := mustAppend(t, l, markerTestBatch(txnPID, commit, clock.Now().UnixMilli()), 0)
			if commit {
				model = append(model, pending...)
			} else {
				for _, p := range pending {
					abortedAt[p.offset] = true
				}
				if err := l.AppendAbortedTxn(AbortedTxn{ProducerID: txnPID, FirstOffset: txnFirst, LastOffset: res.FirstOffset,
					LastStableOffset: res.FirstOffset + 1}); err != nil {
					t.Fatal(err)
				}
			}
			pending, txnOpen = nil, false
		case r < 19:
			crash(l)
			l = open()
			check(step, "after a crash")
		default:
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = open()
			check(step, "after a restart")
		}
	}
	if cleans < 10 {
		t.Fatalf("only %d cleans did anything", cleans)
	}
	t.Logf("%d records written, %d cleans did something; %d bytes left", len(model), cleans, l.Size())
}

// errCrashed is what crashFS answers once its process has "died".
var errCrashed = errors.New("crashed")

// crashFS is the real file system until armed with a budget of writing
// operations (creates, writes, truncations, syncs, renames, removals);
// the one that exhausts it tears (half a write lands) and every later one
// fails, as if the process had been killed right there. Reads go on.
type crashFS struct {
	OSFS
	armed  bool
	budget int
	ops    int // writing operations since armed
}

func (f *crashFS) arm(budget int) { f.armed, f.budget, f.ops = true, budget, 0 }

// step counts a writing operation: false when it must fail.
func (f *crashFS) step() bool {
	if !f.armed {
		return true
	}
	f.ops++
	return f.budget < 0 || f.ops <= f.budget
}

func (f *crashFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if flag&(os.O_CREATE|os.O_WRONLY|os.O_RDWR|os.O_TRUNC) != 0 && !f.step() {
		return nil, errCrashed
	}
	file, err := f.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &crashFile{File: file, fs: f}, nil
}

func (f *crashFS) Remove(name string) error {
	if !f.step() {
		return errCrashed
	}
	return f.OSFS.Remove(name)
}

func (f *crashFS) Rename(a, b string) error {
	if !f.step() {
		return errCrashed
	}
	return f.OSFS.Rename(a, b)
}

func (f *crashFS) MkdirAll(p string, perm os.FileMode) error {
	if !f.step() {
		return errCrashed
	}
	return f.OSFS.MkdirAll(p, perm)
}

func (f *crashFS) SyncDir(p string) error {
	if !f.step() {
		return errCrashed
	}
	return f.OSFS.SyncDir(p)
}

type crashFile struct {
	File
	fs *crashFS
}

func (f *crashFile) WriteAt(p []byte, off int64) (int, error) {
	if !f.fs.step() {
		if f.fs.ops == f.fs.budget+1 { // the write the process died in: torn
			n, _ := f.File.WriteAt(p[:len(p)/2], off)
			return n, errCrashed
		}
		return 0, errCrashed
	}
	return f.File.WriteAt(p, off)
}

func (f *crashFile) Truncate(size int64) error {
	if !f.fs.step() {
		return errCrashed
	}
	return f.File.Truncate(size)
}

func (f *crashFile) Sync() error {
	if !f.fs.step() {
		return errCrashed
	}
	return f.File.Sync()
}

// TestCleanCrashAtEveryStep kills a clean at each of its writing
// operations in turn (crashFS), then reopens the log: it must read whole,
// give the same latest value per key as before the clean, hold no
// half-done clean, and clean again.
func TestCleanCrashAtEveryStep(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 8))
	cfg := testConfig()
	cfg.SegmentBytes = 1500
	cfg.IndexIntervalBytes = 200
	orig := t.TempDir()
	l := openTest(t, orig, cfg, Options{})
	for i := range 150 {
		recs := make([]testRecord, 1+rng.IntN(5))
		for j := range recs {
			recs[j].key = fmt.Appendf(nil, "k%d", rng.IntN(80))
			if rng.IntN(5) > 0 {
				recs[j].value = fmt.Appendf(nil, "v%d-%d", i, j)
			}
		}
		b := makeBatch(1_700_000_000_000, recs...)
		if i%3 == 0 {
			b = gzipBatch(t, b)
		}
		mustAppend(t, l, b, 0)
	}
	before, _ := logRecords(t, l)
	isTombstone := func(r modelRecord) bool { return r.value == nil }
	want := latestView(before, isTombstone)
	end := l.EndOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Written in small segments, cleaned into groups of several.
	cfg.SegmentBytes = 4500
	clean := func(l *Log) (CleanResult, error) {
		return l.Clean(CleanOptions{UpTo: end, MapBytes: 1 << 20, DeleteRetention: time.Hour, Codec: gzipCodec})
	}
	// How many writing operations a whole clean takes.
	counting := &crashFS{}
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(orig)); err != nil {
		t.Fatal(err)
	}
	l = openTest(t, dir, cfg, Options{FS: counting})
	counting.arm(-1)
	if res, err := clean(l); err != nil || res.SegmentsRewritten < 3 {
		t.Fatalf("the uninterrupted clean: %+v %v", res, err)
	}
	total := counting.ops
	l.Close()
	for k := 0; k <= total; k++ {
		dir := t.TempDir()
		if err := os.CopyFS(dir, os.DirFS(orig)); err != nil {
			t.Fatal(err)
		}
		fs := &crashFS{}
		l := openTest(t, dir, cfg, Options{FS: fs})
		fs.arm(k)
		clean(l)
		crash(l)
		l = openTest(t, dir, cfg, Options{})
		after, _ := logRecords(t, l)
		got := latestView(after, isTombstone)
		if len(got) != len(want) {
			t.Fatalf("killed at operation %d of %d: %d keys, want %d", k, total, len(got), len(want))
		}
		for key, o := range want {
			if got[key] != o {
				t.Fatalf("killed at operation %d of %d: key %q latest at %d, want %d", k, total, key, got[key], o)
			}
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.IsDir() {
				t.Fatalf("killed at operation %d of %d: %s left after reopening", k, total, e.Name())
			}
		}
		if _, err := clean(l); err != nil {
			t.Fatalf("killed at operation %d of %d: the next clean: %v", k, total, err)
		}
		again, _ := logRecords(t, l)
		if g := latestView(again, isTombstone); len(g) != len(want) {
			t.Fatalf("killed at operation %d of %d: after the next clean %d keys, want %d", k, total, len(g), len(want))
		}
		l.Close()
	}
	t.Logf("a clean killed at each of its %d writing operations", total)
}

// BenchmarkClean measures the cleaner: a log of STRATA_CLEAN_BENCH_MB
// (default 64) MiB of 1 KiB values over 10,000 keys, written in batches
// of 16 records (every fourth gzip-compressed), cleaned once whole. It
// reports MB/s of log cleaned and the fraction of the bytes reclaimed.
//
//	go test -run '^$' -bench BenchmarkClean -benchtime 3x ./node/log/
func BenchmarkClean(b *testing.B) {
	mb := 64
	if s := os.Getenv("STRATA_CLEAN_BENCH_MB"); s != "" {
		fmt.Sscan(s, &mb)
	}
	cfg := DefaultConfig()
	cfg.SegmentBytes = 16 << 20
	src := b.TempDir()
	l, err := Open(src, cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	value := bytes.Repeat([]byte("v"), 1024)
	for i := 0; l.Size() < int64(mb)<<20; i++ {
		recs := make([]testRecord, 16)
		for j := range recs {
			recs[j] = testRecord{key: fmt.Appendf(nil, "key-%05d", rng.IntN(10_000)), value: value}
		}
		batch := makeBatch(1_700_000_000_000, recs...)
		if i%4 == 0 {
			batch = gzipBatch(b, batch)
		}
		if _, err := l.Append(batch, 0); err != nil {
			b.Fatal(err)
		}
	}
	l.Close()
	b.Run("clean", func(b *testing.B) {
		before := int64(0)
		var reclaimed float64
		for range b.N {
			b.StopTimer()
			dir := b.TempDir()
			if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
				b.Fatal(err)
			}
			l, err := Open(dir, cfg, Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			res, err := l.Clean(CleanOptions{UpTo: l.EndOffset(), MapBytes: 128 << 20, DeleteRetention: time.Hour, Codec: kgoCodec()})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			before = res.BytesBefore
			reclaimed = float64(res.BytesBefore-res.BytesAfter) / float64(res.BytesBefore)
			l.Close()
			b.StartTimer()
		}
		b.SetBytes(before)
		b.ReportMetric(reclaimed, "reclaimed-fraction")
	})
	// The baseline in the same run: copying the log's files, the least
	// any rewrite of them costs.
	b.Run("copy", func(b *testing.B) {
		var size int64
		for range b.N {
			dir := b.TempDir()
			if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
				b.Fatal(err)
			}
			size = dirSize(b, dir)
		}
		b.SetBytes(size)
	})
}

func dirSize(b *testing.B, dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), logSuffix) {
			n += fi.Size()
		}
	}
	return n
}

// kgoCodec is the codec the node gives the cleaner: franz-go's pooled
// compressors (node/cleaner.go builds the same).
func kgoCodec() Codec {
	d := kgo.DefaultDecompressor()
	c, _ := kgo.DefaultCompressor(kgo.GzipCompression())
	return Codec{
		Decompress: func(codec int, body []byte) ([]byte, error) {
			return d.Decompress(body, kgo.CompressionCodecType(codec))
		},
		Compress: func(codec int, records []byte) ([]byte, error) {
			var buf bytes.Buffer
			out, _ := c.Compress(&buf, records)
			return bytes.Clone(out), nil
		},
	}
}
