package log

import (
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestRetentionKeepsUncoveredRandom drives a log with a seeded random mix
// of appends (some failing on a full disk), clock moves, maintenance,
// uploads to a model bucket (some failing), DeleteRecordsBefore, config
// changes, high watermark moves and restarts, with Removable answering
// as a tiered partition does: removable once the "manifest" covers the
// segment, or below the deleted-on-purpose start.
//
// The checker: after every step the local log starts at or below what is
// covered, and at the end of each round every acknowledged batch at or
// past the deleted start reads back, from the bucket model or the disk,
// exactly as appended. STRATA_SEED replays a seed; STRATA_RETENTION_ROUNDS
// sets the rounds.
func TestRetentionKeepsUncoveredRandom(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("STRATA_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	rounds := 8
	if s := os.Getenv("STRATA_RETENTION_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	t.Logf("seed %d (STRATA_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	for round := range rounds {
		m := newRetentionModel(t, rng)
		for step := range 400 {
			m.step()
			if err := m.checkBoundary(); err != nil {
				t.Fatalf("seed %d round %d step %d: %v\nlast actions: %v", seed, round, step, err, m.trail)
			}
		}
		m.checkAll()
		m.l.Close()
	}
}

// retentionModel is the checker's view: what was acknowledged, what the
// bucket holds, what was deleted on purpose.
type retentionModel struct {
	t     *testing.T
	rng   *rand.Rand
	dir   string
	fs    *faultFS
	clock *manualClock
	cfg   Config
	l     *Log

	mu      sync.Mutex // Removable runs under the log's lock; the model's fields it reads
	covered int64      // one past the last uploaded offset
	deleted int64      // DeleteRecordsBefore's highest offset

	acked  map[int64]batchID // base offset -> batch, every acknowledged append
	remote map[int64]batchID // uploaded batches
	hw     int64             // the high watermark set; -1 none
	trail  []string          // the last actions, for a failure message
}

type batchID struct {
	last int64
	crc  uint32
}

func newRetentionModel(t *testing.T, rng *rand.Rand) *retentionModel {
	m := &retentionModel{t: t, rng: rng, dir: t.TempDir(), fs: newFaultFS(), clock: newManualClock(),
		acked: map[int64]batchID{}, remote: map[int64]batchID{}, hw: -1}
	m.fs.writeErr = syscall.ENOSPC
	m.cfg = testConfig()
	m.cfg.SegmentBytes = int64(3000 + rng.IntN(6000))
	m.cfg.RetentionAge = time.Duration(rng.IntN(3)) * time.Minute
	m.cfg.RetentionBytes = int64(rng.IntN(2)) * int64(rng.IntN(8000))
	m.open()
	return m
}

func (m *retentionModel) open() {
	m.t.Helper()
	l, err := Open(m.dir, m.cfg, Options{FS: m.fs, Clock: m.clock, Removable: func(s SegmentInfo) bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return s.NextOffset <= max(m.covered, m.deleted)
	}})
	if err != nil {
		m.t.Fatalf("open: %v", err)
	}
	m.l = l
	if m.hw >= 0 {
		l.SetHighWatermark(min(m.hw, l.EndOffset()))
	}
}

func (m *retentionModel) note(s string) {
	if len(m.trail) == 12 {
		m.trail = m.trail[1:]
	}
	m.trail = append(m.trail, s)
}

func (m *retentionModel) step() {
	t, l, rng := m.t, m.l, m.rng
	switch k := rng.IntN(100); {
	case k < 40: // append, sometimes onto a full disk
		full := rng.IntN(10) == 0
		if full {
			m.fs.writeBudget.Store(int64(rng.IntN(200)))
		}
		b := makeBatchN(1+rng.IntN(4), 50+rng.IntN(600), m.clock.Now().UnixMilli())
		res, err := l.Append(b, 0)
		m.fs.writeBudget.Store(-1)
		switch {
		case err == nil:
			h := mustHeader(t, b)
			m.acked[res.FirstOffset] = batchID{res.LastOffset, h.CRC}
			m.note("append " + strconv.FormatInt(res.FirstOffset, 10))
		case full && errors.Is(err, ErrIO):
			m.note("append: disk full")
		default:
			t.Fatalf("append: %v", err)
		}
	case k < 55:
		d := time.Duration(rng.IntN(90)) * time.Second
		m.clock.Advance(d)
		n, err := l.Maintain()
		if err != nil {
			t.Fatalf("maintain: %v", err)
		}
		m.note("clock +" + d.String() + ", maintain deleted " + strconv.Itoa(n))
	case k < 70:
		if rng.IntN(4) == 0 {
			m.note("upload failed")
			return
		}
		m.upload()
	case k < 78: // the replica layer moves the high watermark
		// It never moves back.
		m.hw = min(max(m.hw, l.StartOffset()+rng.Int64N(l.EndOffset()-l.StartOffset()+1)), l.EndOffset())
		l.SetHighWatermark(m.hw)
		m.note("hw " + strconv.FormatInt(m.hw, 10))
	case k < 83:
		hw := l.EndOffset()
		if m.hw >= 0 {
			hw = min(m.hw, hw)
		}
		to := l.StartOffset() + rng.Int64N(hw-l.StartOffset()+1)
		// As the node does: meta's start first, then the log's.
		m.mu.Lock()
		m.deleted = max(m.deleted, to)
		m.mu.Unlock()
		if _, err := l.DeleteRecordsBefore(to); err != nil {
			t.Fatalf("delete records before %d: %v", to, err)
		}
		m.note("delete records before " + strconv.FormatInt(to, 10))
	case k < 88:
		cfg := m.cfg
		cfg.RetentionAge = time.Duration(rng.IntN(4)) * time.Minute
		cfg.RetentionBytes = int64(rng.IntN(8000))
		if err := l.SetConfig(cfg); err != nil {
			t.Fatal(err)
		}
		m.cfg = cfg
		m.note("config " + cfg.RetentionAge.String() + " " + strconv.FormatInt(cfg.RetentionBytes, 10))
	case k < 93:
		if err := l.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		m.open()
		m.note("restart")
	default:
		n, err := l.Maintain()
		if err != nil {
			t.Fatalf("maintain: %v", err)
		}
		m.note("maintain deleted " + strconv.Itoa(n))
	}
}

// upload copies the oldest closed segment the bucket lacks, below the
// high watermark, as the node's uploader does.
func (m *retentionModel) upload() {
	l := m.l
	hw := l.EndOffset()
	if m.hw >= 0 {
		hw = min(hw, m.hw)
	}
	for _, s := range l.Segments() {
		if !s.Sealed || s.NextOffset <= max(m.covered, m.deleted) {
			continue
		}
		if s.NextOffset > hw {
			return
		}
		for _, h := range readAll(m.t, l, max(s.BaseOffset, l.StartOffset())) {
			if h.BaseOffset >= s.NextOffset {
				break
			}
			m.remote[h.BaseOffset] = batchID{h.LastOffset(), h.CRC}
		}
		m.mu.Lock()
		m.covered = s.NextOffset
		m.mu.Unlock()
		m.note("upload up to " + strconv.FormatInt(s.NextOffset, 10))
		return
	}
}

// checkBoundary: nothing between what is covered and the local start is
// missing.
func (m *retentionModel) checkBoundary() error {
	m.mu.Lock()
	safe := max(m.covered, m.deleted)
	m.mu.Unlock()
	if start := m.l.StartOffset(); start > safe {
		return errors.New("local log starts at " + strconv.FormatInt(start, 10) + ", past what the bucket covers and what was deleted: " + strconv.FormatInt(safe, 10))
	}
	return nil
}

// checkAll reads every acknowledged batch at or past the deleted start
// back, from the bucket model below the local start, from the log above.
func (m *retentionModel) checkAll() {
	t := m.t
	local := map[int64]batchID{}
	for _, h := range readAll(t, m.l, m.l.StartOffset()) {
		local[h.BaseOffset] = batchID{h.LastOffset(), h.CRC}
	}
	for base, want := range m.acked {
		if want.last < m.deleted {
			continue
		}
		got, ok := local[base]
		if want.last < m.l.StartOffset() {
			got, ok = m.remote[base]
		}
		if !ok || got != want {
			t.Fatalf("batch at %d: %+v, %v; want %+v (local start %d, covered %d, deleted %d)",
				base, got, ok, want, m.l.StartOffset(), m.covered, m.deleted)
		}
	}
}
