// Package natstest starts an embedded NATS server on loopback for tests.
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Server is an embedded NATS server.
type Server struct {
	*server.Server
}

// Start runs a NATS server on a free loopback port with an 8 MiB max
// payload (as strata dev does) and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartPayload(t, 8<<20)
}

// StartPayload is Start with the given max payload.
func StartPayload(t testing.TB, maxPayload int32) *Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, MaxPayload: maxPayload, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats server not ready within 5s")
	}
	t.Cleanup(s.Shutdown)
	return &Server{s}
}

// Connect opens a client connection closed when the test ends.
func (s *Server) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}
