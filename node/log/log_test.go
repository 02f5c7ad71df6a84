package log

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestAppendAssignsOffsetsAndEpoch(t *testing.T) {
	l := openTest(t, t.TempDir(), testConfig(), Options{})
	var want []int64
	for i, n := range []int{1, 5, 3} {
		res := mustAppend(t, l, makeBatchN(n, 10, int64(i)), 4)
		if res.LastOffset-res.FirstOffset != int64(n-1) {
			t.Fatalf("batch %d: offsets %d..%d for %d records", i, res.FirstOffset, res.LastOffset, n)
		}
		want = append(want, res.FirstOffset)
	}
	if !slices.Equal(want, []int64{0, 1, 6}) || l.EndOffset() != 9 {
		t.Fatalf("first offsets %v, end %d", want, l.EndOffset())
	}
	var got []int64
	for _, h := range readAll(t, l, 0) {
		got = append(got, h.BaseOffset)
		if h.LeaderEpoch != 4 {
			t.Fatalf("stored epoch %d", h.LeaderEpoch)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("stored base offsets %v, want %v", got, want)
	}
}

func TestAppendBadBatchChangesNothing(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	cfg.MaxMessageBytes = 2000
	l := openTest(t, dir, cfg, Options{})
	mustAppend(t, l, makeBatchN(2, 10, 0), 0)
	before := snapshotDir(t, dir)
	bad := makeBatchN(2, 10, 0)
	bad[len(bad)-1] ^= 1
	for name, tc := range map[string]struct {
		batch []byte
		want  error
	}{
		"corrupt":   {bad, ErrCorrupt},
		"too large": {makeBatchN(1, 3000, 0), ErrTooLarge},
		"invalid":   {frameBatch(0, 0, 0, 2, []byte{1, 2, 3}), ErrInvalidRecord},
	} {
		if _, err := l.Append(tc.batch, 0); !errors.Is(err, tc.want) {
			t.Fatalf("%s: got %v, want %v", name, err, tc.want)
		}
	}
	if l.EndOffset() != 2 || l.Err() != nil {
		t.Fatalf("end %d err %v", l.EndOffset(), l.Err())
	}
	if after := snapshotDir(t, dir); !mapsEqual(before, after) {
		t.Fatal("a rejected batch changed the files")
	}
}

func snapshotDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

func mapsEqual(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestRead(t *testing.T) {
	l := openTest(t, t.TempDir(), testConfig(), Options{})
	// Batches of 10 records of ~100 bytes: offsets 0-9, 10-19, 20-29.
	var sizes []int
	for i := range 3 {
		b := makeBatchN(10, 100, int64(i))
		sizes = append(sizes, len(b))
		mustAppend(t, l, b, 0)
	}
	tests := []struct {
		name       string
		offset     int64
		maxBytes   int
		maxOffset  int64
		wantBases  []int64
		wantErr    error
		wantLength int
	}{
		{name: "from start", offset: 0, maxBytes: 1 << 20, maxOffset: -1, wantBases: []int64{0, 10, 20}},
		{name: "mid batch starts at holding batch", offset: 15, maxBytes: 1 << 20, maxOffset: -1, wantBases: []int64{10, 20}},
		{name: "max bytes cuts at a batch boundary", offset: 0, maxBytes: sizes[0] + sizes[1] - 1, maxOffset: -1, wantBases: []int64{0}},
		{name: "first batch larger than max bytes comes whole", offset: 12, maxBytes: 10, maxOffset: -1, wantBases: []int64{10}},
		{name: "capped at high watermark", offset: 0, maxBytes: 1 << 20, maxOffset: 20, wantBases: []int64{0, 10}},
		{name: "at high watermark", offset: 20, maxBytes: 1 << 20, maxOffset: 20},
		{name: "at log end", offset: 30, maxBytes: 1 << 20, maxOffset: -1},
		{name: "past log end", offset: 31, maxBytes: 1 << 20, maxOffset: -1, wantErr: ErrOffsetOutOfRange},
		{name: "negative", offset: -1, maxBytes: 1 << 20, maxOffset: -1, wantErr: ErrOffsetOutOfRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := l.Read(nil, tt.offset, tt.maxBytes, tt.maxOffset)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			// ReadAlloc reads the same, asking for a buffer only when
			// there is something to read.
			var asked []int
			pooled, err := l.ReadAlloc(func(n int) []byte { asked = append(asked, n); return make([]byte, 0, n) },
				tt.offset, tt.maxBytes, tt.maxOffset)
			if !errors.Is(err, tt.wantErr) || !bytes.Equal(pooled, data) || len(data) == 0 && len(asked) > 0 {
				t.Fatalf("ReadAlloc: %d bytes (Read: %d), %v, buffers asked %v", len(pooled), len(data), err, asked)
			}
			var bases []int64
			for len(data) > 0 {
				h, err := checkStoredBatch(data[:mustHeader(t, data).Size()])
				if err != nil {
					t.Fatal(err)
				}
				bases = append(bases, h.BaseOffset)
				data = data[h.Size():]
			}
			if !slices.Equal(bases, tt.wantBases) {
				t.Fatalf("batches %v, want %v", bases, tt.wantBases)
			}
		})
	}
	// Read appends to dst.
	dst := []byte("prefix")
	out, err := l.Read(dst, 0, 1, -1)
	if err != nil || !bytes.HasPrefix(out, []byte("prefix")) || len(out) != 6+sizes[0] {
		t.Fatalf("append to dst: %d bytes, %v", len(out), err)
	}
}

func TestRollAndIndex(t *testing.T) {
	clock := newManualClock()
	cfg := testConfig()
	cfg.SegmentBytes = 10_000
	cfg.IndexIntervalBytes = 2000
	cfg.SegmentAge = time.Hour
	var closed []SegmentInfo
	l := openTest(t, t.TempDir(), cfg, Options{Clock: clock, OnSegmentClosed: func(s SegmentInfo) { closed = append(closed, s) }})
	batch := len(makeBatchN(1, 900, 0)) // ~970 bytes
	for i := range 25 {
		mustAppend(t, l, makeBatchN(1, 900, int64(i)), 0)
	}
	segs := l.Segments()
	perSegment := cfg.SegmentBytes / int64(batch)
	if len(segs) != 3 || segs[0].NextOffset != perSegment || len(closed) != 2 {
		t.Fatalf("segments %+v closed %d (batch %d bytes)", segs, len(closed), batch)
	}
	for _, s := range segs[:2] {
		if !s.Sealed || s.Size > cfg.SegmentBytes {
			t.Fatalf("segment %+v", s)
		}
		fi, err := os.Stat(s.IndexPath)
		if err != nil {
			t.Fatal(err)
		}
		// Sparse: one entry per 2000 bytes after the first, trimmed.
		want := (s.Size - 1) / int64(cfg.IndexIntervalBytes+batch-cfg.IndexIntervalBytes%batch)
		if fi.Size()%offsetIndexEntryBytes != 0 || fi.Size()/offsetIndexEntryBytes < want-1 || fi.Size()/offsetIndexEntryBytes > want+1 {
			t.Fatalf("index of %d bytes for %d-byte segment (want ~%d entries)", fi.Size(), s.Size, want)
		}
	}
	// Age: the active segment rolls on the next append after segment.ms.
	clock.Advance(time.Hour)
	mustAppend(t, l, makeBatchN(1, 10, 0), 0)
	if n := len(l.Segments()); n != 4 {
		t.Fatalf("after segment.ms: %d segments", n)
	}
	// And Maintain rolls an idle one.
	clock.Advance(time.Hour)
	if _, err := l.Maintain(); err != nil {
		t.Fatal(err)
	}
	if n := len(l.Segments()); n != 5 {
		t.Fatalf("after idle segment.ms: %d segments", n)
	}
	// Every offset is readable through the index.
	for off := int64(0); off < l.EndOffset(); off++ {
		data, err := l.Read(nil, off, 1, -1)
		if err != nil {
			t.Fatal(err)
		}
		if h := mustHeader(t, data); h.BaseOffset > off || h.LastOffset() < off {
			t.Fatalf("offset %d read batch [%d, %d]", off, h.BaseOffset, h.LastOffset())
		}
	}
}

func TestRollWhenIndexFull(t *testing.T) {
	cfg := testConfig()
	cfg.IndexIntervalBytes = 0 // an entry per batch
	cfg.IndexMaxBytes = 4 * timeIndexEntryBytes
	l := openTest(t, t.TempDir(), cfg, Options{})
	for range 10 {
		mustAppend(t, l, makeBatchN(1, 10, 0), 0)
	}
	if n := len(l.Segments()); n < 3 {
		t.Fatalf("%d segments; a full index must roll", n)
	}
	if got := len(readAll(t, l, 0)); got != 10 {
		t.Fatalf("read %d batches", got)
	}
}

func TestOffsetForTimestamp(t *testing.T) {
	cfg := testConfig()
	cfg.SegmentBytes = 3000
	cfg.IndexIntervalBytes = 500
	l := openTest(t, t.TempDir(), cfg, Options{})
	// Batch i holds records at 1000*i + 0, 10, 20 (offsets 3i..3i+2),
	// except batch 5, whose timestamps go backwards.
	for i := range 20 {
		recs := []testRecord{{tsDelta: 0, value: make([]byte, 100)}, {tsDelta: 10}, {tsDelta: 20}}
		if i == 5 {
			recs = []testRecord{{tsDelta: 20}, {tsDelta: 10}, {tsDelta: 0}}
		}
		mustAppend(t, l, makeBatch(int64(1000*i), recs...), 0)
	}
	tests := []struct {
		ts, maxOffset   int64
		wantOff, wantTs int64
		wantFound       bool
	}{
		{0, -1, 0, 0, true},
		{-5, -1, 0, 0, true},
		{5, -1, 1, 10, true},
		{20, -1, 2, 20, true},
		{21, -1, 3, 1000, true},
		{5005, -1, 15, 5020, true}, // first record of batch 5 is at +20
		{7015, -1, 23, 7020, true},
		{19020, -1, 59, 19020, true},
		{19021, -1, 0, 0, false},
		{7015, 21, 0, 0, false}, // beyond the high watermark
	}
	for _, tt := range tests {
		off, ts, found, err := l.OffsetForTimestamp(tt.ts, tt.maxOffset)
		if err != nil || found != tt.wantFound || (found && (off != tt.wantOff || ts != tt.wantTs)) {
			t.Errorf("timestamp %d: got (%d, %d, %v, %v), want (%d, %d, %v)", tt.ts, off, ts, found, err, tt.wantOff, tt.wantTs, tt.wantFound)
		}
	}
	ts, off, found, err := l.MaxTimestamp()
	if err != nil || !found || ts != 19020 || off != 59 {
		t.Fatalf("max timestamp (%d, %d, %v, %v)", ts, off, found, err)
	}
}

func TestLogAppendTime(t *testing.T) {
	clock := newManualClock()
	cfg := testConfig()
	cfg.LogAppendTime = true
	l := openTest(t, t.TempDir(), cfg, Options{Clock: clock})
	res := mustAppend(t, l, makeBatchN(2, 5, 42), 0)
	h := readAll(t, l, 0)[0]
	if !h.LogAppendTime() || h.MaxTimestamp != clock.Now().UnixMilli() || !res.AppendTime.Equal(clock.Now()) {
		t.Fatalf("header %+v result %+v", h, res)
	}
}

func TestRetention(t *testing.T) {
	clock := newManualClock()
	now := clock.Now().UnixMilli()
	newLog := func(t *testing.T, mod func(*Config)) *Log {
		cfg := testConfig()
		cfg.SegmentBytes = 2000
		mod(&cfg)
		l := openTest(t, t.TempDir(), cfg, Options{Clock: clock})
		// 10 batches of ~1000 bytes: one per segment after the roll rule,
		// timestamped an hour apart, the last one now.
		for i := range 10 {
			mustAppend(t, l, makeBatchN(1, 930, now-int64(9-i)*3600_000), 0)
		}
		return l
	}
	t.Run("retention.ms", func(t *testing.T) {
		l := newLog(t, func(c *Config) { c.RetentionAge = 150 * time.Minute })
		n, err := l.Maintain()
		if err != nil || n != 7 || l.StartOffset() != 7 {
			t.Fatalf("deleted %d, start %d, %v", n, l.StartOffset(), err)
		}
		if _, err := l.Read(nil, 6, 1, -1); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("deleted offset readable: %v", err)
		}
	})
	t.Run("retention.ms expires everything", func(t *testing.T) {
		l := newLog(t, func(c *Config) { c.RetentionAge = time.Minute })
		clock.Advance(time.Hour)
		defer clock.Advance(-time.Hour)
		if _, err := l.Maintain(); err != nil {
			t.Fatal(err)
		}
		if l.StartOffset() != 10 || l.EndOffset() != 10 || len(l.Segments()) != 1 {
			t.Fatalf("start %d end %d segments %d", l.StartOffset(), l.EndOffset(), len(l.Segments()))
		}
		if res := mustAppend(t, l, makeBatchN(1, 1, now), 0); res.FirstOffset != 10 {
			t.Fatalf("next offset %d", res.FirstOffset)
		}
	})
	t.Run("retention.bytes", func(t *testing.T) {
		l := newLog(t, func(c *Config) { c.RetentionBytes = 3500 })
		if _, err := l.Maintain(); err != nil {
			t.Fatal(err)
		}
		// As in Kafka, a segment goes only while what stays is still at
		// least retention.bytes.
		if l.Size() < 3500 || l.Size() >= 3500+1001 || l.EndOffset() != 10 {
			t.Fatalf("size %d after retention.bytes 3500", l.Size())
		}
	})
	t.Run("removable and high watermark", func(t *testing.T) {
		var below atomic.Int64 // segments ending at or below it are removable
		below.Store(3)
		cfg := testConfig()
		cfg.SegmentBytes, cfg.RetentionBytes = 2000, 0
		l := openTest(t, t.TempDir(), cfg, Options{Clock: clock,
			Removable: func(s SegmentInfo) bool { return s.NextOffset <= below.Load() }})
		for i := range 10 {
			mustAppend(t, l, makeBatchN(1, 930, now-int64(9-i)*3600_000), 0)
		}
		l.SetHighWatermark(5)
		if n, _ := l.Maintain(); n != 3 || l.StartOffset() != 3 {
			t.Fatalf("removable below 3: deleted %d, start %d", n, l.StartOffset())
		}
		below.Store(100)
		if n, _ := l.Maintain(); n != 2 || l.StartOffset() != 5 {
			t.Fatalf("high watermark 5: deleted %d, start %d", n, l.StartOffset())
		}
	})
}

