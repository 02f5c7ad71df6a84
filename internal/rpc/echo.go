package rpc

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Echo tells whether a process hears NATS, by its own heartbeats coming
// back: a process whose sends go out but which receives nothing (a
// one-way partition, a stalled connection) still looks alive to everyone
// by its heartbeats, while no request to it can be answered. It says so
// in its heartbeats, and the others do not count them.
type Echo struct {
	mu                  sync.Mutex
	firstSent, lastEcho time.Time
	reconnects          uint64 // the connection's count when firstSent was set
}

// Sent records a heartbeat sent at now.
func (e *Echo) Sent(now time.Time) {
	e.mu.Lock()
	if e.firstSent.IsZero() {
		e.firstSent = now
	}
	e.mu.Unlock()
}

// Heard records one of the process's own heartbeats coming back.
func (e *Echo) Heard(now time.Time) {
	e.mu.Lock()
	e.lastEcho = now
	e.mu.Unlock()
}

// Deaf reports whether no heartbeat of its own has come back for after,
// once it has sent for that long on nc's current connection. A process
// that is not connected is not deaf: its heartbeats wait in the client's
// buffer and go out, saying it lives, on reconnecting.
func (e *Echo) Deaf(nc *nats.Conn, now time.Time, after time.Duration) bool {
	if !nc.IsConnected() {
		return false
	}
	reconnects := nc.Stats().Reconnects
	e.mu.Lock()
	defer e.mu.Unlock()
	if reconnects != e.reconnects {
		e.reconnects, e.firstSent = reconnects, now
	}
	return !e.firstSent.IsZero() && now.Sub(e.firstSent) > after && now.Sub(e.lastEcho) > after
}
