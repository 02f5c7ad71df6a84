package node

import (
	"context"
	"testing"
	"time"
)

// TestPacer: the cleaner's pacer holds reads to its rate, and an idle
// spell before does not let a burst through.
func TestPacer(t *testing.T) {
	p := newPacer(100e6)
	p.started = time.Now().Add(-1200 * time.Millisecond) // idle that long: no saved-up allowance
	start := time.Now()
	for range 50 {
		p.wait(context.Background(), 1e6) // 50 MB at 100 MB/s: half a second
	}
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Fatalf("50 MB went through in %v at 100 MB/s", took)
	}
	unpaced := newPacer(0)
	start = time.Now()
	for range 1000 {
		unpaced.wait(context.Background(), 1e9)
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Fatalf("an unlimited pacer waited %v", took)
	}
}
