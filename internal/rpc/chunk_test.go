package rpc_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/strata-io/strata/internal/natstest"
	"github.com/strata-io/strata/internal/rpc"
)

// TestChunkedRoundTrip sends requests and replies from a few bytes to
// many times the max payload, several at once: each arrives whole, with
// its headers, paired with its own request.
func TestChunkedRoundTrip(t *testing.T) {
	// The reply is the request reversed, with its length in a header.
	caller := serveSvc(t, func(server *nats.Conn, m *nats.Msg) {
		if m.Sub == nil {
			t.Error("a gathered message is not bound to its subscription: m.Respond fails")
		}
		r := nats.NewMsg("")
		r.Header.Set("Len", m.Header.Get("Len"))
		out := make([]byte, len(m.Data))
		for i, b := range m.Data {
			out[len(out)-1-i] = b
		}
		r.Data = out
		if err := rpc.Respond(server, m, r); err != nil {
			t.Error(err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sizes := []int{0, 1, 60 << 10, 64 << 10, 200 << 10, 1 << 20, 3<<20 + 7}
	errs := make(chan error, len(sizes))
	for _, size := range sizes {
		go func() {
			body := make([]byte, size)
			for i := range body {
				body[i] = byte(rand.IntN(256))
			}
			m := nats.NewMsg("svc")
			m.Header.Set("Len", string(rune('a'+size%26)))
			m.Data = body
			r, err := caller.Request(ctx, m)
			if err != nil {
				errs <- err
				return
			}
			want := make([]byte, size)
			for i, b := range body {
				want[size-1-i] = b
			}
			if !bytes.Equal(r.Data, want) || r.Header.Get("Len") != m.Header.Get("Len") || r.Header.Get(rpc.HeaderChunk) != "" {
				errs <- errors.New("reply does not match its request")
				return
			}
			errs <- nil
		}()
	}
	for range sizes {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestCallerNoResponders(t *testing.T) {
	s := natstest.Start(t)
	caller := newCaller(t, s.Connect(t))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := caller.Request(ctx, nats.NewMsg("nobody")); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("got %v, want no responders", err)
	}
	// A subscriber that never answers: the context ends the wait.
	other := s.Connect(t)
	sub, _ := other.Subscribe("silent", func(*nats.Msg) {})
	defer sub.Unsubscribe()
	other.Flush() // the server knows the subscription before the request
	short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if _, err := caller.Request(short, nats.NewMsg("silent")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want deadline exceeded", err)
	}
}

// TestGatherRejectsBrokenChunks: chunks that do not start at 0 or skip one
// get an error reply, never a partial body passed on.
func TestGatherRejectsBrokenChunks(t *testing.T) {
	s := natstest.Start(t)
	nc := s.Connect(t)
	passed := make(chan *nats.Msg, 4)
	if _, err := nc.Subscribe("svc", rpc.Gather(slog.New(slog.DiscardHandler), func(m *nats.Msg) { passed <- m })); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	for _, seq := range [][]string{{"1/2"}, {"0/3", "2/3"}, {"0/2", "0/3"}, {"x"}} {
		inbox := nats.NewInbox()
		replies, _ := nc.SubscribeSync(inbox)
		for _, h := range seq {
			m := nats.NewMsg("svc")
			m.Reply = inbox
			m.Header.Set(rpc.HeaderChunk, h)
			m.Data = []byte("part")
			nc.PublishMsg(m)
		}
		r, err := replies.NextMsg(2 * time.Second)
		if err != nil || r.Header.Get(rpc.HeaderError) == "" {
			t.Fatalf("chunks %v: want an error reply, got %v %v", seq, r, err)
		}
		replies.Unsubscribe()
	}
	select {
	case m := <-passed:
		t.Fatalf("a broken chunked request reached the handler: %q", m.Data)
	default:
	}
}

// TestRequestProgress: a caller that asks for a stage hears the interim
// reply before the answer; one that does not ask gets none sent.
func TestRequestProgress(t *testing.T) {
	s := natstest.StartPayload(t, 64<<10)
	server, client := s.Connect(t), s.Connect(t)
	sent := make(chan bool, 2)
	if _, err := server.Subscribe("svc", rpc.Gather(slog.New(slog.DiscardHandler), func(m *nats.Msg) {
		ok, err := rpc.Progress(server, m, rpc.ProgressAppended)
		if err != nil {
			t.Error(err)
		}
		sent <- ok
		r := nats.NewMsg("")
		r.Data = []byte("answer")
		if err := rpc.Respond(server, m, r); err != nil {
			t.Error(err)
		}
	})); err != nil {
		t.Fatal(err)
	}
	server.Flush()
	caller := newCaller(t, client)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var stages []string
	r, err := caller.RequestProgress(ctx, nats.NewMsg("svc"), rpc.ProgressAppended, func(stage string) { stages = append(stages, stage) })
	if err != nil || string(r.Data) != "answer" {
		t.Fatalf("answer %v, %v", r, err)
	}
	if len(stages) != 1 || stages[0] != rpc.ProgressAppended || !<-sent {
		t.Fatalf("interim replies before the answer: %v", stages)
	}

	if r, err := caller.Request(ctx, nats.NewMsg("svc")); err != nil || string(r.Data) != "answer" {
		t.Fatalf("answer %v, %v", r, err)
	}
	if <-sent {
		t.Fatal("an interim reply was sent to a caller that did not ask for one")
	}
}

// newCaller is a Caller on nc, closed when the test ends.
func newCaller(t *testing.T, nc *nats.Conn) *rpc.Caller {
	t.Helper()
	c, err := rpc.NewCaller(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// serveSvc serves subject "svc" with handle, through Gather and a pool,
// on a server whose max payload is 64 KiB, and returns a caller on
// another connection.
func serveSvc(t *testing.T, handle func(server *nats.Conn, m *nats.Msg)) *rpc.Caller {
	t.Helper()
	s := natstest.StartPayload(t, 64<<10)
	server, client := s.Connect(t), s.Connect(t)
	pool := rpc.NewPool(8)
	t.Cleanup(pool.Close)
	if _, err := server.Subscribe("svc", rpc.Gather(slog.New(slog.DiscardHandler), pool.Wrap(func(m *nats.Msg) { handle(server, m) }))); err != nil {
		t.Fatal(err)
	}
	server.Flush()
	return newCaller(t, client)
}
