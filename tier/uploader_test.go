package tier_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-io/strata/meta"
	plog "github.com/strata-io/strata/node/log"
	"github.com/strata-io/strata/tier"
)

// testBatch is a one-record RecordBatch v2 holding value.
func testBatch(value []byte) []byte { return testBatchAt(value, time.Now().UnixMilli()) }

// testBatchAt is testBatch with timestamp ts.
func testBatchAt(value []byte, ts int64) []byte {
	rec := []byte{0}                  // attributes
	rec = binary.AppendVarint(rec, 0) // timestamp delta
	rec = binary.AppendVarint(rec, 0) // offset delta
	rec = binary.AppendVarint(rec, -1)
	rec = binary.AppendVarint(rec, int64(len(value)))
	rec = append(rec, value...)
	rec = binary.AppendVarint(rec, 0) // headers
	body := append(binary.AppendVarint(nil, int64(len(rec))), rec...)
	b := make([]byte, 61, 61+len(body))
	binary.BigEndian.PutUint32(b[8:], uint32(49+len(body)))
	binary.BigEndian.PutUint32(b[12:], 0xffffffff)
	b[16] = 2
	binary.BigEndian.PutUint64(b[27:], uint64(ts))
	binary.BigEndian.PutUint64(b[35:], uint64(ts))
	binary.BigEndian.PutUint64(b[43:], ^uint64(0))
	binary.BigEndian.PutUint16(b[51:], 0xffff)
	binary.BigEndian.PutUint32(b[53:], 0xffffffff)
	binary.BigEndian.PutUint32(b[57:], 1)
	b = append(b, body...)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// closedSegments writes n records of size bytes to a log that rolls every
// few records and returns its sealed segments.
func closedSegments(t *testing.T, n, size int) []plog.SegmentInfo {
	t.Helper()
	cfg := plog.DefaultConfig()
	cfg.SegmentBytes = int64(4 * (size + 80))
	l, err := plog.Open(t.TempDir(), cfg, plog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for i := range n {
		if _, err := l.Append(testBatch(fmt.Appendf(make([]byte, 0, size), "%0*d", size, i)), 0); err != nil {
			t.Fatal(err)
		}
	}
	var sealed []plog.SegmentInfo
	for _, s := range l.Segments() {
		if s.Sealed {
			sealed = append(sealed, s)
		}
	}
	return sealed
}

// fakeManifest records entries like meta's AddTierSegment: fenced by
// epoch, once per base offset unless a longer segment replaces one.
type fakeManifest struct {
	mu      sync.Mutex
	epoch   int32
	entries map[int64]meta.TierSegment
	records atomic.Int32
}

func (f *fakeManifest) Recorded(topic string, p int32, base int64) (meta.TierSegment, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.entries[base]
	return s, ok, nil
}

func (f *fakeManifest) Record(ctx context.Context, s meta.TierSegment) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.records.Add(1)
	if s.LeaderEpoch != f.epoch {
		return meta.ErrStaleEpoch
	}
	if old, ok := f.entries[s.BaseOffset]; ok && old.LastOffset >= s.LastOffset {
		return nil
	}
	f.entries[s.BaseOffset] = s
	return nil
}

// flakyStore fails every call while down.
type flakyStore struct {
	tier.Store
	down  atomic.Bool
	calls atomic.Int32
}

var errDown = errors.New("503 SlowDown")

func (f *flakyStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	f.calls.Add(1)
	if f.down.Load() {
		return errDown
	}
	return f.Store.Put(ctx, key, r, size)
}

func (f *flakyStore) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	f.calls.Add(1)
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.Get(ctx, key, off, n)
}

func newJob(seg plog.SegmentInfo, leader func() (int32, bool), done chan error) *tier.Job {
	return &tier.Job{Topic: "t", TopicID: [16]byte{0xab}, Partition: 0, Segment: seg,
		Epochs: []meta.EpochStart{{Epoch: 0, StartOffset: seg.BaseOffset}}, Leader: leader,
		Done: func(err error) { done <- err }, Ctx: context.Background()}
}

