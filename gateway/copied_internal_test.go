package gateway

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCopied: a value is read once however many ask at once, kept until
// invalidated, read again after, and kept when a read fails; with none
// ever read, get says so.
func TestCopied(t *testing.T) {
	var reads atomic.Int32
	var fail atomic.Bool
	release := make(chan struct{})
	c := copied[int]{maxAge: time.Hour, read: func(ctx context.Context) (int, error) {
		n := reads.Add(1)
		<-release
		if fail.Load() {
			return 0, errors.New("controller away")
		}
		return int(n), nil
	}}
	fail.Store(true)
	close(release)
	if _, ok := c.get(context.Background()); ok {
		t.Fatal("a value before any read succeeded")
	}
	fail.Store(false)
	release = make(chan struct{})
	var wg sync.WaitGroup
	got := make([]int, 8)
	for i := range got {
		wg.Add(1)
		go func() { defer wg.Done(); got[i], _ = c.get(context.Background()) }()
	}
	time.Sleep(50 * time.Millisecond) // all eight asking
	close(release)
	wg.Wait()
	if reads.Load() != 2 {
		t.Fatalf("%d reads for eight askers at once, want one (after the failed one)", reads.Load()-1)
	}
	for _, v := range got {
		if v != 2 {
			t.Fatalf("askers got %v", got)
		}
	}
	if v, _ := c.get(context.Background()); v != 2 || reads.Load() != 2 {
		t.Fatalf("a fresh value read again: %d after %d reads", v, reads.Load())
	}
	c.invalidate()
	fail.Store(true)
	if v, ok := c.get(context.Background()); !ok || v != 2 {
		t.Fatalf("with the controller away after an invalidation: %d %v, want the stale 2", v, ok)
	}
	fail.Store(false)
	if v, _ := c.get(context.Background()); v != 4 {
		t.Fatalf("after the controller is back: %d, want a new read", v)
	}
}
