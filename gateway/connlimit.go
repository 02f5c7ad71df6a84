package gateway

import (
	"net"
	"sync"
	"time"
)

// connLimits bounds a gateway's client connections: in all
// (max.connections: the listener stops accepting until one closes) and
// per client address (max.connections.per.ip and its overrides: one
// more is closed at once), as Kafka's broker does.
type connLimits struct {
	max, perIP int            // 0: unbounded
	overrides  map[string]int // per-IP limit by host, over perIP
	mu         sync.Mutex
	room       *sync.Cond
	total      int
	byIP       map[string]int
	closed     bool
	lastWarn   time.Time
}

func newConnLimits(max, perIP int, overrides map[string]int) *connLimits {
	l := &connLimits{max: max, perIP: perIP, overrides: overrides, byIP: map[string]int{}}
	l.room = sync.NewCond(&l.mu)
	return l
}

// waitRoom blocks while the gateway holds max connections; false once
// the gateway closes.
func (l *connLimits) waitRoom() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.max > 0 && l.total >= l.max && !l.closed {
		l.room.Wait()
	}
	return !l.closed
}

// admit counts a new connection from addr, or refuses it when that
// address already holds its limit. warn says whether to log the refusal
// (at most once a second).
func (l *connLimits) admit(addr net.Addr) (ok, warn bool) {
	ip := hostOf(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	limit, set := l.overrides[ip]
	if !set {
		limit = l.perIP
	}
	if set || limit > 0 {
		if l.byIP[ip] >= limit {
			now := time.Now()
			warn = now.Sub(l.lastWarn) >= time.Second
			if warn {
				l.lastWarn = now
			}
			return false, warn
		}
	}
	l.byIP[ip]++
	l.total++
	return true, false
}

// done gives back a connection admit counted.
func (l *connLimits) done(addr net.Addr) {
	ip := hostOf(addr)
	l.mu.Lock()
	if l.byIP[ip]--; l.byIP[ip] <= 0 {
		delete(l.byIP, ip)
	}
	l.total--
	l.mu.Unlock()
	l.room.Signal()
}

func (l *connLimits) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.room.Broadcast()
}

func hostOf(addr net.Addr) string {
	if a, ok := addr.(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	return host
}
