package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/bufpool"
	"github.com/strata-io/strata/internal/rpc"
	"github.com/strata-io/strata/meta"
	"github.com/strata-io/strata/tier"
)

// Config configures a gateway.
type Config struct {
	Cluster string
	Conn    *nats.Conn
	// ID is the broker id this gateway has in Metadata responses.
	ID int32
	// Addr is where the Kafka listener binds; AdvertisedAddr what clients
	// are told to connect to (default: the bound address). A PLAINTEXT
	// listener, unless Listeners are given.
	Addr           string
	AdvertisedAddr string
	// Listeners, when given, are the gateway's Kafka listeners in place
	// of Addr: several at once, each with its security protocol and
	// advertised address. The first is Addr().
	Listeners []Listener
	// Authorizer turns on Kafka ACLs (Kafka's authorizer.class.name):
	// every request is checked against the ACLs in the metadata.
	// SuperUsers (principals, User:NAME) may do anything;
	// AllowEveryoneIfNoACL is allow.everyone.if.no.acl.found.
	Authorizer           bool
	SuperUsers           []string
	AllowEveryoneIfNoACL bool
	// ReauthMax is connections.max.reauth.ms: a SASL session lasts this
	// long, and a client must authenticate again on its connection
	// before it ends (KIP-368). Zero: sessions never expire.
	ReauthMax time.Duration
	// AutoCreateTopics creates a topic a client asks Metadata for
	// (auto.create.topics.enable), with DefaultPartitions and
	// DefaultReplicationFactor.
	AutoCreateTopics         bool
	DefaultPartitions        int32
	DefaultReplicationFactor int16
	// MaxRequestBytes caps a request frame (socket.request.max.bytes,
	// default 100 MiB); a bigger one closes the connection.
	MaxRequestBytes int
	// QueuedMaxRequestBytes bounds the bytes of all requests read and
	// not yet handled (queued.max.request.bytes; default 512 MiB): a
	// connection whose next request does not fit stops reading until
	// others are done.
	QueuedMaxRequestBytes int64
	// MaxConnections bounds client connections (max.connections: the
	// listener waits for one to close); MaxConnectionsPerIP those from
	// one address (max.connections.per.ip: one more is closed at once),
	// with per-host overrides (max.connections.per.ip.overrides). Zero:
	// unbounded.
	MaxConnections              int
	MaxConnectionsPerIP         int
	MaxConnectionsPerIPOverride map[string]int
	// IdleTimeout closes a connection that sends nothing for that long
	// (connections.max.idle.ms; default 10 minutes, negative: never);
	// StallTimeout one whose request stops arriving midway for that long
	// (default 30 s).
	IdleTimeout  time.Duration
	StallTimeout time.Duration
	// Tier, when set, is the object store tiered topics upload to (the
	// nodes' --tier-url): the gateway then serves a fetch below a
	// partition's local log from it itself, through a chunk cache under
	// TierCacheDir (default: a temporary directory, removed by Close) of
	// at most TierCacheBytes (default 1 GiB), with at most
	// TierReadConcurrency (default 8) remote reads in progress, holding
	// at most TierReadMaxBytes (default 256 MiB) between them; more wait
	// their turn (as with Kafka's remote fetch quota, a client waits,
	// never errs). TierFetchMaxBytesPerSecond, when positive, bounds the
	// bytes it serves from the store per second (Kafka's
	// remote.log.manager.fetch.max.bytes.per.second): a fetch over it
	// waits within its MaxWait, else is answered empty with a throttle
	// time.
	Tier tier.Store
	// Local are the nodes in this gateway's own process (strata dev), by
	// id: their requests skip NATS and encoding.
	Local               map[int32]LocalNode
	TierCacheDir        string
	TierCacheBytes      int64
	TierReadConcurrency int
	TierReadMaxBytes    int64
	// TierFetchMaxBytesPerSecond: see Tier.
	TierFetchMaxBytesPerSecond int64
	// BrokersAreGateways lists the live gateways as brokers, each at its
	// own address, in place of the nodes at gateways' node ports
	// (brokers.go): for gateways behind one load-balanced address. A
	// partition's leader is then a gateway, not among its replicas.
	BrokersAreGateways bool
	// NodePortStride, when positive, puts the port that stands for node
	// n on each listener at the listener's port + NodePortStride × n,
	// bound and advertised (for deployments that map ports); zero: any
	// free port, advertised as bound.
	NodePortStride int32
	// NoStreams sends nodes every request over NATS, even those whose
	// heartbeats name a stream address (internal/stream).
	NoStreams bool
	// Registry, when set, gets the gateway's Prometheus metrics.
	Registry prometheus.Registerer
	Logger   *slog.Logger
}

