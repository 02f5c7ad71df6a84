package testenv

import (
	"context"
	"testing"
	"time"
)

// WaitFor checks cond every interval until it holds, and fails the test
// with what() once ctx ends first: a bounded wait on a condition, where a
// fixed sleep would be slow on an idle machine and flaky on a loaded one.
func WaitFor(ctx context.Context, t testing.TB, every time.Duration, cond func() bool, what func() string) {
	t.Helper()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal(what())
		case <-tick.C:
		}
	}
}