func TestDeleteRecordsBefore(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	cfg.SegmentBytes = 2000
	l := openTest(t, dir, cfg, Options{})
	for range 6 {
		mustAppend(t, l, makeBatchN(2, 450, 0), 0) // 2 batches a segment
	}
	if _, err := l.DeleteRecordsBefore(13); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("past end: %v", err)
	}
	start, err := l.DeleteRecordsBefore(5)
	if err != nil || start != 5 || l.StartOffset() != 5 {
		t.Fatalf("start %d %v", start, err)
	}
	if segs := l.Segments(); segs[0].BaseOffset != 4 {
		t.Fatalf("first segment %d, want 4", segs[0].BaseOffset)
	}
	if _, err := l.Read(nil, 4, 1, -1); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("below start: %v", err)
	}
	if data, err := l.Read(nil, 5, 1, -1); err != nil || mustHeader(t, data).BaseOffset != 4 {
		t.Fatalf("at start: %v", err)
	}
	l.Close()
	l = openTest(t, dir, cfg, Options{})
	if l.StartOffset() != 5 {
		t.Fatalf("after reopen start %d", l.StartOffset())
	}
	// Deleting everything keeps the end offset.
	if _, err := l.DeleteRecordsBefore(12); err != nil || l.StartOffset() != 12 || l.EndOffset() != 12 {
		t.Fatalf("delete all: start %d end %d %v", l.StartOffset(), l.EndOffset(), err)
	}
}