// Gateway is a Kafka listener that routes requests to partition leaders
// over NATS and answers metadata from the controller.
type Gateway struct {
	cfg       Config
	logger    *slog.Logger
	listeners []*listener
	// nodePorts are the listeners' ports that stand for nodes, by
	// nodeListenerName (under mu); nodePortFailed those that could not
	// be opened, logged once.
	nodePorts      map[string]*listener
	nodePortFailed map[string]bool
	// shares are the members' share sessions (share.go).
	shares      shareSessions
	meta        *meta.Client
	cache       *metadataCache
	creds       *credentials
	acls        *acls // nil: authorization off
	authDelay   failureDelay
	wg          sync.WaitGroup
	mu          sync.Mutex
	conns       map[net.Conn]struct{}
	closed      bool
	limits      *connLimits
	budget      *requestBudget
	eventSub    *nats.Subscription
	peers       *peers
	defaults    *nodeDefaults
	caller      *rpc.Caller
	producerIDs producerIDs
	remote      *remoteReader // nil: nodes read the tier
	metrics     *metrics
	// base is cancelled by Close, ending in-flight requests (long-polling
	// fetches included) so shutdown does not wait for them.
	base       context.Context
	cancelBase context.CancelFunc
}

// Ready reports whether the gateway can serve clients: connected to
// NATS, with metadata from the controller (read now if its copy is
// stale).
func (g *Gateway) Ready(ctx context.Context) error {
	if !g.cfg.Conn.IsConnected() {
		return errors.New("not connected to NATS")
	}
	if _, err := g.cache.get(ctx, false); err != nil {
		return fmt.Errorf("no metadata: %w", err)
	}
	return nil
}

