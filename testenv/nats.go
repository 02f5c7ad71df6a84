package testenv

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// embeddedNATS is the NATS server a test cluster runs inside the test
// process, on a loopback port it keeps across restarts.
type embeddedNATS struct {
	mu   sync.Mutex
	srv  *server.Server
	opts server.Options
}

// startNATS starts a server on a free loopback port.
func startNATS(t testing.TB, maxPayload int32) *embeddedNATS {
	t.Helper()
	n := &embeddedNATS{opts: server.Options{Host: "127.0.0.1", Port: -1, MaxPayload: maxPayload, NoLog: true, NoSigs: true}}
	n.srv = n.start(t)
	n.opts.Port = n.srv.Addr().(*net.TCPAddr).Port
	return n
}

func (n *embeddedNATS) start(t testing.TB) *server.Server {
	t.Helper()
	srv, err := server.NewServer(n.opts.Clone())
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats not ready")
	}
	return srv
}

// server is the running server.
func (n *embeddedNATS) server() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// clientURL is where clients connect (the same across restarts).
func (n *embeddedNATS) clientURL() string { return n.server().ClientURL() }

// restart shuts the server down, waits down, and starts it again on the
// same address; clients reconnect by themselves.
func (n *embeddedNATS) restart(t testing.TB, down time.Duration) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	time.Sleep(down)
	n.srv = n.start(t)
}

func (n *embeddedNATS) shutdown() { n.server().Shutdown() }
