package stream

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/bufpool"
	"github.com/strata-io/strata/internal/rpc"
)

// Handler serves one Kafka request, as node.Node.ServeKafka does: release,
// never nil, is called once the response is encoded.
type Handler func(ctx context.Context, req kmsg.Request, tierRead bool, appended func()) (kmsg.Response, func(), error)

// maxRequestTime bounds a request that names no deadline, as the NATS
// path does.
const maxRequestTime = 30 * time.Second

// writeTimeout bounds one frame's write: a gateway that stops reading
// loses its connection rather than holding the node's goroutines.
const writeTimeout = 10 * time.Second

// Responded is told how long each answer took to encode and write.
type Responded func(req kmsg.Request, took time.Duration)

// Server serves a node's stream listener.
type Server struct {
	ln        net.Listener
	logger    *slog.Logger
	mu        sync.Mutex
	handler   Handler
	responded Responded
	conns     map[net.Conn]struct{}
	closed    bool
	base      context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	served    atomic.Int64
	hello     []byte // the hello frame's payload a connection must send
}

// Listen starts accepting on addr; a connection must open with token
// (NewToken). Requests are refused until SetHandler.
func Listen(addr, token string, logger *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{ln: ln, logger: logger, conns: map[net.Conn]struct{}{}, hello: []byte(helloPrefix + token)}
	s.base, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Served is how many requests the server has answered.
func (s *Server) Served() int64 { return s.served.Load() }

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// SetHandler starts serving requests with h; responded, when not nil,
// is told how long each answer took to encode and write.
func (s *Server) SetHandler(h Handler, responded Responded) {
	s.mu.Lock()
	s.handler, s.responded = h, responded
	s.mu.Unlock()
}

// Close stops accepting, cuts every connection (requests in progress are
// cancelled; their gateways see the connection drop) and waits.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.ln.Close()
	s.cancel()
	s.wg.Wait()
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c)
	}
}

// serverConn is one gateway's connection: frames are read in order and
// served concurrently; answers are written whole, one at a time.
type serverConn struct {
	s    *Server
	c    net.Conn
	wmu  sync.Mutex
	ctx  context.Context // cancelled when the connection ends
	werr error           // the first write failure; later answers are dropped
}

func (s *Server) serve(c net.Conn) {
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(s.base)
	sc := &serverConn{s: s, c: c, ctx: ctx}
	var reqs sync.WaitGroup
	defer func() {
		cancel()
		c.Close()
		reqs.Wait()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	r := bufio.NewReaderSize(c, 64<<10)
	c.SetReadDeadline(time.Now().Add(helloTimeout))
	hello := make([]byte, 4+len(s.hello))
	_, err := io.ReadFull(r, hello)
	if err != nil || int(binary.BigEndian.Uint32(hello)) != len(s.hello) || subtle.ConstantTimeCompare(hello[4:], s.hello) != 1 {
		s.logger.Warn("stream: a connection without this node's stream token; closing it", "remote", c.RemoteAddr().String())
		return
	}
	c.SetReadDeadline(time.Time{})
	for {
		frame, err := readFrame(r, bufpool.Get)
		if err != nil {
			if ctx.Err() == nil && !isClosed(err) {
				s.logger.Warn("stream connection dropped", "remote", c.RemoteAddr().String(), "error", err)
			}
			return
		}
		if len(frame) < requestHeader {
			s.logger.Warn("stream: short request frame; closing the connection", "remote", c.RemoteAddr().String())
			return
		}
		reqs.Add(1)
		go func() {
			defer reqs.Done()
			sc.handle(frame)
		}()
	}
}

// handle serves one request frame and gives its buffer back.
func (sc *serverConn) handle(frame []byte) {
	defer bufpool.Put(frame)
	id := binary.BigEndian.Uint32(frame)
	flags := frame[4]
	deadline := int64(binary.BigEndian.Uint64(frame[5:]))
	key, version := int16(binary.BigEndian.Uint16(frame[13:])), int16(binary.BigEndian.Uint16(frame[15:]))
	req := kmsg.RequestForKey(key)
	if req == nil {
		sc.answerError(id, fmt.Errorf("stream: unknown API key %d", key))
		return
	}
	req.SetVersion(version)
	if err := req.ReadFrom(frame[requestHeader:]); err != nil {
		sc.answerError(id, fmt.Errorf("stream: decode %s v%d: %w", kmsg.NameForKey(key), version, err))
		return
	}
	sc.s.mu.Lock()
	h, responded := sc.s.handler, sc.s.responded
	sc.s.mu.Unlock()
	if h == nil {
		sc.answerError(id, fmt.Errorf("stream: node starting"))
		return
	}
	limit := time.Now().Add(maxRequestTime)
	if d := time.Unix(0, deadline); deadline > 0 && d.Before(limit) {
		limit = d
	}
	ctx, cancel := context.WithDeadline(sc.ctx, limit)
	defer cancel()
	var appended func()
	if flags&flagWantAppended != 0 {
		appended = func() { sc.write([]byte{0, 0, 0, 0, 0, 0, 0, 0, kindAppended}, id) }
	}
	resp, release, err := h(ctx, req, flags&flagTierRead != 0, appended)
	if err != nil {
		release()
		sc.answerError(id, err)
		return
	}
	start := time.Now()
	resp.SetVersion(version)
	buf := bufpool.Get(answerHeader + 4 + rpc.SizeHint(resp))[:4+answerHeader]
	buf[8] = kindResponse
	buf = rpc.Append(buf, resp)
	release() // the encoding holds its own copy of the record data
	sc.write(buf, id)
	bufpool.Put(buf)
	if responded != nil {
		responded(req, time.Since(start))
	}
}

func (sc *serverConn) answerError(id uint32, err error) {
	sc.write(append([]byte{0, 0, 0, 0, 0, 0, 0, 0, kindError}, err.Error()...), id)
}

// write sends an answer frame (length and id are filled in here).
func (sc *serverConn) write(frame []byte, id uint32) {
	putLength(frame)
	binary.BigEndian.PutUint32(frame[4:], id)
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	if sc.werr != nil {
		return
	}
	sc.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := sc.c.Write(frame); err != nil {
		sc.werr = err
		sc.c.Close() // the reader ends, and with it the connection
		return
	}
	if frame[8] != kindAppended {
		sc.s.served.Add(1)
	}
}
