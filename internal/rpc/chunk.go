package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// A request or reply bigger than the connection's max payload travels as
// numbered chunks, each a NATS message with the same headers plus
// HeaderChunk "i/n" (0-based), in order on one subject. Nothing is ever
// cut short: the receiver sees the whole body or nothing.
const HeaderChunk = "Strata-Chunk"

// headroom is kept free in every message for headers and protocol.
const headroom = 8 << 10

// chunkLimit is how many body bytes one message on nc may carry.
func chunkLimit(nc *nats.Conn) int {
	return max(int(nc.MaxPayload())-headroom, 1<<10)
}

// Fits reports whether n body bytes go in one message on nc.
func Fits(nc *nats.Conn, n int) bool { return n <= chunkLimit(nc) }

// chunks splits msg into messages that fit nc, or returns msg itself.
func chunks(nc *nats.Conn, msg *nats.Msg) []*nats.Msg {
	limit := chunkLimit(nc)
	if len(msg.Data) <= limit {
		return []*nats.Msg{msg}
	}
	n := (len(msg.Data) + limit - 1) / limit
	out := make([]*nats.Msg, 0, n)
	for i := range n {
		m := nats.NewMsg(msg.Subject)
		m.Reply = msg.Reply
		for k, v := range msg.Header {
			m.Header[k] = v
		}
		m.Header.Set(HeaderChunk, strconv.Itoa(i)+"/"+strconv.Itoa(n))
		m.Data = msg.Data[i*limit : min((i+1)*limit, len(msg.Data))]
		out = append(out, m)
	}
	return out
}

func publish(nc *nats.Conn, msg *nats.Msg) error {
	for _, m := range chunks(nc, msg) {
		if err := nc.PublishMsg(m); err != nil {
			return err
		}
	}
	return nil
}

// Progress sends req's caller an interim reply at stage, if it asked for
// that stage (RequestProgress); it reports whether it did.
func Progress(nc *nats.Conn, req *nats.Msg, stage string) (bool, error) {
	if req.Reply == "" || req.Header.Get(HeaderProgress) != stage {
		return false, nil
	}
	m := nats.NewMsg(req.Reply)
	m.Header.Set(HeaderProgress, stage)
	return true, nc.PublishMsg(m)
}

// Respond answers req with reply, in chunks when it is too big for one
// message.
func Respond(nc *nats.Conn, req, reply *nats.Msg) error {
	if req.Reply == "" {
		return errors.New("rpc: request has no reply subject")
	}
	reply.Subject = req.Reply
	return publish(nc, reply)
}

// parseChunk reads HeaderChunk; ok is false for a message sent whole.
func parseChunk(m *nats.Msg) (i, n int, ok bool, err error) {
	h := m.Header.Get(HeaderChunk)
	if h == "" {
		return 0, 1, false, nil
	}
	a, b, found := strings.Cut(h, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !found || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, true, fmt.Errorf("rpc: bad %s header %q", HeaderChunk, h)
	}
	return i, n, true, nil
}

// MaxMessageBytes bounds a message gathered from chunks: a fetch answer
// is capped at 55 MiB and a produce request at the gateway's
// socket.request.max.bytes (100 MiB). Chunk headers come from another
// process, so a count or size past this is refused before anything is
// allocated for it.
const MaxMessageBytes = 128 << 20

// maxPendingBytes bounds what one Gather holds for messages still being
// gathered, however many senders there are.
const maxPendingBytes = 2 * MaxMessageBytes

// partial is a chunked message being gathered.
type partial struct {
	first   *nats.Msg
	data    []byte
	next, n int
	started time.Time
}