func TestTruncateTo(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	cfg.SegmentBytes = 2000
	cfg.IndexIntervalBytes = 0
	l := openTest(t, dir, cfg, Options{})
	for i := range 8 {
		mustAppend(t, l, makeBatchN(2, 450, int64(i)), int32(i/3)) // epochs 0,0,0,1,1,1,2,2
	}
	if got := l.Epochs(); !slices.Equal(got, []EpochEntry{{0, 0}, {1, 6}, {2, 12}}) {
		t.Fatalf("epochs %v", got)
	}
	if err := l.TruncateTo(7); err != nil { // mid batch [6,7]: cut at 6
		t.Fatal(err)
	}
	if l.EndOffset() != 6 || len(l.Segments()) != 2 {
		t.Fatalf("end %d segments %d", l.EndOffset(), len(l.Segments()))
	}
	if got := l.Epochs(); !slices.Equal(got, []EpochEntry{{0, 0}}) {
		t.Fatalf("epochs after truncate %v", got)
	}
	if _, ts, found, _ := l.OffsetForTimestamp(3, -1); found {
		t.Fatalf("truncated timestamp still found at %d", ts)
	}
	res := mustAppend(t, l, makeBatchN(1, 10, 100), 5)
	if res.FirstOffset != 6 {
		t.Fatalf("append after truncate at %d", res.FirstOffset)
	}
	l.Close()
	l = openTest(t, dir, cfg, Options{})
	if l.EndOffset() != 7 || len(readAll(t, l, 0)) != 4 {
		t.Fatalf("after reopen end %d", l.EndOffset())
	}
	if got := l.Epochs(); !slices.Equal(got, []EpochEntry{{0, 0}, {5, 6}}) {
		t.Fatalf("epochs after reopen %v", got)
	}
	if err := l.TruncateFullyAndStartAt(100); err != nil || l.StartOffset() != 100 || l.EndOffset() != 100 {
		t.Fatalf("truncate fully: %v", err)
	}
	if res := mustAppend(t, l, makeBatchN(1, 10, 0), 6); res.FirstOffset != 100 {
		t.Fatalf("first offset %d", res.FirstOffset)
	}
}

