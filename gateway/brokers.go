package gateway

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/strata-io/strata/meta"
)

// Clients are told of the nodes as brokers, so that a partition's leader
// is among its replicas and ISR, as Kafka's tools check. Any gateway
// routes any request, so a node's broker entry carries the address of a
// gateway: on each listener, every gateway holds one port per node id
// (a "node port", advertised in its heartbeats as NAME@id), and a client
// is given, for each node, the node port of one live gateway chosen by
// rendezvous hash of the client's host and the node id. Clients keyed by
// address (librdkafka) then see one address per broker, and the
// connections of many clients spread over every gateway.

// broker is a node as a client is told of it.
type broker struct {
	id   int32
	host string
	port int32
	rack string
}

// rackOrNil is the broker's rack as Metadata carries it: nil for none.
func (b broker) rackOrNil() *string {
	if b.rack == "" {
		return nil
	}
	rack := b.rack
	return &rack
}

// nodeListenerName names a listener's node port for node id in
// heartbeats.
func nodeListenerName(listener string, id int32) string {
	return listener + "@" + strconv.Itoa(int(id))
}

// brokers lists the nodes of snap as brokers for the client of ctx, and
// the id Metadata should name as controller. With no node known yet it
// lists the live gateways themselves, so a client can still bootstrap.
func (g *Gateway) brokers(ctx context.Context, snap *snapshot) (out []broker, controller int32, nodes bool) {
	if snap == nil || len(snap.nodes) == 0 || g.cfg.BrokersAreGateways {
		for _, p := range g.liveOn(ctx) {
			out = append(out, broker{id: p.id, host: p.host, port: p.port})
		}
		return out, g.cfg.ID, false
	}
	g.openNodePorts(snap.nodes)
	l := g.listeners[0]
	client := ""
	if s := sessionOf(ctx); s != nil {
		l, client = s.listener, hostOf(s.remote)
	}
	live := g.peers.live()
	for _, n := range snap.nodes {
		name := nodeListenerName(l.Name, n.ID)
		var best uint64
		var at *peer
		for i := range live {
			p := &live[i]
			if _, ok := p.listeners[name]; !ok {
				continue
			}
			if w := rendezvous(client, p.id, n.ID); at == nil || w > best {
				best, at = w, p
			}
		}
		if at == nil {
			continue // no live gateway has a port for it yet on this listener
		}
		host, port, ok := at.on(name)
		if !ok {
			continue
		}
		out = append(out, broker{id: n.ID, host: host, port: port, rack: n.Rack})
	}
	controller = -1
	if len(out) > 0 {
		controller = out[0].id
		if slices.ContainsFunc(out, func(b broker) bool { return b.id == snap.controller }) {
			controller = snap.controller
		}
	}
	return out, controller, true
}

// rendezvous weighs gateway gw for a client's connections to node: the
// heaviest live gateway wins, so a gateway that leaves moves only its own
// share and every gateway answers the same.
func rendezvous(client string, gw, node int32) uint64 {
	h := fnv.New64a()
	h.Write([]byte(client))
	var b [8]byte
	binary.BigEndian.PutUint32(b[:4], uint32(gw))
	binary.BigEndian.PutUint32(b[4:], uint32(node))
	h.Write(b[:])
	// FNV mixes its last bytes poorly: finish with a 64-bit mixer.
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// coordinator names the broker for a group or transactional id: the
// controller coordinates them all, so the hash only spreads clients.
func coordinator(bs []broker, key string) broker {
	h := fnv.New32a()
	h.Write([]byte(key))
	return bs[h.Sum32()%uint32(len(bs))]
}

// openNodePorts gives every listener a node port for each node that has
// none yet, and tells the other gateways.
func (g *Gateway) openNodePorts(nodes []meta.Node) {
	if g.cfg.BrokersAreGateways {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	opened := false
	for _, l := range g.listeners {
		for _, n := range nodes {
			name := nodeListenerName(l.Name, n.ID)
			if _, ok := g.nodePorts[name]; ok {
				continue
			}
			np, err := l.nodePort(n.ID, g.cfg.NodePortStride)
			if err != nil {
				if !g.nodePortFailed[name] {
					g.nodePortFailed[name] = true
					g.logger.Warn("cannot open a port for a node: clients are told of it through other gateways", "listener", l.Name, "node", n.ID, "error", err)
				}
				continue
			}
			g.nodePorts[name] = np
			g.peers.addListener(name, np.advertised())
			g.wg.Add(1)
			go g.acceptLoop(np)
			opened = true
		}
	}
	if opened {
		g.peers.publish(false)
	}
}

// nodePort opens l's port for node id: on l's bound host, at any free
// port advertised as bound, or with a stride at l's port + stride × id
// (bound and advertised), for deployments that map ports.
func (l *listener) nodePort(id, stride int32) (*listener, error) {
	bindHost, bindPort, err := net.SplitHostPort(l.ln.Addr().String())
	if err != nil {
		return nil, err
	}
	port := "0"
	if stride > 0 {
		p, _ := strconv.Atoi(bindPort)
		if p += int(stride) * int(id); p > 65535 {
			return nil, fmt.Errorf("node port %d is past 65535", p)
		}
		port = strconv.Itoa(p)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(bindHost, port))
	if err != nil {
		return nil, err
	}
	np := &listener{Listener: l.Listener, ln: ln, host: l.host}
	np.port = int32(ln.Addr().(*net.TCPAddr).Port)
	if stride > 0 {
		np.port = l.port + stride*id
	}
	return np, nil
}

// refreshNodes reads the nodes and opens their ports, so that the other
// gateways can name this one for them before it serves a Metadata.
func (g *Gateway) refreshNodes() {
	ctx, cancel := context.WithTimeout(g.base, 10*time.Second)
	defer cancel()
	if snap, err := g.cache.get(ctx, true); err == nil {
		g.openNodePorts(snap.nodes)
	}
}

// NodePortAddr is the bound address of this gateway's port for node on
// the listener named listener, or "" when it has none.
func (g *Gateway) NodePortAddr(listener string, node int32) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if l, ok := g.nodePorts[nodeListenerName(listener, node)]; ok {
		return l.ln.Addr().String()
	}
	return ""
}
