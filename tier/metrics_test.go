package tier

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestInstrumentedStoreCounts(t *testing.T) {
	dir, err := OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s := Instrument(dir, NewStoreMetrics(reg, S3StandardPrices))
	if _, ok := s.(PartialSweeper); !ok {
		t.Fatal("a directory store sweeps partial writes; instrumented, it must still")
	}
	ctx := context.Background()
	if err := s.Put(ctx, "a", strings.NewReader("hello"), 5); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(ctx, "a", 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if _, err := s.Get(ctx, "missing", 0, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get of a missing object: %v", err)
	}
	for _, c := range []struct {
		op, status string
		want       float64
	}{{"put", "ok", 1}, {"get", "ok", 1}, {"get", "not_found", 1}} {
		m, err := s.(*instrumentedSweeper).m.requests.GetMetricWithLabelValues(c.op, c.status)
		if err != nil {
			t.Fatal(err)
		}
		if got := testutil.ToFloat64(m); got != c.want {
			t.Errorf("%s %s: %v requests, want %v", c.op, c.status, got, c.want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "strata_tier_store_request_duration_seconds"); err != nil || n != 2 {
		t.Errorf("latency series: %d, %v", n, err)
	}
	// One PUT and two GETs (a miss is billed too) at S3 Standard prices.
	for op, want := range map[string]float64{"put": 0.005 / 1000, "get": 2 * 0.0004 / 1000} {
		m, err := s.(*instrumentedSweeper).m.cost.GetMetricWithLabelValues(op)
		if err != nil {
			t.Fatal(err)
		}
		if got := testutil.ToFloat64(m); math.Abs(got-want) > 1e-12 {
			t.Errorf("%s cost $%g, want $%g", op, got, want)
		}
	}
}
