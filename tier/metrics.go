package tier

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// StoreMetrics counts a process's object-store requests by operation
// (put, get, delete, list) and outcome (ok, not_found, error), and times
// them: what an operator needs to see a store that is slow or failing,
// and what a bill is made of.
type StoreMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bytes    *prometheus.CounterVec
}

// NewStoreMetrics registers the metrics on reg (nil: kept, not
// exported).
func NewStoreMetrics(reg prometheus.Registerer) *StoreMetrics {
	m := &StoreMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_tier_store_requests_total",
			Help: "Object-store requests, by operation and outcome (ok, not_found, error)."}, []string{"op", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "strata_tier_store_request_duration_seconds",
			Help:    "Object-store request latency, to the first byte for a get, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}, []string{"op"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_tier_store_bytes_total",
			Help: "Bytes sent to (put) and asked of (get) the object store."}, []string{"op"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.bytes)
	}
	return m
}

// Instrument returns s counting its requests in m. A store that sweeps
// partial writes still does.
func Instrument(s Store, m *StoreMetrics) Store {
	if m == nil {
		return s
	}
	is := &instrumented{Store: s, m: m}
	if sw, ok := s.(PartialSweeper); ok {
		return &instrumentedSweeper{is, sw}
	}
	return is
}

type instrumented struct {
	Store
	m *StoreMetrics
}

type instrumentedSweeper struct {
	*instrumented
	sw PartialSweeper
}

func (s *instrumentedSweeper) SweepPartial(ctx context.Context, before time.Time) (int, error) {
	return s.sw.SweepPartial(ctx, before)
}

func (s *instrumented) observe(op string, start time.Time, err error) {
	status := "ok"
	switch {
	case errors.Is(err, ErrNotFound):
		status = "not_found"
	case err != nil:
		status = "error"
	}
	s.m.requests.WithLabelValues(op, status).Inc()
	s.m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (s *instrumented) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	start := time.Now()
	err := s.Store.Put(ctx, key, r, size)
	s.observe("put", start, err)
	if err == nil {
		s.m.bytes.WithLabelValues("put").Add(float64(size))
	}
	return err
}

func (s *instrumented) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := s.Store.Get(ctx, key, offset, length)
	s.observe("get", start, err)
	if err == nil && length > 0 {
		s.m.bytes.WithLabelValues("get").Add(float64(length))
	}
	return rc, err
}

func (s *instrumented) Delete(ctx context.Context, keys ...string) error {
	start := time.Now()
	err := s.Store.Delete(ctx, keys...)
	s.observe("delete", start, err)
	return err
}

func (s *instrumented) List(ctx context.Context, prefix string, fn func(Object) error) error {
	start := time.Now()
	err := s.Store.List(ctx, prefix, fn)
	s.observe("list", start, err)
	return err
}
