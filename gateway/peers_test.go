package gateway

import (
	"testing"
	"time"

	"github.com/strata-io/strata/internal/natstest"
)

// TestDeafPeerDropped: a gateway that stops hearing NATS (its sends still
// go out) says so in its heartbeats, and the others stop listing it, so
// their Metadata sends no client to it.
func TestDeafPeerDropped(t *testing.T) {
	ns := natstest.Start(t)
	start := func(id int32) *peers {
		p, err := startPeers(ns.Connect(t), "test", peerBeat{ID: id, Host: "127.0.0.1", Port: 9000 + id}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.close)
		return p
	}
	a, b := start(1), start(2)
	lists := func(p *peers, id int32) bool {
		for _, q := range p.live() {
			if q.id == id {
				return true
			}
		}
		return false
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(4 * peerExpiry)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	wait("gateway 1 never listed gateway 2", func() bool { return lists(a, 2) })
	// Gateway 2 hears nothing from now on; its heartbeats still go out.
	if err := b.sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	deafAt := time.Now()
	wait("gateway 1 still lists gateway 2, deaf", func() bool { return !lists(a, 2) })
	t.Logf("dropped %v after it went deaf", time.Since(deafAt))
	if !lists(b, 2) {
		t.Fatal("a deaf gateway stopped listing itself")
	}
}
