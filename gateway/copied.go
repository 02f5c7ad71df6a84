package gateway

import (
	"context"
	"sync"
	"time"
)

// copied is a value the gateway reads from the controller and keeps
// until a change event drops it or maxAge passes (an event may be
// missed): the SCRAM credentials, the ACLs. One read runs at a time;
// when the controller cannot be read, the last value is used rather
// than none.
type copied[T any] struct {
	read   func(context.Context) (T, error)
	maxAge time.Duration
	failed func(error) // told of a read that failed

	mu      sync.Mutex
	val     T
	have    bool // val was read once
	fresh   bool // and not dropped since
	at      time.Time
	loading chan struct{} // closed when the read under way ends
}

// invalidate drops the value: the next get reads it again.
func (c *copied[T]) invalidate() {
	c.mu.Lock()
	c.fresh = false
	c.mu.Unlock()
}

// get returns the value, reading it when stale; ok is false when it has
// never been read.
func (c *copied[T]) get(ctx context.Context) (T, bool) {
	for {
		c.mu.Lock()
		if c.have && c.fresh && time.Since(c.at) < c.maxAge {
			v := c.val
			c.mu.Unlock()
			return v, true
		}
		if wait := c.loading; wait != nil {
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				c.mu.Lock()
				v, have := c.val, c.have
				c.mu.Unlock()
				return v, have
			}
		}
		done := make(chan struct{})
		c.loading = done
		c.mu.Unlock()

		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, err := c.read(rctx)
		cancel()
		c.mu.Lock()
		c.loading = nil
		if err == nil {
			c.val, c.have, c.fresh, c.at = v, true, true, time.Now()
		} else if c.failed != nil {
			c.failed(err)
		}
		v, have := c.val, c.have
		c.mu.Unlock()
		close(done)
		return v, have
	}
}