// newPartial starts gathering from chunk 0 of n. Every chunk but the
// last carries the sender's chunk size, the first chunk's, so the whole
// is at most n times that: refused when that passes MaxMessageBytes.
func newPartial(m *nats.Msg, i, n int, now time.Time) (*partial, error) {
	if i != 0 {
		return nil, fmt.Errorf("rpc: chunk %d/%d without its start", i, n)
	}
	if len(m.Data) == 0 || n-1 > MaxMessageBytes/len(m.Data) { // division: n may be near MaxInt
		return nil, fmt.Errorf("rpc: %d chunks of %d bytes would pass the %d-byte message limit", n, len(m.Data), MaxMessageBytes)
	}
	return &partial{first: m, n: n, started: now, data: make([]byte, 0, len(m.Data)*n)}, nil
}

// reserved is what p may grow to.
func (p *partial) reserved() int { return cap(p.data) }

// add appends chunk i of n; it returns the whole message once the last
// chunk is in, or an error when chunks come out of order or of a size
// the first chunk did not announce.
func (p *partial) add(m *nats.Msg, i, n int) (*nats.Msg, error) {
	if i != p.next || n != p.n {
		return nil, fmt.Errorf("rpc: chunk %d/%d out of order, want %d/%d", i, n, p.next, p.n)
	}
	size, last := len(p.first.Data), i == n-1
	if (!last && len(m.Data) != size) || (last && (len(m.Data) == 0 || len(m.Data) > size)) {
		return nil, fmt.Errorf("rpc: chunk %d/%d of %d bytes, chunks are %d", i, n, len(m.Data), size)
	}
	p.data = append(p.data, m.Data...)
	p.next++
	if p.next < p.n {
		return nil, nil
	}
	whole := nats.NewMsg(p.first.Subject)
	whole.Reply, whole.Sub = p.first.Reply, p.first.Sub // Sub: whole.Respond works
	for k, v := range p.first.Header {
		whole.Header[k] = v
	}
	whole.Header.Del(HeaderChunk)
	whole.Data = p.data
	return whole, nil
}

// staleAfter drops a chunked request whose sender stopped halfway.
const staleAfter = time.Minute

// Gather wraps a subscription handler so it sees chunked requests whole.
// It must run on the subscription's own goroutine (NATS delivers one
// subscription's messages in order), before any handler pool. A chunk
// that does not fit (a header that lies about the count, a size the
// first chunk did not announce, more pending than maxPendingBytes) drops
// its message, with the reason logged and sent to the reply subject.
func Gather(logger *slog.Logger, h nats.MsgHandler) nats.MsgHandler {
	parts := map[string]*partial{}
	pending := 0 // bytes reserved by parts
	drop := func(key string) {
		if p := parts[key]; p != nil {
			pending -= p.reserved()
			delete(parts, key)
		}
	}
	return func(m *nats.Msg) {
		i, n, chunked, err := parseChunk(m)
		if !chunked {
			h(m)
			return
		}
		now := time.Now()
		for k, p := range parts {
			if now.Sub(p.started) > staleAfter {
				drop(k)
			}
		}
		key := m.Reply
		p := parts[key]
		if err == nil && p == nil {
			if p, err = newPartial(m, i, n, now); err == nil {
				if pending+p.reserved() > maxPendingBytes {
					p, err = nil, fmt.Errorf("rpc: %d bytes already pending in chunked messages", pending)
				} else {
					parts[key] = p
					pending += p.reserved()
				}
			}
		}
		var whole *nats.Msg
		if err == nil {
			whole, err = p.add(m, i, n)
		}
		if err != nil {
			drop(key)
			logger.Warn("rpc: chunked message dropped", "subject", m.Subject, "reply", m.Reply, "error", err)
			if m.Reply != "" {
				r := nats.NewMsg(m.Reply)
				r.Header.Set(HeaderError, err.Error())
				m.RespondMsg(r)
			}
			return
		}
		if whole != nil {
			drop(key)
			h(whole)
		}
	}
}

// Caller sends requests and gathers their replies, either of which may be
// bigger than the max payload. It keeps one wildcard inbox subscription,
// as nats.go's own request/reply does.
type Caller struct {
	nc     *nats.Conn
	prefix string
	sub    *nats.Subscription
	mu     sync.Mutex
	next   uint64
	calls  map[string]*call
}