func TestEndOffsetForEpoch(t *testing.T) {
	c := epochCache{entries: []EpochEntry{{1, 10}, {3, 50}, {4, 80}}}
	tests := []struct {
		epoch     int32
		wantEpoch int32
		wantEnd   int64
	}{
		{-1, -1, -1},
		{0, 0, 10}, // older than every known epoch
		{1, 1, 50},
		{2, 1, 50}, // unknown in between: the floor epoch's end
		{3, 3, 80},
		{4, 4, 120}, // the latest: the log end
		{5, -1, -1},
	}
	for _, tt := range tests {
		e, end := c.endOffsetFor(tt.epoch, 120)
		if e != tt.wantEpoch || end != tt.wantEnd {
			t.Errorf("epoch %d: got (%d, %d), want (%d, %d)", tt.epoch, e, end, tt.wantEpoch, tt.wantEnd)
		}
	}
	if e, end := (&epochCache{}).endOffsetFor(3, 9); e != -1 || end != -1 {
		t.Errorf("empty: (%d, %d)", e, end)
	}
	c.truncateFromStart(60)
	if !slices.Equal(c.entries, []EpochEntry{{3, 60}, {4, 80}}) {
		t.Errorf("truncate from start: %v", c.entries)
	}
}

// TestBeginEpoch: a new leader that has appended nothing yet still tells
// a follower whose log ends in an epoch it never had where they part.
// Without the entry it answered (-1, -1), which reads as "no divergence",
// and the follower, ahead of it, could never rejoin: with too few
// replicas in sync to take a produce, the leader never appended either
// (the fault suite found the stall, seed 11001).
func TestBeginEpoch(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, testConfig(), Options{})
	for range 3 {
		if _, err := l.Append(makeBatchN(1, 1, 0), 1); err != nil {
			t.Fatal(err)
		}
	}
	if e, end := l.EndOffsetForEpoch(2); e != -1 || end != -1 {
		t.Fatalf("epoch 2 before the new leader's: (%d, %d)", e, end)
	}
	if err := l.BeginEpoch(3); err != nil {
		t.Fatal(err)
	}
	if e, end := l.EndOffsetForEpoch(2); e != 1 || end != 3 {
		t.Fatalf("epoch 2, the new leader's is 3: (%d, %d), want (1, 3)", e, end)
	}
	if e, end := l.EndOffsetForEpoch(3); e != 3 || end != 3 {
		t.Fatalf("the new leader's epoch: (%d, %d), want (3, 3)", e, end)
	}
	if err := l.BeginEpoch(2); err != nil || l.LatestEpoch() != 3 {
		t.Fatalf("an older epoch: %v, latest %d", err, l.LatestEpoch())
	}
	// Its own batches keep the entry; a restart before any drops it.
	if _, err := l.Append(makeBatchN(1, 1, 0), 3); err != nil {
		t.Fatal(err)
	}
	if got := l.Epochs(); !slices.Equal(got, []EpochEntry{{1, 0}, {3, 3}}) {
		t.Fatalf("epochs %v", got)
	}
	// Made a follower before it appended, the leader it follows tells
	// it where its last epoch ended: a cut at the log end drops the
	// epoch it began, and only that.
	if err := l.BeginEpoch(4); err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateTo(l.EndOffset()); err != nil {
		t.Fatal(err)
	}
	if got := l.Epochs(); !slices.Equal(got, []EpochEntry{{1, 0}, {3, 3}}) || l.EndOffset() != 4 {
		t.Fatalf("epochs %v, end %d after a cut at the end", got, l.EndOffset())
	}
	if err := l.BeginEpoch(5); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openTest(t, dir, testConfig(), Options{})
	if got := l.Epochs(); !slices.Equal(got, []EpochEntry{{1, 0}, {3, 3}}) {
		t.Fatalf("epochs after a restart %v", got)
	}
}