// Start listens and serves until Close.
func Start(cfg Config) (*Gateway, error) {
	if cfg.Conn == nil || cfg.Cluster == "" {
		return nil, errors.New("gateway: needs a NATS connection and a cluster name")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = 100 << 20
	}
	if cfg.QueuedMaxRequestBytes <= 0 {
		cfg.QueuedMaxRequestBytes = 512 << 20
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 10 * time.Minute
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = 30 * time.Second
	}
	if cfg.DefaultPartitions <= 0 {
		cfg.DefaultPartitions = 1
	}
	if cfg.DefaultReplicationFactor <= 0 {
		cfg.DefaultReplicationFactor = 1
	}
	if len(cfg.Listeners) == 0 {
		cfg.Listeners = []Listener{{Name: Plaintext, Addr: cfg.Addr, Advertised: cfg.AdvertisedAddr, Protocol: Plaintext}}
	}
	lns, err := listen(cfg.Listeners)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	closeListeners := func() {
		for _, l := range lns {
			l.ln.Close()
		}
	}
	client := meta.NewClient(cfg.Conn, cfg.Cluster)
	g := &Gateway{cfg: cfg, logger: cfg.Logger.With("gateway", cfg.ID), listeners: lns, meta: client,
		cache: newMetadataCache(client), conns: map[net.Conn]struct{}{},
		nodePorts: map[string]*listener{}, nodePortFailed: map[string]bool{},
		metrics: newMetrics(cfg.Registry), budget: newRequestBudget(cfg.QueuedMaxRequestBytes),
		limits: newConnLimits(cfg.MaxConnections, cfg.MaxConnectionsPerIP, cfg.MaxConnectionsPerIPOverride)}
	g.base, g.cancelBase = context.WithCancel(context.Background())
	g.metrics.queued(g.budget)
	g.creds = newCredentials(client, g.logger)
	if cfg.Authorizer {
		g.acls = newACLs(client, cfg.SuperUsers, cfg.AllowEveryoneIfNoACL, g.logger)
	}
	if g.eventSub, err = client.Events(func(ev meta.Event) {
		g.cache.invalidate()
		if ev.Reset || slices.ContainsFunc(ev.Changes, func(c meta.Change) bool { return c.Kind == "node" }) {
			go g.refreshNodes() // a new node gets its ports before clients hear of it
		}
		if ev.Reset || slices.ContainsFunc(ev.Changes, func(c meta.Change) bool { return c.Kind == "credentials" }) {
			g.creds.invalidate()
		}
		if g.acls != nil && (ev.Reset || slices.ContainsFunc(ev.Changes, func(c meta.Change) bool { return c.Kind == "acls" })) {
			g.acls.invalidate()
		}
		if ev.Reset || slices.ContainsFunc(ev.Changes, func(c meta.Change) bool { return c.Kind == "features" }) {
			g.cache.features.Store(nil) // the next ApiVersions reads them
		}
	}); err != nil {
		closeListeners()
		return nil, err
	}
	if g.caller, err = rpc.NewCaller(cfg.Conn); err != nil {
		g.eventSub.Unsubscribe()
		closeListeners()
		return nil, err
	}
	if g.defaults, err = watchNodeDefaults(cfg.Conn, cfg.Cluster, !cfg.NoStreams); err != nil {
		g.caller.Close()
		g.eventSub.Unsubscribe()
		closeListeners()
		return nil, err
	}
	self := peerBeat{ID: cfg.ID, Host: lns[0].host, Port: lns[0].port, Listeners: map[string]string{}, Gateways: cfg.BrokersAreGateways}
	for _, l := range lns {
		self.Listeners[l.Name] = l.advertised()
	}
	if g.peers, err = startPeers(cfg.Conn, cfg.Cluster, self, func(other string) {
		g.logger.Warn("another gateway uses this broker id: give each gateway its own --id", "id", cfg.ID, "other", other)
	}, func(id int32) {
		g.logger.Warn("another gateway lists brokers the other way: give every gateway the same --brokers", "other", id, "gateways", cfg.BrokersAreGateways)
	}); err != nil {
		g.defaults.close()
		g.caller.Close()
		g.eventSub.Unsubscribe()
		closeListeners()
		return nil, err
	}
	if cfg.Tier != nil {
		if g.remote, err = newRemoteReader(cfg, g.logger); err != nil {
			g.peers.close()
			g.defaults.close()
			g.caller.Close()
			g.eventSub.Unsubscribe()
			closeListeners()
			return nil, err
		}
		g.metrics.remoteReads(g.remote.r.Stats)
	}
	for _, l := range lns {
		g.wg.Add(1)
		go g.acceptLoop(l)
	}
	go g.refreshNodes()
	return g, nil
}

// Addr is the first listener's address.
func (g *Gateway) Addr() string { return g.listeners[0].ln.Addr().String() }

// ListenerAddr is the bound address of the listener named name, or "".
func (g *Gateway) ListenerAddr(name string) string {
	for _, l := range g.listeners {
		if l.Name == name {
			return l.ln.Addr().String()
		}
	}
	return ""
}

// Close stops listening, closes every connection and waits for them.
func (g *Gateway) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	g.cancelBase()
	g.limits.close()
	for c := range g.conns {
		c.Close()
	}
	g.mu.Unlock()
	var err error
	for _, l := range g.listeners {
		if e := l.ln.Close(); err == nil {
			err = e
		}
	}
	g.mu.Lock()
	for _, l := range g.nodePorts {
		l.ln.Close()
	}
	g.mu.Unlock()
	g.eventSub.Unsubscribe()
	g.defaults.close()
	g.peers.close()
	g.wg.Wait()
	g.caller.Close()
	if g.remote != nil {
		st := g.remote.r.Stats()
		g.logger.Info("remote reads", "chunk_hits", st.ChunkHits, "chunk_misses", st.ChunkMisses, "fetched_bytes", st.FetchedBytes)
		g.remote.close()
	}
	return err
}