type call struct {
	done     chan *nats.Msg
	progress func(stage string)
	partial  *partial
}

// NewCaller subscribes a fresh inbox on nc.
func NewCaller(nc *nats.Conn) (*Caller, error) {
	c := &Caller{nc: nc, prefix: nc.NewRespInbox(), calls: map[string]*call{}}
	sub, err := nc.Subscribe(c.prefix+".*", c.onReply)
	if err != nil {
		return nil, fmt.Errorf("rpc: subscribe reply inbox: %w", err)
	}
	c.sub = sub
	return c, nil
}

// Close stops taking replies.
func (c *Caller) Close() { c.sub.Unsubscribe() }

// Request sends msg and waits for the whole reply, until ctx ends.
// ErrNoResponders means nobody serves the subject. The subject's
// subscriber must not be in a queue group when msg may be chunked: the
// chunks of one request must all reach the same subscriber.
func (c *Caller) Request(ctx context.Context, msg *nats.Msg) (*nats.Msg, error) {
	return c.request(ctx, msg, true, nil)
}

// RequestProgress is Request that also asks for interim replies at stage
// (HeaderProgress) and calls progress with each one that comes before
// the answer. progress runs on the inbox's goroutine and must not block.
func (c *Caller) RequestProgress(ctx context.Context, msg *nats.Msg, stage string, progress func(stage string)) (*nats.Msg, error) {
	msg.Header.Set(HeaderProgress, stage)
	return c.request(ctx, msg, true, progress)
}

// RequestOne is Request for a subject served by a queue group: the
// request goes as one message (an error if it does not fit), the reply
// may still come in chunks.
func (c *Caller) RequestOne(ctx context.Context, msg *nats.Msg) (*nats.Msg, error) {
	return c.request(ctx, msg, false, nil)
}

func (c *Caller) request(ctx context.Context, msg *nats.Msg, split bool, progress func(string)) (*nats.Msg, error) {
	if !split && len(msg.Data) > chunkLimit(c.nc) {
		return nil, fmt.Errorf("rpc: request of %d bytes is over the NATS max payload (%d)", len(msg.Data), c.nc.MaxPayload())
	}
	c.mu.Lock()
	c.next++
	token := strconv.FormatUint(c.next, 36)
	cl := &call{done: make(chan *nats.Msg, 1), progress: progress}
	c.calls[token] = cl
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.calls, token)
		c.mu.Unlock()
	}()
	out := nats.NewMsg(msg.Subject)
	out.Header, out.Data, out.Reply = msg.Header, msg.Data, c.prefix+"."+token
	if err := publish(c.nc, out); err != nil {
		return nil, err
	}
	select {
	case r := <-cl.done:
		if r.Header.Get("Status") == "503" && len(r.Data) == 0 {
			return nil, nats.ErrNoResponders
		}
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *Caller) onReply(m *nats.Msg) {
	token := m.Subject[len(c.prefix)+1:]
	if stage := m.Header.Get(HeaderProgress); stage != "" {
		c.mu.Lock()
		cl := c.calls[token]
		c.mu.Unlock()
		if cl != nil && cl.progress != nil {
			// Outside the lock: progress may wait on its caller's own.
			// The answer comes after this message on this goroutine.
			cl.progress(stage)
		}
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.calls[token]
	if cl == nil {
		return // the caller gave up
	}
	i, n, chunked, err := parseChunk(m)
	if err == nil && chunked && cl.partial == nil {
		cl.partial, err = newPartial(m, i, n, time.Now())
	}
	if err == nil && chunked {
		var whole *nats.Msg
		if whole, err = cl.partial.add(m, i, n); err == nil {
			if whole == nil {
				return
			}
			m = whole
		}
	}
	if err != nil {
		r := nats.NewMsg(m.Subject)
		r.Header.Set(HeaderError, err.Error())
		m = r
	}
	delete(c.calls, token)
	cl.done <- m
}
