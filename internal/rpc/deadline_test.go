package rpc

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestDeadlineCarried(t *testing.T) {
	want := time.Now().Add(3 * time.Second).Truncate(time.Millisecond)
	sent, cancel := context.WithDeadline(context.Background(), want)
	defer cancel()
	msg := nats.NewMsg("s")
	SetDeadline(sent, msg)
	got, cancel := Context(msg, time.Hour)
	defer cancel()
	if d, _ := got.Deadline(); !d.Equal(want) {
		t.Fatalf("deadline %v, want %v", d, want)
	}

	past, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	SetDeadline(past, msg)
	late, cancel := Context(msg, time.Hour)
	defer cancel()
	if late.Err() == nil {
		t.Fatal("a message past its deadline gave a live context")
	}

	for _, v := range []string{"", "soon"} {
		m := nats.NewMsg("s")
		if v != "" {
			m.Header.Set(HeaderDeadline, v)
		}
		ctx, cancel := Context(m, time.Minute)
		d, ok := ctx.Deadline()
		cancel()
		if !ok || time.Until(d) < 50*time.Second {
			t.Fatalf("header %q: deadline %v, want the one-minute fallback", v, d)
		}
	}
}
