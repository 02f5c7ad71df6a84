package gateway

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/auth"
	"github.com/strata-io/strata/meta"
)

// Anonymous is the principal of a client on a listener that
// authenticates no one, as Kafka names it.
const Anonymous = "User:ANONYMOUS"

// saslMaxReceive bounds a request before authentication completes
// (Kafka's sasl.server.max.receive.size): only ApiVersions and the SASL
// exchange are read then.
const saslMaxReceive = 512 << 10

// session is one connection's authentication state. The read loop alone
// changes it; handlers read principal, which never changes once set.
type session struct {
	listener  *listener
	remote    net.Addr
	principal string
	// The SASL exchange: stage, the exchange in progress, whether its
	// tokens come raw (SaslHandshake v0), the mechanism, and when the
	// session expires (KIP-368; zero: never).
	stage    saslStage
	exchange *auth.Exchange
	raw      bool
	mech     string
	expires  time.Time
}

type saslStage int

const (
	saslNone           saslStage = iota // nothing asked yet
	saslAuthenticating                  // handshake done, exchange in progress
	saslDone                            // authenticated
)

// sessionKey holds a request's session in its context.
type sessionKey struct{}

func sessionOf(ctx context.Context) *session {
	s, _ := ctx.Value(sessionKey{}).(*session)
	return s
}

// authenticated reports whether requests other than the SASL exchange
// may be served.
func (s *session) authenticated() bool {
	return !s.listener.sasl() || s.stage == saslDone || s.principal != ""
}

// maxFrame is the largest request the session accepts now.
func (s *session) maxFrame(configured int) int {
	if !s.authenticated() {
		return min(configured, saslMaxReceive)
	}
	return configured
}

// tlsPrincipal is an SSL listener's principal: the verified client
// certificate's subject (mTLS), else anonymous.
func tlsPrincipal(c *tls.Conn) string {
	st := c.ConnectionState()
	if len(st.VerifiedChains) > 0 && len(st.PeerCertificates) > 0 {
		return "User:" + st.PeerCertificates[0].Subject.String()
	}
	return Anonymous
}

// errCloseConn ends a connection after its response is sent.
var errCloseConn = errors.New("close the connection")

// saslRequest handles a request on a connection whose exchange is not
// over, or a SASL request on one that is, in the read loop, so the state
// it changes holds for the next request. handled is false for a request
// to serve the usual way; errCloseConn closes the connection once resp
// (which may be nil) is written.
func (g *Gateway) saslRequest(s *session, h requestHeader, req kmsg.Request) (resp kmsg.Response, handled bool, err error) {
	if !s.listener.sasl() {
		switch r := req.(type) {
		case *kmsg.SASLHandshakeRequest:
			resp := r.ResponseKind().(*kmsg.SASLHandshakeResponse)
			resp.ErrorCode = kerr.IllegalSaslState.Code
			return resp, true, nil
		case *kmsg.SASLAuthenticateRequest:
			resp := r.ResponseKind().(*kmsg.SASLAuthenticateResponse)
			resp.ErrorCode = kerr.IllegalSaslState.Code
			msg := "SASL is not enabled on listener " + s.listener.Name
			resp.ErrorMessage = &msg
			return resp, true, nil
		}
		return nil, false, nil
	}
	switch r := req.(type) {
	case *kmsg.ApiVersionsRequest:
		return nil, false, nil
	case *kmsg.SASLHandshakeRequest:
		return g.saslHandshake(s, r)
	case *kmsg.SASLAuthenticateRequest:
		return g.saslAuthenticate(s, r)
	}
	if s.stage == saslDone {
		if !s.expires.IsZero() && time.Now().After(s.expires) {
			g.logger.Info("closing connection: its SASL session expired without re-authentication (connections.max.reauth.ms)",
				"remote", s.remote.String(), "principal", s.principal)
			return nil, true, errCloseConn
		}
		return nil, false, nil
	}
	if s.principal != "" { // re-authenticating: requests go on meanwhile
		return nil, false, nil
	}
	g.logger.Warn("closing connection: request before SASL authentication", "remote", s.remote.String(),
		"api", kmsg.NameForKey(h.key), "listener", s.listener.Name)
	return nil, true, errCloseConn
}

