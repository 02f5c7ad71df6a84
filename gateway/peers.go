package gateway

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/strata-io/strata/internal/rpc"
)

// Gateways find each other through heartbeats on
// strata.<cluster>.gateway.heartbeat, so Metadata can list every live
// gateway as a broker and spread partition "leadership" over them.
const (
	peerInterval = time.Second
	// peerExpiry is how long a gateway stays listed after its last
	// heartbeat; one that shuts down says so and is dropped at once.
	peerExpiry = 3 * peerInterval
)

func gatewayHeartbeatSubject(cluster string) string {
	return "strata." + cluster + ".gateway.heartbeat"
}

// peerBeat is one gateway heartbeat.
type peerBeat struct {
	ID   int32  `json:"id"`
	Host string `json:"host"`
	Port int32  `json:"port"`
	// Listeners are its advertised address on each listener, by name
	// (Host and Port are the first's).
	Listeners map[string]string `json:"listeners,omitempty"`
	Leaving   bool              `json:"leaving,omitempty"`
	// Gateways says it lists the gateways as brokers
	// (Config.BrokersAreGateways), not the nodes. Gateways of one
	// cluster should agree: a client told one thing by one and another
	// by the next goes where it was not meant to.
	Gateways bool `json:"gateways,omitempty"`
	// Deaf says the gateway has not heard its own heartbeats come back:
	// it sends on NATS but receives nothing, so no request through it
	// can be answered. Other gateways stop listing it.
	Deaf bool `json:"deaf,omitempty"`
}

// peer is a gateway as Metadata lists it.
type peer struct {
	id        int32
	host      string
	port      int32
	listeners map[string]string
}

// on is the peer's address on the listener named name: ok false when it
// has no such listener. A peer that names no listeners has one, at its
// host and port.
func (p peer) on(name string) (host string, port int32, ok bool) {
	if len(p.listeners) == 0 {
		return p.host, p.port, true
	}
	a, ok := p.listeners[name]
	if !ok {
		return "", 0, false
	}
	h, ps, err := net.SplitHostPort(a)
	if err != nil {
		return "", 0, false
	}
	n, err := strconv.Atoi(ps)
	if err != nil {
		return "", 0, false
	}
	return h, int32(n), true
}

// peers tracks the live gateways, this one included.
type peers struct {
	self     peerBeat
	conn     *nats.Conn
	subject  string
	conflict func(other string) // another gateway claims this id
	mismatch func(id int32)     // another gateway lists brokers the other way
	warned   map[string]bool
	mu       sync.Mutex
	seen     map[int32]seenPeer
	sub      *nats.Subscription
	stop     chan struct{}
	done     chan struct{}
	echo     rpc.Echo // this gateway's own heartbeats coming back (peerBeat.Deaf)
}

type seenPeer struct {
	peer
	at time.Time
}

func startPeers(conn *nats.Conn, cluster string, self peerBeat, conflict func(other string), mismatch func(id int32)) (*peers, error) {
	p := &peers{self: self, conn: conn, subject: gatewayHeartbeatSubject(cluster), conflict: conflict, mismatch: mismatch,
		warned: map[string]bool{}, seen: map[int32]seenPeer{}, stop: make(chan struct{}), done: make(chan struct{})}
	var err error
	p.sub, err = conn.Subscribe(p.subject, p.onBeat)
	if err != nil {
		return nil, err
	}
	p.publish(false)
	go p.loop()
	return p, nil
}

func (p *peers) onBeat(m *nats.Msg) {
	var b peerBeat
	if json.Unmarshal(m.Data, &b) != nil {
		return
	}
	if b.ID == p.self.ID && b.Host == p.self.Host && b.Port == p.self.Port {
		p.echo.Heard(time.Now())
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if b.Leaving {
		if s, ok := p.seen[b.ID]; ok && s.host == b.Host && s.port == b.Port {
			delete(p.seen, b.ID)
		}
		return
	}
	if b.Deaf {
		return // it is there, but hears nothing: not live
	}
	if b.ID == p.self.ID {
		if other := addr(b.Host, b.Port); !p.warned[other] && p.conflict != nil {
			p.warned[other] = true
			p.conflict(other)
		}
		return
	}
	if b.Gateways != p.self.Gateways && !p.warned[mismatchKey(b.ID)] && p.mismatch != nil {
		p.warned[mismatchKey(b.ID)] = true
		p.mismatch(b.ID)
	}
	p.seen[b.ID] = seenPeer{peer{b.ID, b.Host, b.Port, b.Listeners}, time.Now()}
}

func mismatchKey(id int32) string { return "brokers/" + strconv.Itoa(int(id)) }

func addr(host string, port int32) string {
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// addListener advertises one more of this gateway's listeners.
func (p *peers) addListener(name, addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ls := make(map[string]string, len(p.self.Listeners)+1)
	for k, v := range p.self.Listeners {
		ls[k] = v
	}
	ls[name] = addr
	p.self.Listeners = ls
}

func (p *peers) publish(leaving bool) {
	now := time.Now()
	p.echo.Sent(now)
	p.mu.Lock()
	b := p.self
	p.mu.Unlock()
	b.Leaving, b.Deaf = leaving, p.echo.Deaf(p.conn, now, peerExpiry)
	data, _ := json.Marshal(b)
	p.conn.Publish(p.subject, data)
}

func (p *peers) loop() {
	defer close(p.done)
	t := time.NewTicker(peerInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.publish(false)
		}
	}
}

// close says this gateway is leaving and stops its heartbeats.
func (p *peers) close() {
	close(p.stop)
	<-p.done
	p.sub.Unsubscribe()
	p.publish(true)
	if p.conn.IsConnected() { // a gateway stopping while NATS is away need not wait for it
		p.conn.FlushTimeout(time.Second)
	}
}

// live lists the live gateways by id, this one included.
func (p *peers) live() []peer {
	now := time.Now()
	p.mu.Lock()
	out := []peer{{p.self.ID, p.self.Host, p.self.Port, p.self.Listeners}}
	for id, s := range p.seen {
		if now.Sub(s.at) > peerExpiry {
			delete(p.seen, id)
			continue
		}
		out = append(out, s.peer)
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b peer) int { return int(a.id) - int(b.id) })
	return out
}

// pickIndex spreads keys over n brokers: every gateway that sees the
// same set picks the same one for a key.
func pickIndex(n int, key string, partition int32) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int((h.Sum32() + uint32(partition)) % uint32(n))
}

// liveOn lists the live gateways as a client on the request's listener
// must reach them: at their address on a listener of the same name,
// those without one left out (as Kafka lists brokers per listener).
func (g *Gateway) liveOn(ctx context.Context) []peer {
	all := g.peers.live()
	s := sessionOf(ctx)
	if s == nil {
		return all
	}
	out := all[:0]
	for _, p := range all {
		if host, port, ok := p.on(s.listener.Name); ok {
			p.host, p.port = host, port
			out = append(out, p)
		}
	}
	return out
}