func TestAppendReplicated(t *testing.T) {
	leader := openTest(t, t.TempDir(), testConfig(), Options{})
	for i := range 5 {
		mustAppend(t, leader, makeBatchN(3, 20, int64(i)), int32(i/2))
	}
	data, err := leader.Read(nil, 0, 1<<20, -1)
	if err != nil {
		t.Fatal(err)
	}
	follower := openTest(t, t.TempDir(), testConfig(), Options{})
	res, err := follower.AppendReplicated(data)
	if err != nil || res.FirstOffset != 0 || res.LastOffset != 14 {
		t.Fatalf("replicated %+v %v", res, err)
	}
	again, _ := follower.Read(nil, 0, 1<<20, -1)
	if !bytes.Equal(again, data) || !slices.Equal(follower.Epochs(), leader.Epochs()) {
		t.Fatal("follower differs from leader")
	}
	if _, err := follower.AppendReplicated(data); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("replaying old batches: %v", err)
	}
}

func TestFlushMessages(t *testing.T) {
	fs := newFaultFS()
	cfg := testConfig()
	cfg.FlushMessages = 1
	l := openTest(t, t.TempDir(), cfg, Options{FS: fs})
	before := fs.syncs.Load()
	for range 5 {
		mustAppend(t, l, makeBatchN(1, 10, 0), 0)
	}
	if n := fs.syncs.Load() - before; n != 5 {
		t.Fatalf("flush.messages=1: %d fsyncs for 5 appends", n)
	}
	cfg.FlushMessages = 10
	l.SetConfig(cfg)
	before = fs.syncs.Load()
	for range 5 {
		mustAppend(t, l, makeBatchN(3, 10, 0), 0)
	}
	if n := fs.syncs.Load() - before; n != 1 {
		t.Fatalf("flush.messages=10: %d fsyncs for 15 records", n)
	}
}

