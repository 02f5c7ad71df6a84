package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/rpc"
)

// testToken is the test servers' stream token.
const testToken = "0123456789abcdef"

// testServer serves h on a loopback port until the test ends.
func testServer(t *testing.T, h Handler) *Server {
	t.Helper()
	s, err := Listen("127.0.0.1:0", testToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.SetHandler(h, nil)
	t.Cleanup(s.Close)
	return s
}

func fetchReq(topic string) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	t := kmsg.NewFetchRequestTopic()
	t.Topic = topic
	t.Partitions = append(t.Partitions, kmsg.NewFetchRequestTopicPartition())
	req.Topics = append(req.Topics, t)
	return req
}

func TestRoundTrips(t *testing.T) {
	var released atomic.Int64
	s := testServer(t, func(ctx context.Context, req kmsg.Request, tierRead bool, appended func()) (kmsg.Response, func(), error) {
		r := req.(*kmsg.FetchRequest)
		switch r.Topics[0].Topic {
		case "fail":
			return nil, func() { released.Add(1) }, errors.New("not served here")
		case "slow":
			if appended != nil {
				appended()
			}
			<-ctx.Done()
			return nil, func() { released.Add(1) }, ctx.Err()
		}
		// One partition, its records the topic's name and zeros.
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = r.Topics[0].Topic
		p := kmsg.NewFetchResponseTopicPartition()
		p.RecordBatches = make([]byte, 3<<20) // bigger than a socket buffer
		copy(p.RecordBatches, rt.Topic)
		if tierRead {
			p.HighWatermark = 1
		}
		rt.Partitions = append(rt.Partitions, p)
		resp.Topics = append(resp.Topics, rt)
		return resp, func() { released.Add(1) }, nil
	})
	c := NewClient(s.Addr(), testToken)
	defer c.Close()
	ctx := context.Background()

	// Many at once on the one connection, each matched to its answer.
	errc := make(chan error, 20)
	for i := range 20 {
		go func() {
			topic := string(rune('a' + i))
			resp, release, err := c.ServeKafka(ctx, fetchReq(topic), i%2 == 0, nil)
			if err == nil {
				p := resp.(*kmsg.FetchResponse).Topics[0].Partitions[0]
				if resp.(*kmsg.FetchResponse).Topics[0].Topic != topic || string(p.RecordBatches[:1]) != topic || (p.HighWatermark == 1) != (i%2 == 0) {
					err = errors.New("answer to another request")
				}
			}
			release()
			errc <- err
		}()
	}
	for range 20 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	// A request-level failure comes back as the node's error.
	var re *rpc.RemoteError
	if _, release, err := c.ServeKafka(ctx, fetchReq("fail"), false, nil); !errors.As(err, &re) || re.Msg != "not served here" {
		t.Fatalf("failure: %v", err)
	} else {
		release()
	}
	// The interim answer arrives before the caller gives up.
	var got atomic.Bool
	sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, _, err := c.ServeKafka(sctx, fetchReq("slow"), false, func() { got.Store(true) })
	cancel()
	// The deadline travelled with the request: either side may notice
	// it first, the caller (its context's error) or the node (its
	// answer says so).
	if !got.Load() || !(errors.Is(err, context.DeadlineExceeded) || errors.As(err, &re) && strings.Contains(re.Msg, "deadline exceeded")) {
		t.Fatalf("slow request: %v, appended %v", err, got.Load())
	}
	// The node stopped waiting too, and every response's data was given
	// back.
	for deadline := time.Now().Add(5 * time.Second); released.Load() != 22; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d releases, want 22", released.Load())
		}
	}
}

func TestConnectionLoss(t *testing.T) {
	started := make(chan struct{}, 1)
	s := testServer(t, func(ctx context.Context, req kmsg.Request, _ bool, _ func()) (kmsg.Response, func(), error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, func() {}, ctx.Err()
	})
	c := NewClient(s.Addr(), testToken)
	defer c.Close()
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.ServeKafka(context.Background(), fetchReq("x"), false, nil)
		errc <- err
	}()
	<-started
	s.Close() // the node goes away mid-request
	if err := <-errc; !errors.Is(err, ErrConnLost) {
		t.Fatalf("request in flight when the node went: %v", err)
	}
	// Nobody listens now: not sent, so the gateway may use NATS.
	if _, _, err := c.ServeKafka(context.Background(), fetchReq("x"), false, nil); !errors.Is(err, ErrNotSent) {
		t.Fatalf("request to a node gone: %v", err)
	}
}