// TestUploaderRetriesThroughOutage: with the store down, uploads retry
// with backoff and nothing is given up; once it is back every segment is
// uploaded byte for byte and recorded exactly once.
func TestUploaderRetriesThroughOutage(t *testing.T) {
	dir, err := tier.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := &flakyStore{Store: dir}
	store.down.Store(true)
	m := &fakeManifest{entries: map[int64]meta.TierSegment{}}
	u := tier.NewUploader(tier.UploaderConfig{Store: store, Recorder: m, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	defer u.Close()
	segs := closedSegments(t, 40, 1000)
	done := make(chan error, len(segs))
	for _, s := range segs {
		u.Enqueue(newJob(s, func() (int32, bool) { return 0, true }, done))
	}
	for store.calls.Load() < int32(3*len(segs)) {
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("a job ended during the outage: %v", err)
	default:
	}
	st := u.Status()
	if len(st) != 1 || st[0].Pending != len(segs) || st[0].LastError == "" {
		t.Fatalf("status during the outage: %+v", st)
	}
	store.down.Store(false)
	for range segs {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if int(m.records.Load()) != len(segs) || len(m.entries) != len(segs) {
		t.Fatalf("%d records for %d segments", m.records.Load(), len(segs))
	}
	for _, s := range segs {
		e := m.entries[s.BaseOffset]
		if e.LastOffset != s.NextOffset-1 || e.SizeBytes != s.Size {
			t.Fatalf("entry %+v for segment %+v", e, s)
		}
		r, err := dir.Get(context.Background(), e.ObjectKey, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(r)
		r.Close()
		if int64(len(got)) != s.Size {
			t.Fatalf("%s: %d bytes uploaded, segment has %d", e.ObjectKey, len(got), s.Size)
		}
	}
	if st := u.Status()[0]; st.Pending != 0 || st.PendingBytes != 0 || st.UploadedOffset != segs[len(segs)-1].NextOffset {
		t.Fatalf("status after: %+v", st)
	}
}

// TestUploaderSkipsRecordedAndStopsWhenFenced: a segment already in the
// manifest is not uploaded again; a node that no longer leads stops.
func TestUploaderSkipsRecordedAndStopsWhenFenced(t *testing.T) {
	dir, _ := tier.OpenDir(t.TempDir())
	store := &flakyStore{Store: dir}
	m := &fakeManifest{entries: map[int64]meta.TierSegment{}, epoch: 3}
	u := tier.NewUploader(tier.UploaderConfig{Store: store, Recorder: m})
	defer u.Close()
	segs := closedSegments(t, 20, 1000)
	m.entries[segs[0].BaseOffset] = meta.TierSegment{BaseOffset: segs[0].BaseOffset, LastOffset: segs[0].NextOffset - 1}
	done := make(chan error, 1)
	u.Enqueue(newJob(segs[0], func() (int32, bool) { return 3, true }, done))
	if err := <-done; err != nil || store.calls.Load() != 0 || m.records.Load() != 0 {
		t.Fatalf("recorded segment: err %v, %d puts, %d records", err, store.calls.Load(), m.records.Load())
	}
	// An earlier leader's shorter segment at the same base is replaced:
	// kept, the offsets past its end could never be recorded (and the
	// local segment would never leave the disk).
	m.entries[segs[3].BaseOffset] = meta.TierSegment{BaseOffset: segs[3].BaseOffset, LastOffset: segs[3].NextOffset - 2}
	u.Enqueue(newJob(segs[3], func() (int32, bool) { return 3, true }, done))
	if err := <-done; err != nil || m.entries[segs[3].BaseOffset].LastOffset != segs[3].NextOffset-1 {
		t.Fatalf("shorter entry at the same base: err %v, manifest %+v", err, m.entries[segs[3].BaseOffset])
	}
	calls := store.calls.Load()
	u.Enqueue(newJob(segs[1], func() (int32, bool) { return -1, false }, done))
	if err := <-done; !errors.Is(err, tier.ErrNotLeader) {
		t.Fatalf("not leader: %v", err)
	}
	// An old epoch is fenced by the manifest: given up, not retried.
	u.Enqueue(newJob(segs[1], func() (int32, bool) { return 2, true }, done))
	if err := <-done; !errors.Is(err, meta.ErrStaleEpoch) {
		t.Fatalf("stale epoch: %v", err)
	}
	if calls == 0 {
		t.Fatal("the longer segment was not uploaded")
	}
	// Cancelled while the store is down.
	store.down.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	j := newJob(segs[2], func() (int32, bool) { return 3, true }, done)
	j.Ctx = ctx
	u.Enqueue(j)
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// TestUploaderEndsJobOfDeletedSegment: a segment DeleteRecords removed
// while its upload waited (its files gone, Gone true) ends its job with
// ErrSegmentGone instead of retrying forever; with Gone false a missing
// file is still retried, since nothing may be lost. The fault suite found
// a job retrying forever.
func TestUploaderEndsJobOfDeletedSegment(t *testing.T) {
	dir, err := tier.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeManifest{entries: map[int64]meta.TierSegment{}}
	u := tier.NewUploader(tier.UploaderConfig{Store: dir, Recorder: m, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	defer u.Close()
	segs := closedSegments(t, 20, 1000)
	for _, s := range segs[:2] {
		os.Remove(s.IndexPath)
		os.Remove(s.LogPath)
	}
	done := make(chan error, 2)
	var gone atomic.Bool
	for _, s := range segs[:2] {
		j := newJob(s, func() (int32, bool) { return 0, true }, done)
		j.Gone = gone.Load
		u.Enqueue(j)
	}
	// Both failed and will retry, while Gone is false.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if st := u.Status(); len(st) == 1 && st[0].Pending == 2 && strings.Contains(st[0].LastError, "no such file") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed attempt on the missing files: %+v", u.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("a job with a missing file and Gone false ended: %v", err)
	default:
	}
	gone.Store(true)
	for range 2 {
		select {
		case err := <-done:
			if !errors.Is(err, tier.ErrSegmentGone) {
				t.Fatalf("job ended with %v, want ErrSegmentGone", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a job of a deleted segment never ended")
		}
	}
	if len(m.entries) != 0 {
		t.Fatalf("deleted segments recorded: %v", m.entries)
	}
}
