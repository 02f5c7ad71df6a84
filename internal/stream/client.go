package stream

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/bufpool"
	"github.com/strata-io/strata/internal/rpc"
)

// ErrNotSent means the request never left: the connection could not be
// made or was already broken. The caller may send it another way.
var ErrNotSent = errors.New("stream: request not sent")

// ErrConnLost means the connection dropped while the request was out: it
// may or may not have been served (as with a timeout), so the caller
// answers a retriable error rather than sending it again itself.
var ErrConnLost = errors.New("stream: connection lost with the request in flight")

// dialTimeout bounds connecting to a node.
const dialTimeout = 2 * time.Second

// Client sends Kafka requests to one node's stream address over two
// connections, each made on first use and again after it breaks: one
// for fetches, whose answers run to megabytes, and one for everything
// else. A produce's acknowledgement then never waits behind a fetch's
// records on the socket (a replay reading the local tail of a log
// would otherwise hold every acknowledgement of the node's answers).
type Client struct {
	addr, token string

	mu    sync.Mutex
	conns [lanes]*clientConn
	// failedAt is when the last dial failed: for a second after, requests
	// are not sent (ErrNotSent) rather than each waiting on a dial.
	failedAt time.Time
	closed   bool
}

// The lanes: requests go on one of a client's connections by kind.
const (
	laneControl = iota // produce and everything small
	laneBulk           // fetches
	lanes
)

// laneOf is the lane a request of key rides.
func laneOf(key int16) int {
	switch key {
	case kmsg.Fetch.Int16(), kmsg.ShareFetch.Int16():
		return laneBulk
	}
	return laneControl
}

// NewClient returns a client of the node streaming at addr, whose
// heartbeats name token.
func NewClient(addr, token string) *Client { return &Client{addr: addr, token: token} }

// Token is the node's stream token the client presents.
func (c *Client) Token() string { return c.token }

// Addr is the node's stream address.
func (c *Client) Addr() string { return c.addr }

// Close cuts the connection; requests in flight fail with ErrConnLost.
func (c *Client) Close() {
	c.mu.Lock()
	c.closed = true
	conns := c.conns
	c.conns = [lanes]*clientConn{}
	c.mu.Unlock()
	for _, cc := range conns {
		if cc != nil {
			cc.fail(ErrConnLost)
		}
	}
}

// get returns lane's live connection, dialling one if there is none.
func (c *Client) get(ctx context.Context, lane int) (*clientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("%w: client closed", ErrNotSent)
	}
	if cc := c.conns[lane]; cc != nil && !cc.dead() {
		return cc, nil
	}
	if time.Since(c.failedAt) < time.Second {
		return nil, fmt.Errorf("%w: %s unreachable a moment ago", ErrNotSent, c.addr)
	}
	d := net.Dialer{Timeout: dialTimeout}
	nc, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		c.failedAt = time.Now()
		return nil, fmt.Errorf("%w: %v", ErrNotSent, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := nc.Write(helloFrame(c.token)); err != nil {
		nc.Close()
		c.failedAt = time.Now()
		return nil, fmt.Errorf("%w: %v", ErrNotSent, err)
	}
	c.conns[lane] = newClientConn(nc)
	return c.conns[lane], nil
}

