package rpc_test

import (
	"context"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-io/strata/internal/natstest"
	"github.com/strata-io/strata/internal/rpc"
)

// cutThenForward accepts connections on loopback: the first cut of them
// are closed at once (as a cut proxy or a restarting server does, which
// nats.Connect reports as a bare EOF), the rest are piped to target.
func cutThenForward(t *testing.T, target string, cut int32) (addr string, seen *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	seen = new(atomic.Int32)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if seen.Add(1) <= cut {
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return "nats://" + ln.Addr().String(), seen
}

// TestConnectWaitsForNATS: a process started while NATS refuses it (the
// startup exit seen in the fault suite, a bare "EOF") connects once NATS
// answers, and gives up with the URL named when it never does.
func TestConnectWaitsForNATS(t *testing.T) {
	s := natstest.Start(t)
	target := strings.TrimPrefix(s.ClientURL(), "nats://")
	url, seen := cutThenForward(t, target, 3)
	nc, err := rpc.Connect(context.Background(), url, 10*time.Second, nil)
	if err != nil {
		t.Fatalf("connect through three refusals: %v", err)
	}
	defer nc.Close()
	if err := nc.Publish("x", nil); err != nil {
		t.Fatal(err)
	}
	if n := seen.Load(); n != 4 {
		t.Fatalf("%d connection attempts, want 4", n)
	}

	never, _ := cutThenForward(t, target, 1<<30)
	start := time.Now()
	_, err = rpc.Connect(context.Background(), never, 300*time.Millisecond, nil)
	if err == nil || !strings.Contains(err.Error(), never) {
		t.Fatalf("connect to a server that always refuses: %v, want an error naming %s", err, never)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("gave up after %s, want about 300ms", d)
	}
}