func TestFlushInterval(t *testing.T) {
	fs := newFaultFS()
	clock := newManualClock()
	cfg := testConfig()
	cfg.FlushInterval = time.Second
	l := openTest(t, t.TempDir(), cfg, Options{FS: fs, Clock: clock})
	mustAppend(t, l, makeBatchN(1, 10, 0), 0)
	before := fs.syncs.Load()
	l.Maintain()
	if fs.syncs.Load() != before {
		t.Fatal("flushed before flush.ms")
	}
	clock.Advance(time.Second)
	l.Maintain()
	if fs.syncs.Load() != before+1 {
		t.Fatal("no flush after flush.ms")
	}
}

func TestDiskFullLeavesLogUsable(t *testing.T) {
	fs := newFaultFS()
	fs.writeErr = unix.ENOSPC
	dir := t.TempDir()
	l := openTest(t, dir, testConfig(), Options{FS: fs})
	mustAppend(t, l, makeBatchN(2, 100, 0), 0)
	fs.writeBudget.Store(50) // the next write lands half
	if _, err := l.Append(makeBatchN(2, 100, 0), 0); !errors.Is(err, ErrIO) {
		t.Fatalf("disk full: %v", err)
	}
	if l.EndOffset() != 2 || l.Err() != nil {
		t.Fatalf("end %d err %v", l.EndOffset(), l.Err())
	}
	fi, _ := os.Stat(filepath.Join(dir, segmentName(0)+logSuffix))
	if fi.Size() != l.Size() {
		t.Fatalf("half-written bytes left in the file: %d vs %d", fi.Size(), l.Size())
	}
	fs.writeBudget.Store(-1)
	if res := mustAppend(t, l, makeBatchN(1, 100, 0), 0); res.FirstOffset != 2 {
		t.Fatalf("after space freed: %d", res.FirstOffset)
	}
	if n := len(readAll(t, l, 0)); n != 2 {
		t.Fatalf("%d batches", n)
	}
}

func TestIOErrorFailsLog(t *testing.T) {
	for _, tc := range []struct {
		name string
		arm  func(fs *faultFS)
	}{
		{"write EIO", func(fs *faultFS) { fs.writeErr = unix.EIO; fs.writeBudget.Store(10) }},
		{"fsync EIO", func(fs *faultFS) { e := error(unix.EIO); fs.syncErr.Store(&e) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFaultFS()
			dir := t.TempDir()
			cfg := testConfig()
			cfg.FlushMessages = 1
			l, err := Open(dir, cfg, Options{FS: fs})
			if err != nil {
				t.Fatal(err)
			}
			mustAppend(t, l, makeBatchN(2, 100, 0), 0)
			tc.arm(fs)
			if _, err := l.Append(makeBatchN(2, 100, 0), 0); !errors.Is(err, ErrFailed) {
				t.Fatalf("append: %v", err)
			}
			if _, err := l.Read(nil, 0, 1<<20, -1); !errors.Is(err, ErrFailed) {
				t.Fatalf("read after failure: %v", err)
			}
			if _, err := l.Append(makeBatchN(1, 1, 0), 0); !errors.Is(err, ErrFailed) {
				t.Fatalf("append after failure: %v", err)
			}
			l.Close()
			l = openTest(t, dir, cfg, Options{})
			if l.EndOffset() < 2 || len(readAll(t, l, 0)) < 1 {
				t.Fatalf("after reopen end %d", l.EndOffset())
			}
		})
	}
}

func TestReopenAfterCleanClose(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	cfg.SegmentBytes = 5000
	l, err := Open(dir, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		mustAppend(t, l, makeBatchN(2, 200, int64(i)), 1)
	}
	want := readAllBytes(t, l)
	wantSegs := l.Segments()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, cleanShutdownFile)); err != nil {
		t.Fatal("no clean shutdown marker")
	}
	// An index that fails its sanity check is rebuilt, not trusted.
	os.WriteFile(wantSegs[1].IndexPath, []byte{0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0}, 0o644)
	os.Remove(wantSegs[2].TimeIndexPath)
	l = openTest(t, dir, cfg, Options{})
	if _, err := os.Stat(filepath.Join(dir, cleanShutdownFile)); !os.IsNotExist(err) {
		t.Fatal("marker survives open")
	}
	got := readAllBytes(t, l)
	if !bytes.Equal(got, want) || l.EndOffset() != 60 {
		t.Fatalf("reopened log differs (end %d, %d bytes, want %d)", l.EndOffset(), len(got), len(want))
	}
	checkIndexesAgainstScan(t, l)
}