// ServeKafka sends req and waits for its response, with node.Node.
// ServeKafka's contract: release, never nil, gives back the buffer the
// response's record data lies in once it is no longer used. A
// transport failure is ErrNotSent or ErrConnLost (or the context's), a
// request-level failure the node answered a *rpc.RemoteError.
func (c *Client) ServeKafka(ctx context.Context, req kmsg.Request, tierRead bool, appended func()) (kmsg.Response, func(), error) {
	noop := func() {}
	cc, err := c.get(ctx, laneOf(req.Key()))
	if err != nil {
		return nil, noop, err
	}
	var flags byte
	if tierRead {
		flags |= flagTierRead
	}
	if appended != nil {
		flags |= flagWantAppended
	}
	var deadline int64
	if d, ok := ctx.Deadline(); ok {
		deadline = d.UnixNano()
	}
	frame := bufpool.Get(4 + requestHeader + rpc.SizeHint(req))[:4+requestHeader]
	frame[8] = flags
	binary.BigEndian.PutUint64(frame[9:], uint64(deadline))
	binary.BigEndian.PutUint16(frame[17:], uint16(req.Key()))
	binary.BigEndian.PutUint16(frame[19:], uint16(req.GetVersion()))
	frame = rpc.Append(frame, req)
	call := &call{done: make(chan struct{}), appended: appended}
	id, err := cc.send(frame, call)
	bufpool.Put(frame)
	if err != nil {
		return nil, noop, err
	}
	select {
	case <-call.done:
	case <-ctx.Done():
		if cc.forget(id) {
			return nil, noop, ctx.Err()
		}
		<-call.done // the answer is being delivered
	}
	if call.err != nil {
		return nil, noop, call.err
	}
	release := func() { bufpool.Put(call.body) }
	if call.kind == kindError {
		release()
		return nil, noop, &rpc.RemoteError{Msg: string(call.body[answerHeader:])}
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	// The response's byte fields (record batches) alias the frame, which
	// stays ours until release.
	if err := resp.ReadFrom(call.body[answerHeader:]); err != nil {
		release()
		return nil, noop, fmt.Errorf("stream: decode %s v%d: %w", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	return resp, release, nil
}

// call is one request waiting for its answer.
type call struct {
	appended func()
	done     chan struct{}
	kind     byte
	body     []byte // the whole answer frame after its length: id, kind, body
	err      error
}

// clientConn is one connection: requests are written whole, one at a
// time; a reader goroutine hands each answer to its call.
type clientConn struct {
	c   net.Conn
	wmu sync.Mutex

	mu      sync.Mutex
	pending map[uint32]*call
	next    uint32
	err     error // set once the connection is broken
}

func newClientConn(nc net.Conn) *clientConn {
	cc := &clientConn{c: nc, pending: map[uint32]*call{}}
	go cc.read()
	return cc
}

func (cc *clientConn) dead() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.err != nil
}

// send registers call under a new id and writes frame with it.
func (cc *clientConn) send(frame []byte, c *call) (uint32, error) {
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		return 0, fmt.Errorf("%w: %v", ErrNotSent, cc.err)
	}
	cc.next++
	id := cc.next
	cc.pending[id] = c
	cc.mu.Unlock()
	putLength(frame)
	binary.BigEndian.PutUint32(frame[4:], id)
	cc.wmu.Lock()
	cc.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := cc.c.Write(frame)
	cc.wmu.Unlock()
	if err != nil {
		// Part of the frame may have gone: the node may serve it.
		cc.fail(fmt.Errorf("%w: %v", ErrConnLost, err))
		<-c.done
		return 0, c.err
	}
	return id, nil
}

// forget drops a call whose caller gave up; false if its answer has
// already been taken for delivery.
func (cc *clientConn) forget(id uint32) bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if _, ok := cc.pending[id]; !ok {
		return false
	}
	delete(cc.pending, id)
	return true
}

// fail breaks the connection and ends every call in flight with err.
func (cc *clientConn) fail(err error) {
	cc.mu.Lock()
	if cc.err == nil {
		cc.err = err
	}
	pending := cc.pending
	cc.pending = map[uint32]*call{}
	cc.mu.Unlock()
	cc.c.Close()
	for _, c := range pending {
		c.err = err
		close(c.done)
	}
}

func (cc *clientConn) read() {
	r := bufio.NewReaderSize(cc.c, 64<<10)
	for {
		frame, err := readFrame(r, bufpool.Get)
		if err == nil && len(frame) < answerHeader {
			err = errors.New("short answer frame")
		}
		if err != nil {
			cc.fail(fmt.Errorf("%w: %v", ErrConnLost, err))
			return
		}
		id, kind := binary.BigEndian.Uint32(frame), frame[4]
		cc.mu.Lock()
		c := cc.pending[id]
		if c != nil && kind != kindAppended {
			delete(cc.pending, id)
		}
		cc.mu.Unlock()
		switch {
		case c == nil: // its caller gave up
			bufpool.Put(frame)
		case kind == kindAppended:
			bufpool.Put(frame)
			if c.appended != nil {
				c.appended()
			}
		default:
			c.kind, c.body = kind, frame
			close(c.done)
		}
	}
}
