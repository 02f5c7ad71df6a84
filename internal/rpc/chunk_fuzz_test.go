package rpc

import (
	"encoding/binary"
	"log/slog"
	"runtime"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
)

// TestGatherBoundsLyingHeaders: a chunk header from another process is
// not trusted as a size. "0/1073741824" with a 512 KiB body once made a
// node exit with "makeslice: cap out of range"; smaller counts asked for
// gigabytes. Each is refused before anything is allocated for it.
func TestGatherBoundsLyingHeaders(t *testing.T) {
	var passed int
	g := Gather(slog.New(slog.DiscardHandler), func(*nats.Msg) { passed++ })
	body := make([]byte, 512<<10)
	for _, h := range []string{"0/1073741824", "0/9223372036854775807", "0/4096", "0/258"} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		m := nats.NewMsg("svc")
		m.Reply = "r." + h
		m.Header.Set(HeaderChunk, h)
		m.Data = body
		g(m)
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
			t.Errorf("%s: %d bytes allocated for a refused message", h, grew)
		}
	}
	// Chunks of a size the first did not announce are refused too.
	for _, sizes := range [][]int{{4, 8, 4}, {4, 2, 4}, {4, 4, 9}, {4, 4, 0}} {
		for i, size := range sizes {
			m := nats.NewMsg("svc")
			m.Reply = "sizes"
			m.Header.Set(HeaderChunk, strconv.Itoa(i)+"/3")
			m.Data = make([]byte, size)
			g(m)
		}
	}
	if passed != 0 {
		t.Fatalf("%d refused messages reached the handler", passed)
	}
}

// FuzzGather feeds a gatherer messages made from the input: chunk headers
// true, lying or malformed, bodies of any size, reply subjects shared or
// not. Invariants: no panic; what reaches the handler is a message sent
// whole or one put together from chunks, never bigger than
// MaxMessageBytes; what is pending stays within maxPendingBytes.
func FuzzGather(f *testing.F) {
	f.Add([]byte{0, 0, 1, 4, 0})
	f.Add([]byte{1, 0, 3, 4, 0, 1, 1, 3, 4, 0, 1, 2, 3, 2, 0})
	f.Add([]byte{1, 0, 255, 255, 1, 2, 0, 255, 8, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		g := Gather(slog.New(slog.DiscardHandler), func(m *nats.Msg) {
			if m.Header.Get(HeaderChunk) != "" || len(m.Data) > MaxMessageBytes {
				t.Fatalf("handler got %d bytes, chunk header %q", len(m.Data), m.Header.Get(HeaderChunk))
			}
		})
		for _, m := range fuzzMessages(in) {
			g(m.Msg)
		}
	})
}

// FuzzCallerReply is FuzzGather for the reply side: chunked replies of
// every shape, to calls that exist or not. Invariants: no panic, and a
// call gets either a whole reply or an error.
func FuzzCallerReply(f *testing.F) {
	f.Add([]byte{1, 0, 3, 4, 0, 1, 1, 3, 4, 0, 1, 2, 3, 2, 0})
	f.Add([]byte{1, 0, 255, 255, 1, 2})
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &Caller{prefix: "inbox", calls: map[string]*call{}}
		for _, token := range []string{"0", "1", "2"} {
			c.calls[token] = &call{done: make(chan *nats.Msg, 1)}
		}
		calls := map[string]*call{}
		for k, v := range c.calls {
			calls[k] = v
		}
		for _, m := range fuzzMessages(in) {
			m.Subject = "inbox." + strconv.Itoa(int(m.Data0)%4)
			c.onReply(m.Msg)
		}
		for token, cl := range calls {
			select {
			case r := <-cl.done:
				if r.Header.Get(HeaderChunk) != "" || len(r.Data) > MaxMessageBytes {
					t.Fatalf("call %s got %d bytes, chunk header %q", token, len(r.Data), r.Header.Get(HeaderChunk))
				}
			default:
			}
		}
	})
}

// fuzzMsg is a message and the first byte that shaped it.
type fuzzMsg struct {
	*nats.Msg
	Data0 byte
}

// fuzzMessages turns fuzz input into messages, 5 bytes each: kind, i, n
// (two bytes), body size in 256-byte steps (the last one: exact bytes).
func fuzzMessages(in []byte) []fuzzMsg {
	var out []fuzzMsg
	for len(in) >= 5 {
		kind, i, n, size := in[0], int(in[1]), int(binary.BigEndian.Uint16(in[2:])), int(in[4])
		in = in[5:]
		m := nats.NewMsg("svc")
		m.Reply = "r" + strconv.Itoa(int(kind>>4)%3)
		switch kind % 6 {
		case 0: // sent whole
		case 1:
			m.Header.Set(HeaderChunk, strconv.Itoa(i)+"/"+strconv.Itoa(n))
		case 2: // a count that lies big, up to the largest int
			m.Header.Set(HeaderChunk, strconv.Itoa(i)+"/"+strconv.Itoa(max(n<<(i%48), n)|int(size)<<(i%64)))
		case 3:
			m.Header.Set(HeaderChunk, "garbage/"+strconv.Itoa(n))
		case 4:
			m.Header.Set(HeaderChunk, strconv.Itoa(-i)+"/"+strconv.Itoa(-n))
		case 5:
			m.Header.Set(HeaderChunk, "")
		}
		if kind&8 != 0 {
			size *= 256
		}
		m.Data = make([]byte, size)
		out = append(out, fuzzMsg{m, kind})
	}
	return out
}