func readAllBytes(t *testing.T, l *Log) []byte {
	t.Helper()
	var out []byte
	for off := l.StartOffset(); off < l.EndOffset(); {
		n := len(out)
		var err error
		out, err = l.Read(out, off, 1<<30, -1)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) == n {
			t.Fatalf("no progress at %d", off)
		}
		for p := n; p < len(out); {
			h := mustHeader(t, out[p:])
			p += int(h.Size())
			off = h.LastOffset() + 1
		}
	}
	return out
}

// checkIndexesAgainstScan checks every index entry and every offset and
// timestamp lookup against a plain scan of the segments.
func checkIndexesAgainstScan(t *testing.T, l *Log) {
	t.Helper()
	type batch struct {
		pos  int64
		h    BatchHeader
		seg  *segment
		maxT int64
	}
	var all []batch
	for _, s := range *l.segments.Load() {
		sc := newScanner(s.log, 0, s.size.Load(), 1<<16, true, nil)
		for {
			pos, h, _, err := sc.next()
			if err != nil {
				break
			}
			all = append(all, batch{pos, h, s, h.MaxTimestamp})
		}
		for i := range int(s.index.entries.Load()) {
			rel, pos := s.index.at(i)
			if !slices.ContainsFunc(all, func(b batch) bool {
				return b.seg == s && b.pos == int64(pos) && b.h.BaseOffset == s.baseOffset+int64(rel)
			}) {
				t.Fatalf("segment %d index entry %d (%d, %d) names no batch", s.baseOffset, i, rel, pos)
			}
		}
	}
	for _, b := range all {
		for off := b.h.BaseOffset; off <= b.h.LastOffset(); off++ {
			if off < l.StartOffset() {
				continue
			}
			data, err := l.Read(nil, off, 1, -1)
			if err != nil || mustHeader(t, data).BaseOffset != b.h.BaseOffset {
				t.Fatalf("read %d: %v", off, err)
			}
		}
	}
	// Timestamp lookups agree with the first batch, by a scan, whose max
	// timestamp reaches the target.
	for _, b := range all {
		target := b.maxT
		var want *batch
		for i := range all {
			if all[i].maxT >= target && all[i].h.LastOffset() >= l.StartOffset() {
				want = &all[i]
				break
			}
		}
		off, _, found, err := l.OffsetForTimestamp(target, -1)
		if err != nil || !found || off < want.h.BaseOffset || off > want.h.LastOffset() {
			t.Fatalf("timestamp %d: offset %d found %v %v, scan says batch [%d, %d]", target, off, found, err, want.h.BaseOffset, want.h.LastOffset())
		}
	}
}