func (g *Gateway) acceptLoop(l *listener) {
	defer g.wg.Done()
	for g.limits.waitRoom() {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		if ok, warn := g.limits.admit(c.RemoteAddr()); !ok {
			g.metrics.refused.Inc()
			if warn {
				g.logger.Warn("refusing connection: too many from its address (max.connections.per.ip)", "remote", c.RemoteAddr().String())
			}
			c.Close()
			continue
		}
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			g.limits.done(c.RemoteAddr())
			c.Close()
			return
		}
		g.conns[c] = struct{}{}
		g.wg.Add(1)
		g.mu.Unlock()
		go g.serve(c, l)
	}
}

// tlsHandshakeTimeout bounds a client's TLS handshake.
const tlsHandshakeTimeout = 10 * time.Second

// pending is one request's place in a connection's response order.
type pending struct {
	resp chan *respFrame // the framed response, or nil for none (acks=0)
}

// serve reads requests from one connection. Each is handled on its own
// goroutine; a writer sends the responses back in request order. A frame
// that is too big or does not parse closes this connection only.
func (g *Gateway) serve(c net.Conn, l *listener) { g.serveAs(c, l, "") }

// serveAs serves a connection; a principal given is the connection's
// from the start (DialInternal), with no handshake of any kind.
func (g *Gateway) serveAs(c net.Conn, l *listener, principal string) {
	defer g.wg.Done()
	g.metrics.accepted.Inc()
	g.metrics.connections.Inc()
	defer g.metrics.connections.Dec()
	sess := &session{listener: l, remote: c.RemoteAddr(), principal: principal}
	defer func() {
		c.Close()
		g.closeShareSessions(sess)
		g.mu.Lock()
		delete(g.conns, c)
		g.mu.Unlock()
		if principal == "" {
			g.limits.done(c.RemoteAddr())
		}
	}()
	if principal != "" {
		sess.stage = saslDone
	} else if l.tls() { // before the writer starts: it writes to c
		tc := tls.Server(c, l.TLS)
		ctx, cancel := context.WithTimeout(g.base, tlsHandshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			g.metrics.authentications.WithLabelValues("TLS", "failed").Inc()
			g.logger.Warn("closing connection: TLS handshake failed", "remote", c.RemoteAddr().String(), "listener", l.Name, "error", err)
			return
		}
		c = tc
		if !l.sasl() {
			sess.principal = tlsPrincipal(tc)
		}
	} else if !l.sasl() {
		sess.principal = Anonymous
	}
	order := make(chan *pending, 256)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		w := bufio.NewWriter(c)
		failed := false
		for p := range order {
			f := <-p.resp
			if f == nil {
				continue
			}
			if !failed {
				var err error
				if len(f.bufs) == 1 {
					_, err = w.Write(f.bufs[0]) // small ones coalesce
				} else if err = w.Flush(); err == nil {
					_, err = f.bufs.WriteTo(c) // one writev, records not copied
				}
				if err == nil && len(order) == 0 {
					err = w.Flush()
				}
				if err != nil {
					failed = true
					c.Close() // drain the rest
				}
			}
			f.done()
		}
		w.Flush()
	}()
	defer func() {
		close(order)
		<-writerDone
	}()
	fc := &frameConn{c: c, r: bufio.NewReaderSize(c, 64<<10), idle: max(g.cfg.IdleTimeout, 0), stall: g.cfg.StallTimeout}
	// send queues a response made in the read loop, in order.
	send := func(f *respFrame) {
		p := &pending{resp: make(chan *respFrame, 1)}
		p.resp <- f
		order <- p
	}
	// Produce requests of one connection are appended one after another,
	// in the order they came: a client with several in flight relies on
	// that. A produce goes to the nodes once the one before is appended
	// (not replicated: acks=all waits overlap) or answered. Other requests
	// run side by side.
	var lastProduce chan struct{}
	for {
		size, err := fc.size()
		if err != nil {
			if isTimeout(err) {
				g.logger.Debug("closing idle connection (connections.max.idle.ms)", "remote", c.RemoteAddr().String())
			}
			return
		}
		if (size < 8 && !sess.raw) || size < 0 || int(size) > sess.maxFrame(g.cfg.MaxRequestBytes) {
			what := "socket.request.max.bytes"
			if !sess.authenticated() {
				what = "before authentication, sasl.server.max.receive.size"
			}
			g.logger.Warn("closing connection: bad request size ("+what+")", "remote", c.RemoteAddr().String(), "size", size)
			return
		}
		// Small requests are not charged: their memory is bounded by the
		// connections, and a client holding the budget with claimed
		// sizes it never sends cannot hold up heartbeats and metadata.
		var charged int64
		if int(size) > firstChunk {
			if charged, err = g.budget.acquire(g.base, int(size)); err != nil {
				return
			}
		}
		frame, err := fc.body(int(size))
		if err != nil {
			g.budget.release(charged)
			if _, ok := err.(errFrameStalled); ok {
				g.logger.Warn("closing connection: "+err.Error(), "remote", c.RemoteAddr().String())
			}
			return
		}
		if sess.raw { // a SASL token after SaslHandshake v0
			g.budget.release(charged)
			f, err := g.rawSASL(sess, frame)
			if err != nil {
				return
			}
			send(f)
			continue
		}
		h, req, err := parseRequest(frame)
		if err != nil {
			g.budget.release(charged)
			g.logger.Warn("closing connection: malformed request", "remote", c.RemoteAddr().String(), "error", err)
			return
		}
		if !sess.authenticated() || isSASL(h.key) || !sess.expires.IsZero() {
			resp, handled, err := g.saslRequest(sess, h, req)
			if handled {
				g.budget.release(charged)
				if resp != nil {
					b := frameResponse(h, resp)
					send(&respFrame{bufs: net.Buffers{b}, pooled: b})
				}
				if err != nil {
					return
				}
				continue
			}
		}
		p := &pending{resp: make(chan *respFrame, 1)}
		order <- p
		var after chan struct{}
		var appended func()
		// A produce's frame (its records) is not referenced once it is
		// answered; other requests may keep parts of theirs.
		reuse := func() {}
		if _, ok := req.(*kmsg.ProduceRequest); ok {
			if size > firstChunk { // a pooled buffer (frameConn.body)
				reuse = func() { bufpool.Put(frame) }
			}
			done := make(chan struct{})
			after, appended = lastProduce, sync.OnceFunc(func() { close(done) })
			lastProduce = done
		}
		go func() {
			if appended != nil {
				defer appended()
			}
			if after != nil {
				<-after
			}
			ctx, cancel := context.WithTimeout(g.base, requestTimeout(req))
			defer cancel()
			if appended != nil {
				ctx = context.WithValue(ctx, appendedKey{}, appended)
			}
			// rel gives back what the response's records reference:
			// once the response is encoded, or, for records the frame
			// sends as they are, once it is written.
			rel := &releaser{}
			ctx = context.WithValue(ctx, releaserKey{}, rel)
			ctx = context.WithValue(ctx, sessionKey{}, sess)
			g.metrics.inFlight.Inc()
			start := time.Now()
			resp := g.handle(ctx, h, req)
			g.metrics.observe(req, resp, time.Since(start))
			g.metrics.inFlight.Dec()
			reuse()
			g.budget.release(charged)
			if resp == nil {
				rel.run()
				p.resp <- nil
				return
			}
			if fr, ok := resp.(*kmsg.FetchResponse); ok {
				if f, ok := frameFetch(h, fr); ok {
					f.release = rel.run
					p.resp <- &f
					return
				}
			}
			b := frameResponse(h, resp)
			rel.run()
			p.resp <- &respFrame{bufs: net.Buffers{b}, pooled: b}
		}()
	}
}