// TestHostileFrames: garbage, a frame too short, one too large and a
// request that does not decode cost the sender its connection or an
// error answer, never the node.
func TestHostileFrames(t *testing.T) {
	s := testServer(t, func(ctx context.Context, req kmsg.Request, _ bool, _ func()) (kmsg.Response, func(), error) {
		return req.ResponseKind(), func() {}, nil
	})
	frame := func(payload []byte) []byte {
		return binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
	}
	for _, b := range [][]byte{
		append(frame(make([]byte, 3)), 1, 2, 3),        // shorter than a request header
		binary.BigEndian.AppendUint32(nil, MaxFrame+1), // too large
		[]byte("GET / HTTP/1.1\r\n\r\n"),
	} {
		conn, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conn.Write(helloFrame(testToken)) // past the hello, to the frames
		conn.Write(b)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := conn.Read(make([]byte, 1)); err == nil {
			t.Fatalf("%q: the node answered %d bytes instead of closing", b, n)
		}
		conn.Close()
	}
	// A well-framed request whose body is garbage gets an error answer
	// (after the hello: without it, nothing is answered).
	body := make([]byte, requestHeader+5)
	binary.BigEndian.PutUint16(body[13:], uint16(kmsg.Fetch))
	binary.BigEndian.PutUint16(body[15:], 12)
	copy(body[requestHeader:], "\xff\xff\xff\xff\xff")
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write(helloFrame(testToken))
	conn.Write(append(frame(body), body...))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	answer, err := readFrame(conn, func(n int) []byte { return make([]byte, n) })
	if err != nil || answer[4] != kindError {
		t.Fatalf("garbage body: %v, answer %q", err, answer)
	}
	// And the node still serves.
	c := NewClient(s.Addr(), testToken)
	defer c.Close()
	if _, release, err := c.ServeKafka(context.Background(), fetchReq("ok"), false, nil); err != nil {
		t.Fatal(err)
	} else {
		release()
	}
}

// TestStreamNeedsToken: a client with another token, or a raw
// connection that sends a request without the hello, is closed
// unanswered; the right token is served.
func TestStreamNeedsToken(t *testing.T) {
	s := testServer(t, func(ctx context.Context, req kmsg.Request, tierRead bool, appended func()) (kmsg.Response, func(), error) {
		return req.ResponseKind(), func() {}, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	good := NewClient(s.Addr(), testToken)
	defer good.Close()
	if _, release, err := good.ServeKafka(ctx, fetchReq("t"), false, nil); err != nil {
		t.Fatalf("with the token: %v", err)
	} else {
		release()
	}
	bad := NewClient(s.Addr(), "not-the-token-xx")
	defer bad.Close()
	if _, _, err := bad.ServeKafka(ctx, fetchReq("t"), false, nil); err == nil {
		t.Fatal("a client with another token was served")
	}
	// A request frame where the hello should be.
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	frame := make([]byte, 4+requestHeader)
	putLength(frame)
	c.Write(frame)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection without the hello was answered")
	}
	if s.Served() != 1 {
		t.Fatalf("%d requests served, want 1", s.Served())
	}
}

// TestFetchesRideTheirOwnConnection: a fetch's answer, megabytes of
// records, never sits on the socket in front of a produce's
// acknowledgement: fetches and everything else take two connections.
func TestFetchesRideTheirOwnConnection(t *testing.T) {
	s := testServer(t, func(ctx context.Context, req kmsg.Request, tierRead bool, appended func()) (kmsg.Response, func(), error) {
		resp := req.ResponseKind()
		if f, ok := resp.(*kmsg.FetchResponse); ok {
			rt := kmsg.NewFetchResponseTopic()
			p := kmsg.NewFetchResponseTopicPartition()
			p.RecordBatches = make([]byte, 8<<20)
			rt.Partitions = append(rt.Partitions, p)
			f.Topics = append(f.Topics, rt)
		}
		return resp, func() {}, nil
	})
	conns := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.conns)
	}
	c := NewClient(s.Addr(), testToken)
	defer c.Close()
	ctx := context.Background()
	produce := kmsg.NewPtrProduceRequest()
	produce.SetVersion(9)
	for range 3 {
		if _, release, err := c.ServeKafka(ctx, produce, false, nil); err != nil {
			t.Fatal(err)
		} else {
			release()
		}
	}
	if n := conns(); n != 1 {
		t.Fatalf("%d connections after produces, want 1", n)
	}
	done := make(chan error, 1)
	go func() {
		_, release, err := c.ServeKafka(ctx, fetchReq("t"), false, nil)
		if err == nil {
			release()
		}
		done <- err
	}()
	for range 20 { // acknowledgements go on while fetches are answered
		if _, release, err := c.ServeKafka(ctx, produce, false, nil); err != nil {
			t.Fatal(err)
		} else {
			release()
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := conns(); n != 2 {
		t.Fatalf("%d connections after a fetch, want 2 (one for fetches)", n)
	}
}
