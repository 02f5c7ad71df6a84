package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/strata-io/strata/auth"
)

// Security protocols of a listener, as Kafka names them.
const (
	Plaintext     = "PLAINTEXT"
	SSL           = "SSL"
	SASLPlaintext = "SASL_PLAINTEXT"
	SASLSSL       = "SASL_SSL"
)

// Listener is one Kafka listener of a gateway, as Kafka's listeners,
// advertised.listeners and listener.security.protocol.map describe one.
type Listener struct {
	// Name tells listeners apart (Kafka's listener name: "PLAINTEXT",
	// "INTERNAL", "EXTERNAL"...). A client is told, in Metadata, every
	// gateway's address on the listener it connected to.
	Name string
	// Addr is where it binds; Advertised what clients are told (default:
	// the bound address).
	Addr, Advertised string
	// Protocol is PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (default
	// PLAINTEXT).
	Protocol string
	// TLS is the server's TLS configuration, needed for SSL and
	// SASL_SSL. With ClientAuth requiring a verified certificate (mTLS),
	// an SSL listener's principal is the certificate's subject.
	TLS *tls.Config
	// Mechanisms are the SASL mechanisms offered on a SASL listener
	// (default: SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN).
	Mechanisms []string
}

func (l Listener) sasl() bool { return l.Protocol == SASLPlaintext || l.Protocol == SASLSSL }
func (l Listener) tls() bool  { return l.Protocol == SSL || l.Protocol == SASLSSL }

// check fills defaults and rejects what cannot work.
func (l *Listener) check() error {
	if l.Protocol == "" {
		l.Protocol = Plaintext
	}
	l.Protocol = strings.ToUpper(l.Protocol)
	if l.Name == "" {
		l.Name = l.Protocol
	}
	switch l.Protocol {
	case Plaintext, SSL, SASLPlaintext, SASLSSL:
	default:
		return fmt.Errorf("listener %s: unknown security protocol %q (want PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)", l.Name, l.Protocol)
	}
	if l.tls() && l.TLS == nil {
		return fmt.Errorf("listener %s: %s needs a certificate and key", l.Name, l.Protocol)
	}
	if !l.tls() && l.TLS != nil {
		return fmt.Errorf("listener %s: a certificate is given but %s does not use TLS", l.Name, l.Protocol)
	}
	if l.sasl() {
		if len(l.Mechanisms) == 0 {
			l.Mechanisms = auth.Mechanisms
		}
		for _, m := range l.Mechanisms {
			if !slices.Contains(auth.Mechanisms, m) {
				return fmt.Errorf("listener %s: unknown SASL mechanism %q (want %s)", l.Name, m, strings.Join(auth.Mechanisms, ", "))
			}
		}
	}
	return nil
}

// listener is a Listener bound.
type listener struct {
	Listener
	ln   net.Listener
	host string
	port int32
}

func (l *listener) advertised() string { return addr(l.host, l.port) }

// listen binds every listener; on error none stays bound.
func listen(ls []Listener) ([]*listener, error) {
	var out []*listener
	names := map[string]bool{}
	fail := func(err error) ([]*listener, error) {
		for _, l := range out {
			l.ln.Close()
		}
		return nil, err
	}
	for _, l := range ls {
		if err := l.check(); err != nil {
			return fail(err)
		}
		if names[l.Name] {
			return fail(fmt.Errorf("listener name %s used twice", l.Name))
		}
		names[l.Name] = true
		ln, err := net.Listen("tcp", l.Addr)
		if err != nil {
			return fail(fmt.Errorf("listen on %s: %w", l.Addr, err))
		}
		b := &listener{Listener: l, ln: ln}
		out = append(out, b)
		adv := l.Advertised
		if adv == "" {
			adv = ln.Addr().String()
		}
		host, portStr, err := net.SplitHostPort(adv)
		if err != nil {
			return fail(fmt.Errorf("listener %s: advertised address %q: %w", l.Name, adv, err))
		}
		port, err := strconv.Atoi(portStr)
		if err != nil || port <= 0 || port > 65535 {
			return fail(fmt.Errorf("listener %s: advertised port %q", l.Name, portStr))
		}
		b.host, b.port = host, int32(port)
	}
	if len(out) == 0 {
		return nil, errors.New("no listener")
	}
	return out, nil
}

// ParseListeners reads Kafka's listeners syntax, NAME://host:port,...,
// with each name's security protocol from protocols
// (listener.security.protocol.map, NAME:PROTOCOL,...; a name that is a
// protocol needs no entry) and its advertised address from advertised
// (advertised.listeners, the same syntax; default the bound address).
func ParseListeners(listeners, protocols, advertised string) ([]Listener, error) {
	pmap := map[string]string{}
	for _, kv := range splitList(protocols) {
		name, proto, ok := strings.Cut(kv, ":")
		if !ok {
			return nil, fmt.Errorf("listener.security.protocol.map entry %q: want NAME:PROTOCOL", kv)
		}
		pmap[strings.ToUpper(name)] = strings.ToUpper(proto)
	}
	adv := map[string]string{}
	for _, u := range splitList(advertised) {
		name, hp, err := splitListener(u)
		if err != nil {
			return nil, fmt.Errorf("advertised listener %q: %w", u, err)
		}
		adv[name] = hp
	}
	var out []Listener
	for _, u := range splitList(listeners) {
		name, hp, err := splitListener(u)
		if err != nil {
			return nil, fmt.Errorf("listener %q: %w", u, err)
		}
		proto, ok := pmap[name]
		if !ok {
			proto = name
		}
		out = append(out, Listener{Name: name, Addr: hp, Advertised: adv[name], Protocol: proto})
		delete(adv, name)
	}
	for name := range adv {
		return nil, fmt.Errorf("advertised listener %s is not among the listeners", name)
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func splitListener(u string) (name, hostPort string, err error) {
	name, hp, ok := strings.Cut(u, "://")
	if !ok || name == "" {
		return "", "", errors.New("want NAME://host:port")
	}
	if _, _, err := net.SplitHostPort(hp); err != nil {
		return "", "", err
	}
	return strings.ToUpper(name), hp, nil
}
