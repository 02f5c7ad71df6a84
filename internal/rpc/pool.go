package rpc

import (
	"sync"

	"github.com/nats-io/nats.go"
)

// Pool answers NATS messages each on its own goroutine, at most a bound at
// once. NATS hands a subscription's messages to its handler one at a time;
// without this, one slow request (a long-polling fetch, a proposal waiting
// for Raft) would hold up every other.
type Pool struct {
	sem    chan struct{}
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// NewPool bounds concurrent handlers to n.
func NewPool(n int) *Pool { return &Pool{sem: make(chan struct{}, n)} }

// Wrap returns a handler that runs h in the pool; after Close it drops
// messages.
func (p *Pool) Wrap(h nats.MsgHandler) nats.MsgHandler {
	return func(msg *nats.Msg) {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		p.wg.Add(1)
		p.mu.Unlock()
		p.sem <- struct{}{}
		go func() {
			defer p.wg.Done()
			defer func() { <-p.sem }()
			h(msg)
		}()
	}
}

// Close stops taking messages and waits for the running handlers.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.wg.Wait()
}