// appendedKey holds, in a produce's context, the function that lets the
// connection's next produce go: called once this one is appended.
type appendedKey struct{}

// requestTimeout bounds one request's handling: its own timeout or long
// poll plus a margin.
func requestTimeout(req kmsg.Request) time.Duration {
	switch r := req.(type) {
	case *kmsg.FetchRequest:
		return time.Duration(r.MaxWaitMillis)*time.Millisecond + 30*time.Second
	case *kmsg.ShareFetchRequest:
		return time.Duration(r.MaxWaitMillis)*time.Millisecond + 30*time.Second
	case *kmsg.ProduceRequest:
		return time.Duration(r.TimeoutMillis)*time.Millisecond + 30*time.Second
	case *kmsg.JoinGroupRequest, *kmsg.SyncGroupRequest:
		// Waits for the rebalance: up to the group's rebalance timeout.
		return 5 * time.Minute
	case *kmsg.OffsetCommitRequest:
		return offsetCommitTimeout
	}
	return 60 * time.Second
}

// offsetCommitTimeout bounds an offset commit, and the coordinator never
// applies one after it. It is shorter than the time clients wait for the
// answer (franz-go 10 s, the Java client and Sarama 30 s, librdkafka
// 60 s): a client that gave up and commits again, maybe on a new
// connection, cannot have its newer offsets overwritten by the old
// commit still on its way.
const offsetCommitTimeout = 8 * time.Second

