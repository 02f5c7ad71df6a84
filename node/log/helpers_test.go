package log

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testRecord is one record for makeBatch.
type testRecord struct {
	key, value []byte
	tsDelta    int64
	headers    [][2][]byte
}

// makeBatch encodes an uncompressed RecordBatch v2 with base offset 0 and
// leader epoch -1, as a producer sends it.
func makeBatch(baseTimestamp int64, recs ...testRecord) []byte {
	var body []byte
	maxTs := baseTimestamp
	for i, r := range recs {
		var rec []byte
		rec = append(rec, 0) // attributes
		rec = binary.AppendVarint(rec, r.tsDelta)
		rec = binary.AppendVarint(rec, int64(i))
		rec = appendVarBytes(rec, r.key)
		rec = appendVarBytes(rec, r.value)
		rec = binary.AppendVarint(rec, int64(len(r.headers)))
		for _, h := range r.headers {
			rec = appendVarBytes(rec, h[0])
			rec = appendVarBytes(rec, h[1])
		}
		body = binary.AppendVarint(body, int64(len(rec)))
		body = append(body, rec...)
		maxTs = max(maxTs, baseTimestamp+r.tsDelta)
	}
	return frameBatch(0, baseTimestamp, maxTs, int32(len(recs)), body)
}

// frameBatch wraps a records body in a batch header with the given
// attributes (compression codec in the low bits) and a correct CRC.
func frameBatch(attributes int16, baseTimestamp, maxTimestamp int64, count int32, body []byte) []byte {
	b := make([]byte, BatchHeaderBytes, BatchHeaderBytes+len(body))
	be := binary.BigEndian
	be.PutUint64(b[offBaseOffset:], 0)
	be.PutUint32(b[offBatchLength:], uint32(BatchHeaderBytes-batchLengthOverhead+len(body)))
	be.PutUint32(b[offLeaderEpoch:], 0xffffffff)
	b[offMagic] = 2
	be.PutUint16(b[offAttributes:], uint16(attributes))
	be.PutUint32(b[offLastOffsetDelta:], uint32(count-1))
	be.PutUint64(b[offBaseTimestamp:], uint64(baseTimestamp))
	be.PutUint64(b[offMaxTimestamp:], uint64(maxTimestamp))
	be.PutUint64(b[offProducerID:], 0xffffffffffffffff)
	be.PutUint16(b[offProducerEpoch:], 0xffff)
	be.PutUint32(b[offBaseSequence:], 0xffffffff)
	be.PutUint32(b[offRecordCount:], uint32(count))
	b = append(b, body...)
	be.PutUint32(b[offCRC:], crc32.Checksum(b[crcStart:], castagnoli))
	return b
}

func appendVarBytes(b, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(b, -1)
	}
	b = binary.AppendVarint(b, int64(len(v)))
	return append(b, v...)
}

// makeBatchN makes a batch of n records of valueBytes each, all stamped ts.
func makeBatchN(n, valueBytes int, ts int64) []byte {
	recs := make([]testRecord, n)
	for i := range recs {
		v := make([]byte, valueBytes)
		for j := range v {
			v[j] = byte(i + j)
		}
		recs[i] = testRecord{key: []byte{byte(i)}, value: v}
	}
	return makeBatch(ts, recs...)
}

// manualClock is a Clock tests move by hand.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func newManualClock() *manualClock { return &manualClock{now: time.UnixMilli(1_700_000_000_000)} }

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// faultFS wraps the real file system and injects write and sync errors
// into .log files.
type faultFS struct {
	OSFS
	// writeBudget is how many more bytes .log writes may store; past it a
	// write stores what fits and returns writeErr. Negative: unlimited.
	writeBudget atomic.Int64
	writeErr    error
	syncErr     atomic.Pointer[error]
	syncs       atomic.Int64
}

func newFaultFS() *faultFS {
	f := &faultFS{}
	f.writeBudget.Store(-1)
	return f
}

func (f *faultFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	file, err := f.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f, isLog: len(name) > 4 && name[len(name)-4:] == ".log"}, nil
}

type faultFile struct {
	File
	fs    *faultFS
	isLog bool
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if !f.isLog {
		return f.File.WriteAt(p, off)
	}
	budget := f.fs.writeBudget.Load()
	if budget < 0 || int64(len(p)) <= budget {
		if budget >= 0 {
			f.fs.writeBudget.Add(-int64(len(p)))
		}
		return f.File.WriteAt(p, off)
	}
	n, _ := f.File.WriteAt(p[:budget], off)
	f.fs.writeBudget.Store(0)
	return n, f.fs.writeErr
}

func (f *faultFile) Sync() error {
	if f.isLog {
		f.fs.syncs.Add(1)
		if p := f.fs.syncErr.Load(); p != nil {
			return *p
		}
	}
	return f.File.Sync()
}

// testConfig is a small-segment config for tests.
func testConfig() Config {
	c := DefaultConfig()
	c.SegmentBytes = 64 << 10
	c.IndexIntervalBytes = 1024
	c.RetentionAge = -1
	return c
}

func openTest(t testing.TB, dir string, cfg Config, opts Options) *Log {
	t.Helper()
	l, err := Open(dir, cfg, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func mustAppend(t testing.TB, l *Log, batch []byte, epoch int32) AppendResult {
	t.Helper()
	res, err := l.Append(batch, epoch)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return res
}

// readAll reads every batch from offset to the log end and returns their
// headers, checking each batch's frame and CRC.
func readAll(t testing.TB, l *Log, from int64) []BatchHeader {
	t.Helper()
	var out []BatchHeader
	for off := from; off < l.EndOffset(); {
		data, err := l.Read(nil, off, 1<<20, -1)
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		if len(data) == 0 {
			t.Fatalf("read %d: nothing, log end %d", off, l.EndOffset())
		}
		for len(data) > 0 {
			h, err := checkStoredBatch(data[:min(len(data), int(mustHeader(t, data).Size()))])
			if err != nil {
				t.Fatalf("read %d: %v", off, err)
			}
			out = append(out, h)
			data = data[h.Size():]
			off = h.LastOffset() + 1
		}
	}
	return out
}

func mustHeader(t testing.TB, b []byte) BatchHeader {
	t.Helper()
	h, err := ParseBatchHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
