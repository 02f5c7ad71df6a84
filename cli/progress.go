package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// terminalProgress rewrites one status line on w every second while a
// long produce or consume runs, only when w is a terminal: redirected
// output stays clean. stop ends it and clears the line; it may be called
// more than once.
func terminalProgress(w io.Writer, verb string, count *atomic.Int64) (stop func()) {
	f, ok := w.(*os.File)
	if !ok {
		return func() {}
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(f, "\r\033[K")
				return
			case <-t.C:
				n := count.Load()
				fmt.Fprintf(f, "\r\033[K%s %d records (%.0f/s)", verb, n, float64(n)/time.Since(start).Seconds())
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-finished }) }
}
