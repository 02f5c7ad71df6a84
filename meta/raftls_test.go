package meta

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"net"
	"testing"
	"time"

	"github.com/strata-io/strata/internal/testcerts"
)

// TestRaftTLS: a group whose members talk mutual TLS elects, replicates
// and reads; a member with a certificate from another CA, or none,
// cannot join the conversation.
func TestRaftTLS(t *testing.T) {
	certs := testcerts.New(t)
	member, _, _ := certs.Client(pkix.Name{CommonName: "member"}, false)
	rt := &RaftTLS{Cert: member, CA: certs.CA}
	g := startGroup(t, 3, func(c *ServerConfig) { c.RaftTLS = rt })
	mustPropose(t, g.leader(), testTopic("orders", 1, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v := g.consistentView(ctx)
	if _, ok, err := v.Topic("orders"); err != nil || !ok {
		t.Fatalf("topic over a TLS group: %v %v", ok, err)
	}
	v.Close()

	leader := g.leader()
	for name, cfg := range map[string]*tls.Config{
		"plaintext":  nil,
		"no cert":    {InsecureSkipVerify: true},
		"another CA": {InsecureSkipVerify: true, Certificates: []tls.Certificate{foreign(t)}},
	} {
		c, err := net.DialTimeout("tcp", leader.Addr(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var conn net.Conn = c
		if cfg != nil {
			tc := tls.Client(c, cfg)
			tc.SetDeadline(time.Now().Add(2 * time.Second))
			if err := tc.Handshake(); err == nil {
				// TLS 1.3 reports a refused client certificate at the
				// first read.
				if _, err := tc.Read(make([]byte, 1)); err == nil {
					t.Errorf("%s: the member answered", name)
				}
			}
			conn = tc
		} else {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			c.Write([]byte{0, 0, 0, 0, 0, 0, 0, 0})
			if _, err := c.Read(make([]byte, 1)); err == nil {
				t.Errorf("%s: the member answered", name)
			}
		}
		conn.Close()
	}
}

// foreign is a certificate from a CA the group does not trust.
func foreign(t *testing.T) tls.Certificate {
	other := testcerts.New(t)
	c, _, _ := other.Client(pkix.Name{CommonName: "intruder"}, false)
	return c
}
