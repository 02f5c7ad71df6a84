package gateway_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/testenv"
)

// apiVersionsWorks checks the listener still answers a well-formed
// request on a fresh connection.
func apiVersionsWorks(t testing.TB, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("listener gone: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(3)
	req.ClientSoftwareName, req.ClientSoftwareVersion = "probe", "1"
	if _, err := conn.Write(kmsg.NewRequestFormatter().AppendRequest(nil, req, 42)); err != nil {
		t.Fatal(err)
	}
	if corr, _, err := testenv.ReadFrame(conn); err != nil || corr != 42 {
		t.Fatalf("no answer, or a wrong one, after bad input: correlation id %d, %v", corr, err)
	}
}

// FuzzListener sends random and mutated frames to a live gateway, on a
// plaintext listener and on a SASL one (where they meet the SASL
// exchange): it must not crash, the bad connection is closed or
// answered, and other clients are still served.
func FuzzListener(f *testing.F) {
	c := testenv.InProcess(f, 1, testenv.Options{Gateway: func(cfg *gateway.Config) {
		cfg.Listeners = []gateway.Listener{{Addr: "127.0.0.1:0"}, {Name: "SASL", Addr: "127.0.0.1:0", Protocol: gateway.SASLPlaintext}}
	}})
	addr, saslAddr := c.Addr(), c.Gateway.ListenerAddr("SASL")
	mk := func(req kmsg.Request) []byte { return kmsg.NewRequestFormatter().AppendRequest(nil, req, 1) }
	f.Add(mk(&kmsg.ApiVersionsRequest{Version: 3, ClientSoftwareName: "a", ClientSoftwareVersion: "1"}))
	f.Add(mk(&kmsg.MetadataRequest{Version: 9}))
	f.Add(mk(&kmsg.ApiVersionsRequest{Version: 99}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})              // negative size
	f.Add([]byte{0x7f, 0, 0, 0})                       // size past the limit
	f.Add([]byte{0, 0, 0, 10, 0, 3, 0, 9, 0, 0, 0, 1}) // truncated Metadata
	f.Add([]byte{0, 0, 0, 8, 0x40, 0, 0, 0, 0, 0, 0, 1})
	scram := mk(&kmsg.SASLHandshakeRequest{Version: 1, Mechanism: "SCRAM-SHA-256"})
	f.Add(append(scram, mk(&kmsg.SASLAuthenticateRequest{Version: 2, SASLAuthBytes: []byte("n,,n=alice,r=abc")})...))
	f.Add(append(mk(&kmsg.SASLHandshakeRequest{Version: 0, Mechanism: "PLAIN"}), 0, 0, 0, 5, 0, 'a', 0, 'b', 'c'))
	f.Add(mk(&kmsg.SASLAuthenticateRequest{Version: 1, SASLAuthBytes: []byte("\x00u\x00p")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, a := range []string{addr, saslAddr} {
			conn, err := net.DialTimeout("tcp", a, 2*time.Second)
			if err != nil {
				t.Fatalf("listener gone: %v", err)
			}
			conn.SetDeadline(time.Now().Add(200 * time.Millisecond))
			conn.Write(b)
			io.Copy(io.Discard, conn) // until the gateway closes or the deadline
			conn.Close()
			apiVersionsWorks(t, a)
		}
	})
}
