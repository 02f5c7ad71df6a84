package meta

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// RaftTLS makes the Raft transport between members mutual TLS: each
// member presents Cert and accepts a peer whose certificate CA signed,
// whatever address it dials (members are reached by IP; the CA is the
// trust boundary, as with NATS's verify).
type RaftTLS struct {
	Cert tls.Certificate
	CA   *x509.CertPool
}

func (r *RaftTLS) serverConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{r.Cert}, ClientCAs: r.CA, ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: tls.VersionTLS12}
}

// clientConfig verifies the peer's chain against CA but not its name.
func (r *RaftTLS) clientConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{r.Cert}, MinVersion: tls.VersionTLS12,
		InsecureSkipVerify: true, // the chain is checked below, the name is not
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("raft peer sent no certificate")
			}
			opts := x509.VerifyOptions{Roots: r.CA, Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(opts)
			return err
		}}
}

// tlsStream is a raft.StreamLayer over mutual TLS.
type tlsStream struct {
	net.Listener
	client *tls.Config
}

func (s *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(addr), s.client)
}

// newTLSTransport listens on addr with mutual TLS.
func newTLSTransport(addr string, r *RaftTLS, cfg *raft.NetworkTransportConfig) (*raft.NetworkTransport, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if a, ok := ln.Addr().(*net.TCPAddr); !ok || a.IP.IsUnspecified() {
		ln.Close()
		return nil, errors.New("local bind address is not advertisable: give a host, not 0.0.0.0")
	}
	cfg.Stream = &tlsStream{Listener: tls.NewListener(ln, r.serverConfig()), client: r.clientConfig()}
	return raft.NewNetworkTransportWithConfig(cfg), nil
}