// TestRetentionRollKeepsUnremovableSegment: a tiered partition goes idle
// and every segment expires. Retention rolls the active segment so the
// log end survives; the closed hook marks that segment "not uploaded",
// and it must stay. (The segment retention rolled itself was once
// deleted with the rest, before its upload: acknowledged records lost.)
func TestRetentionRollKeepsUnremovableSegment(t *testing.T) {
	clock := newManualClock()
	cfg := testConfig()
	cfg.SegmentBytes = 2000
	cfg.RetentionAge = time.Second
	var mu sync.Mutex
	pending := map[int64]bool{} // closed, not uploaded
	l := openTest(t, t.TempDir(), cfg, Options{Clock: clock,
		OnSegmentClosed: func(s SegmentInfo) {
			if !s.Sealed || s.Size == 0 {
				t.Errorf("hook got %+v", s)
			}
			mu.Lock()
			pending[s.BaseOffset] = true
			mu.Unlock()
		},
		Removable: func(s SegmentInfo) bool {
			mu.Lock()
			defer mu.Unlock()
			return !pending[s.BaseOffset]
		}})
	for range 6 {
		mustAppend(t, l, makeBatchN(1, 1500, clock.Now().UnixMilli()), 0)
	}
	clock.Advance(time.Hour)
	if n, err := l.Maintain(); n != 0 || err != nil {
		t.Fatalf("pending segments deleted: %d %v", n, err)
	}
	upload := func(count int) { // the oldest count pending segments
		mu.Lock()
		defer mu.Unlock()
		for _, s := range l.Segments() {
			if count > 0 && pending[s.BaseOffset] {
				delete(pending, s.BaseOffset)
				count--
			}
		}
	}
	upload(3)
	if n, _ := l.Maintain(); n != 3 || l.StartOffset() != 3 {
		t.Fatalf("after 3 uploads: deleted %d, start %d", n, l.StartOffset())
	}
	// The active segment expires too; retention rolls it, and the rolled
	// segment is pending: nothing past the uploads may go.
	upload(2)
	if n, _ := l.Maintain(); n != 2 || l.StartOffset() != 5 || l.EndOffset() != 6 {
		t.Fatalf("after 5 uploads: deleted %d, start %d, end %d", n, l.StartOffset(), l.EndOffset())
	}
	if got := readAll(t, l, 5); len(got) != 1 || got[0].BaseOffset != 5 {
		t.Fatalf("last record unreadable: %+v", got)
	}
	upload(1)
	if n, _ := l.Maintain(); n != 1 || l.StartOffset() != 6 || l.EndOffset() != 6 {
		t.Fatalf("all uploaded: deleted %d, start %d, end %d", n, l.StartOffset(), l.EndOffset())
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"defaults", func(*Config) {}, true},
		{"segment.bytes too small", func(c *Config) { c.SegmentBytes = 10 }, false},
		{"segment.bytes too large", func(c *Config) { c.SegmentBytes = 1 << 31 }, false},
		{"segment.ms zero", func(c *Config) { c.SegmentAge = 0 }, false},
		{"max.message.bytes negative", func(c *Config) { c.MaxMessageBytes = -1 }, false},
		{"index.interval.bytes negative", func(c *Config) { c.IndexIntervalBytes = -1 }, false},
		{"segment.index.bytes tiny", func(c *Config) { c.IndexMaxBytes = 8 }, false},
		{"flush.messages zero", func(c *Config) { c.FlushMessages = 0 }, false},
		{"flush.ms negative", func(c *Config) { c.FlushInterval = -1 }, false},
		{"unlimited retention", func(c *Config) { c.RetentionAge, c.RetentionBytes = -1, -1 }, true},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		tt.mod(&c)
		if err := c.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: %v", tt.name, err)
		}
		if _, err := Open(t.TempDir(), c, Options{}); (err == nil) != tt.ok {
			t.Errorf("%s: open: %v", tt.name, err)
		}
	}
}

func TestUnreadableCheckpoints(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	cfg.SegmentBytes = 2000
	l, err := Open(dir, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		mustAppend(t, l, makeBatchN(1, 1500, 0), int32(i))
	}
	if _, err := l.DeleteRecordsBefore(2); err != nil {
		t.Fatal(err)
	}
	l.Close()
	for _, name := range []string{logStartOffsetFile, recoveryPointFile, leaderEpochFile} {
		os.WriteFile(filepath.Join(dir, name), []byte("garbage\n"), 0o644)
	}
	l = openTest(t, dir, cfg, Options{})
	// The log start falls back to the first segment, the epochs are
	// rebuilt from the batches, nothing is lost.
	if l.StartOffset() != 2 || l.EndOffset() != 6 {
		t.Fatalf("start %d end %d", l.StartOffset(), l.EndOffset())
	}
	want := []EpochEntry{{2, 2}, {3, 3}, {4, 4}, {5, 5}}
	if got := l.Epochs(); !slices.Equal(got, want) {
		t.Fatalf("epochs %v, want %v", got, want)
	}
	if e, end := l.EndOffsetForEpoch(3); e != 3 || end != 4 {
		t.Fatalf("end offset for epoch 3: (%d, %d)", e, end)
	}
}

func TestAppendStaleEpochFenced(t *testing.T) {
	l := openTest(t, t.TempDir(), testConfig(), Options{})
	mustAppend(t, l, makeBatchN(1, 1, 0), 3)
	if _, err := l.Append(makeBatchN(1, 1, 0), 2); !errors.Is(err, ErrFencedLeaderEpoch) {
		t.Fatalf("stale epoch: %v", err)
	}
	if l.EndOffset() != 1 {
		t.Fatalf("end %d", l.EndOffset())
	}
}

func TestScanBatches(t *testing.T) {
	cfg := testConfig()
	cfg.SegmentBytes = 2000
	l := openTest(t, t.TempDir(), cfg, Options{})
	for range 6 {
		mustAppend(t, l, makeBatchN(3, 400, 0), 0)
	}
	var bases []int64
	if err := l.ScanBatches(7, func(h BatchHeader) bool { bases = append(bases, h.BaseOffset); return true }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(bases, []int64{6, 9, 12, 15}) {
		t.Fatalf("scan from 7: %v", bases)
	}
}