func (g *Gateway) saslHandshake(s *session, r *kmsg.SASLHandshakeRequest) (kmsg.Response, bool, error) {
	resp := r.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = s.listener.Mechanisms
	reauth := s.stage == saslDone
	switch {
	case s.stage == saslAuthenticating:
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return resp, true, errCloseConn
	case reauth && s.expires.IsZero():
		// Re-authentication is off (connections.max.reauth.ms 0).
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return resp, true, errCloseConn
	case reauth && (r.Version == 0 || r.Mechanism != s.mech):
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return resp, true, errCloseConn
	case !slices.Contains(s.listener.Mechanisms, r.Mechanism):
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		g.authFailed(s, r.Mechanism, "unsupported mechanism")
		return resp, true, errCloseConn
	}
	x, err := auth.NewExchange(r.Mechanism, g.creds.lookup)
	if err != nil {
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		return resp, true, errCloseConn
	}
	s.exchange, s.mech, s.raw = x, r.Mechanism, r.Version == 0
	if !reauth {
		s.stage = saslAuthenticating
	}
	return resp, true, nil
}

func (g *Gateway) saslAuthenticate(s *session, r *kmsg.SASLAuthenticateRequest) (kmsg.Response, bool, error) {
	resp := r.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	if s.exchange == nil || s.raw {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		msg := "SaslAuthenticate before SaslHandshake"
		resp.ErrorMessage = &msg
		return resp, true, errCloseConn
	}
	out, err := g.saslStep(s, r.SASLAuthBytes)
	if err != nil {
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := fmt.Sprintf("Authentication failed during authentication due to invalid credentials with SASL mechanism %s", s.mech)
		if errors.Is(err, auth.ErrMalformed) {
			msg = fmt.Sprintf("Authentication failed: malformed %s message", s.mech)
		}
		resp.ErrorMessage = &msg
		return resp, true, errCloseConn
	}
	resp.SASLAuthBytes = out
	if s.exchange == nil && g.cfg.ReauthMax > 0 { // done
		resp.SessionLifetimeMillis = g.cfg.ReauthMax.Milliseconds()
	}
	return resp, true, nil
}

// saslStep passes a client message to the exchange. A failure is
// counted, logged and throttled here.
func (g *Gateway) saslStep(s *session, in []byte) ([]byte, error) {
	x := s.exchange
	out, err := x.Step(in)
	if err == nil && x.Done() && s.principal != "" && s.principal != "User:"+x.User() {
		err = fmt.Errorf("%w: re-authentication as %q on a connection of %s", auth.ErrAuthFailed, x.User(), s.principal)
	}
	if err != nil {
		s.exchange = nil
		g.authFailed(s, s.mech, err.Error())
		return nil, err
	}
	if x.Done() {
		s.exchange, s.stage, s.principal = nil, saslDone, "User:"+x.User()
		s.expires = time.Time{}
		if g.cfg.ReauthMax > 0 {
			s.expires = time.Now().Add(g.cfg.ReauthMax)
		}
		g.metrics.authentications.WithLabelValues(s.mech, "ok").Inc()
	}
	return out, nil
}

// rawSASL handles a raw SASL token, sent after SaslHandshake v0 without
// a Kafka header: the answer is a raw token too, and a failure closes
// the connection without one (Kafka's v0 behaviour).
func (g *Gateway) rawSASL(s *session, token []byte) (*respFrame, error) {
	out, err := g.saslStep(s, token)
	if err != nil {
		return nil, errCloseConn
	}
	if s.stage == saslDone {
		s.raw = false
	}
	b := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(out)), uint32(len(out)))
	b = append(b, out...)
	return &respFrame{bufs: net.Buffers{b}}, nil
}

// authFailed counts and logs a failed authentication (never what the
// client sent), and holds the connection before it is closed: longer the
// more its address failed lately, so guessing passwords is slow.
func (g *Gateway) authFailed(s *session, mech, why string) {
	g.metrics.authentications.WithLabelValues(mechLabel(mech), "failed").Inc()
	delay := g.authDelay.failed(hostOf(s.remote))
	g.logger.Warn("SASL authentication failed", "remote", s.remote.String(), "mechanism", mech,
		"listener", s.listener.Name, "reason", why, "delay", delay)
	time.Sleep(delay)
}

// mechLabel bounds the mechanism label to known names.
func mechLabel(m string) string {
	if slices.Contains(auth.Mechanisms, m) {
		return m
	}
	return "other"
}

