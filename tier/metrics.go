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
	cost     *prometheus.CounterVec
	prices   Prices
}

// Prices are what the object store charges per request, in dollars per
// 1,000 requests of each kind, for strata_tier_store_cost_dollars_total:
// an estimate from the requests this process made, not a bill (a list
// is counted as one request however many pages it reads; failed requests
// are not counted).
type Prices struct {
	Put, Get, List, Delete float64
}

// S3StandardPrices are Amazon S3 Standard's request prices in us-east-1:
// PUT and LIST $0.005, GET $0.0004 per 1,000; DELETE free.
var S3StandardPrices = Prices{Put: 0.005, Get: 0.0004, List: 0.005}

func (p Prices) of(op string) float64 {
	switch op {
	case "put":
		return p.Put / 1000
	case "get":
		return p.Get / 1000
	case "list":
		return p.List / 1000
	case "delete":
		return p.Delete / 1000
	}
	return 0
}

// NewStoreMetrics registers the metrics on reg (nil: kept, not
// exported), estimating request cost at prices.
func NewStoreMetrics(reg prometheus.Registerer, prices Prices) *StoreMetrics {
	m := &StoreMetrics{prices: prices,
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_tier_store_cost_dollars_total",
			Help: "Estimated object-store request cost in dollars, by operation, at the configured prices (--tier-price-*)."}, []string{"op"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_tier_store_requests_total",
			Help: "Object-store requests, by operation and outcome (ok, not_found, error)."}, []string{"op", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "strata_tier_store_request_duration_seconds",
			Help:    "Object-store request latency, to the first byte for a get, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}, []string{"op"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_tier_store_bytes_total",
			Help: "Bytes sent to (put) and asked of (get) the object store."}, []string{"op"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.bytes, m.cost)
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
	if status != "error" {
		s.m.cost.WithLabelValues(op).Add(s.m.prices.of(op))
	}
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