// requestHeader is the part of a Kafka request before its body.
type requestHeader struct {
	key, version  int16
	correlationID int32
	clientID      string
}

// parseRequest reads the request header and decodes the body with kmsg.
func parseRequest(frame []byte) (requestHeader, kmsg.Request, error) {
	var h requestHeader
	if len(frame) < 8 {
		return h, nil, errors.New("frame shorter than a request header")
	}
	h.key = int16(binary.BigEndian.Uint16(frame[0:]))
	h.version = int16(binary.BigEndian.Uint16(frame[2:]))
	h.correlationID = int32(binary.BigEndian.Uint32(frame[4:]))
	rest := frame[8:]
	req := kmsg.RequestForKey(h.key)
	if req == nil {
		return h, nil, fmt.Errorf("unknown API key %d", h.key)
	}
	if !(h.key == 7 && h.version == 0) { // ControlledShutdown v0 has no client id
		if len(rest) < 2 {
			return h, nil, errors.New("truncated client id")
		}
		n := int16(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
		if n > 0 {
			if int(n) > len(rest) {
				return h, nil, errors.New("truncated client id")
			}
			h.clientID, rest = string(rest[:n]), rest[n:]
		}
	}
	req.SetVersion(h.version)
	if supported(h.key, h.version) && req.IsFlexible() {
		var err error
		if rest, err = skipTags(rest); err != nil {
			return h, nil, err
		}
	}
	if !supported(h.key, h.version) {
		// Answered with UNSUPPORTED_VERSION (ApiVersions) or by closing;
		// the body is not decoded.
		return h, req, nil
	}
	if err := req.ReadFrom(rest); err != nil {
		return h, nil, fmt.Errorf("decode %s v%d: %w", kmsg.NameForKey(h.key), h.version, err)
	}
	return h, req, nil
}

// skipTags skips a flexible header's tagged fields.
func skipTags(b []byte) ([]byte, error) {
	n, l := binary.Uvarint(b)
	if l <= 0 {
		return nil, errors.New("bad tagged field count")
	}
	b = b[l:]
	for range n {
		if _, l = binary.Uvarint(b); l <= 0 {
			return nil, errors.New("bad tag")
		}
		b = b[l:]
		size, l := binary.Uvarint(b)
		if l <= 0 || size > uint64(len(b)-l) {
			return nil, errors.New("bad tag size")
		}
		b = b[l+int(size):]
	}
	return b, nil
}

// frameResponse adds the size and response header to a response body.
// ApiVersions answers with header v0 even when flexible, so a client that
// does not yet know the broker can read it.
//
// The frame is a pooled buffer: give it back once written.
func frameResponse(h requestHeader, resp kmsg.Response) []byte {
	b := bufpool.Get(rpc.SizeHint(resp) + 16)[:8]
	binary.BigEndian.PutUint32(b[4:], uint32(h.correlationID))
	if resp.IsFlexible() && h.key != 18 {
		b = append(b, 0)
	}
	b = rpc.Append(b, resp)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// handle answers one request; nil means send nothing (acks=0 produce).
func (g *Gateway) handle(ctx context.Context, h requestHeader, req kmsg.Request) kmsg.Response {
	if !supported(h.key, h.version) {
		if r, ok := req.(*kmsg.ApiVersionsRequest); ok {
			return apiVersions(r, true, nil)
		}
		g.logger.Debug("unsupported request version", "api", kmsg.NameForKey(h.key), "version", h.version)
		return nil
	}
	switch r := req.(type) {
	case *kmsg.ApiVersionsRequest:
		return apiVersions(r, false, g.features(ctx))
	case *kmsg.MetadataRequest:
		return g.metadata(ctx, r)
	case *kmsg.CreateTopicsRequest:
		return g.createTopics(ctx, r)
	case *kmsg.ProduceRequest:
		return g.produce(ctx, r)
	case *kmsg.FetchRequest:
		return g.fetch(ctx, r)
	case *kmsg.ShareFetchRequest:
		return g.shareFetch(ctx, r)
	case *kmsg.ShareAcknowledgeRequest:
		return g.shareAcknowledge(ctx, r)
	case *kmsg.DescribeShareGroupOffsetsRequest:
		return g.describeShareGroupOffsets(ctx, r)
	case *kmsg.ListOffsetsRequest:
		return g.listOffsets(ctx, r)
	case *kmsg.DeleteRecordsRequest:
		return g.deleteRecords(ctx, r)
	case *kmsg.OffsetForLeaderEpochRequest:
		return g.offsetForLeaderEpoch(ctx, r)
	case *kmsg.DescribeClusterRequest:
		return g.describeCluster(ctx, r)
	case *kmsg.DescribeUserSCRAMCredentialsRequest:
		return g.describeUserScramCredentials(ctx, r)
	case *kmsg.AlterUserSCRAMCredentialsRequest:
		return g.alterUserScramCredentials(ctx, r)
	case *kmsg.UpdateFeaturesRequest:
		return g.updateFeatures(ctx, r)
	case *kmsg.DescribeACLsRequest:
		return g.describeAcls(ctx, r)
	case *kmsg.CreateACLsRequest:
		return g.createAcls(ctx, r)
	case *kmsg.DeleteACLsRequest:
		return g.deleteAcls(ctx, r)
	case *kmsg.DescribeLogDirsRequest:
		return g.describeLogDirs(ctx, r)
	case *kmsg.InitProducerIDRequest:
		if r.TransactionalID != nil {
			return g.txnRequest(ctx, h, r)
		}
		return g.initProducerID(ctx, r)
	case *kmsg.AddPartitionsToTxnRequest, *kmsg.AddOffsetsToTxnRequest, *kmsg.EndTxnRequest, *kmsg.TxnOffsetCommitRequest:
		return g.txnRequest(ctx, h, req)
	case *kmsg.ListTransactionsRequest:
		return g.listTransactions(ctx, r)
	case *kmsg.DescribeTransactionsRequest:
		return g.describeTransactions(ctx, r)
	case *kmsg.DescribeProducersRequest:
		return g.describeProducers(ctx, r)
	case *kmsg.DeleteTopicsRequest:
		return g.deleteTopics(ctx, r)
	case *kmsg.CreatePartitionsRequest:
		return g.createPartitions(ctx, r)
	case *kmsg.DescribeConfigsRequest:
		return g.describeConfigs(ctx, r)
	case *kmsg.AlterConfigsRequest:
		return g.alterConfigs(ctx, r)
	case *kmsg.IncrementalAlterConfigsRequest:
		return g.incrementalAlterConfigs(ctx, r)
	case *kmsg.AlterPartitionAssignmentsRequest:
		return g.alterPartitionAssignments(ctx, r)
	case *kmsg.ListPartitionReassignmentsRequest:
		return g.listPartitionReassignments(ctx, r)
	case *kmsg.FindCoordinatorRequest:
		return g.findCoordinator(ctx, r)
	case *kmsg.JoinGroupRequest, *kmsg.SyncGroupRequest, *kmsg.HeartbeatRequest, *kmsg.LeaveGroupRequest,
		*kmsg.OffsetCommitRequest, *kmsg.OffsetFetchRequest, *kmsg.ListGroupsRequest, *kmsg.DescribeGroupsRequest,
		*kmsg.DeleteGroupsRequest, *kmsg.OffsetDeleteRequest, *kmsg.ConsumerGroupHeartbeatRequest, *kmsg.ConsumerGroupDescribeRequest,
		*kmsg.ShareGroupHeartbeatRequest, *kmsg.ShareGroupDescribeRequest, *kmsg.AlterShareGroupOffsetsRequest, *kmsg.DeleteShareGroupOffsetsRequest:
		denied, forward, fix := g.authorizeGroup(ctx, req)
		if denied != nil {
			return denied
		}
		return fix(g.groupRequest(ctx, h, forward))
	}
	return nil
}