// failureDelay throttles addresses that fail to authenticate: the n-th
// failure within failureWindow waits n times failureDelayBase (Kafka's
// connection.failed.authentication.delay.ms), up to failureDelayMax.
type failureDelay struct {
	mu   sync.Mutex
	byIP map[string]*ipFailures
}

type ipFailures struct {
	n    int
	last time.Time
}

const (
	failureDelayBase = 100 * time.Millisecond
	failureDelayMax  = 5 * time.Second
	failureWindow    = time.Minute
)

func (f *failureDelay) failed(ip string) time.Duration {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byIP == nil {
		f.byIP = map[string]*ipFailures{}
	}
	for k, v := range f.byIP { // forget quiet addresses
		if now.Sub(v.last) > failureWindow {
			delete(f.byIP, k)
		}
	}
	e := f.byIP[ip]
	if e == nil {
		e = &ipFailures{}
		f.byIP[ip] = e
	}
	e.n++
	e.last = now
	return min(time.Duration(e.n)*failureDelayBase, failureDelayMax)
}

// credentials is the gateway's copy of the SCRAM credentials, by user
// and mechanism.
type credentials struct {
	client *meta.Client
	copy   copied[map[[2]string]auth.Credential]
}

// credentialsMaxAge bounds how stale the copy may get if an event is
// missed.
const credentialsMaxAge = 30 * time.Second

func newCredentials(client *meta.Client, logger *slog.Logger) *credentials {
	c := &credentials{client: client}
	c.copy = copied[map[[2]string]auth.Credential]{maxAge: credentialsMaxAge,
		failed: func(err error) { logger.Warn("cannot read SCRAM credentials from the controller", "error", err) },
		read: func(ctx context.Context) (map[[2]string]auth.Credential, error) {
			all, err := c.all(ctx)
			m := map[[2]string]auth.Credential{}
			for _, cr := range all {
				m[[2]string{cr.User, cr.Mechanism}] = auth.Credential{Mechanism: cr.Mechanism, Iterations: int(cr.Iterations),
					Salt: cr.Salt, StoredKey: cr.StoredKey, ServerKey: cr.ServerKey}
			}
			return m, err
		}}
	return c
}

func (c *credentials) invalidate() { c.copy.invalidate() }

// lookup finds user's credential for mech.
func (c *credentials) lookup(user, mech string) (auth.Credential, bool) {
	m, _ := c.copy.get(context.Background())
	cr, ok := m[[2]string{user, mech}]
	return cr, ok
}

// all lists the users and their mechanisms, fresh from the controller.
func (c *credentials) all(ctx context.Context) ([]meta.ScramCredential, error) {
	r, err := c.client.Read(ctx, meta.ReadRequest{Kind: "credentials"})
	if err != nil {
		return nil, err
	}
	return r.Credentials, nil
}

// isSASL reports whether a request is part of the SASL exchange.
func isSASL(key int16) bool { return key == 17 || key == 36 }

// principalOf is the principal a request runs as.
func principalOf(ctx context.Context) string {
	if s := sessionOf(ctx); s != nil && s.principal != "" {
		return s.principal
	}
	return Anonymous
}

// userOf strips the "User:" of a principal.
func userOf(principal string) string { return strings.TrimPrefix(principal, "User:") }

// InternalPrincipal is the principal of connections made with
// DialInternal: the gateway's own tools (the console), never a client.
const InternalPrincipal = "User:strata-internal"

// DialInternal opens a Kafka connection to this gateway that crosses no
// socket and needs no authentication, as InternalPrincipal: for the
// gateway's own tools, such as the console, whatever its listeners
// demand. Its signature is kgo.Dialer's; the address is ignored (every
// broker a client is told of is this gateway, which serves any
// partition).
func (g *Gateway) DialInternal(ctx context.Context, _, _ string) (net.Conn, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, errors.New("gateway closed")
	}
	client, server := net.Pipe()
	internal := &listener{Listener: Listener{Name: g.listeners[0].Name, Protocol: Plaintext}, host: g.listeners[0].host, port: g.listeners[0].port}
	g.conns[server] = struct{}{}
	g.wg.Add(1)
	go g.serveAs(server, internal, InternalPrincipal)
	return client, nil
}
