package gateway

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/strata-io/strata/internal/bufpool"
)

// A client's claim of a request's size costs nothing until its bytes
// arrive: a frame's buffer starts at firstChunk and grows by growFactor
// as the bytes come (at most growFactor times what arrived), so a
// thousand connections that each claim 100 MB and send 4 KiB hold a few
// megabytes, not a hundred gigabytes.
const (
	firstChunk = 64 << 10
	growFactor = 4
)

// requestBudget bounds the bytes of every request read and not yet
// handled, across the gateway's connections (Kafka's
// queued.max.request.bytes, KIP-72). A connection whose next frame does
// not fit waits before reading it, and so stops reading its socket: the
// client is slowed by TCP's own backpressure, and no request already
// read fails.
type requestBudget struct {
	sem   *semaphore.Weighted
	total int64
	inUse atomic.Int64
}

func newRequestBudget(total int64) *requestBudget {
	return &requestBudget{sem: semaphore.NewWeighted(total), total: total}
}

// acquire charges a frame of size bytes, waiting for room. A frame
// bigger than the whole budget (socket.request.max.bytes set above
// queued.max.request.bytes) charges all of it, and so runs alone.
func (b *requestBudget) acquire(ctx context.Context, size int) (int64, error) {
	n := min(int64(size), b.total)
	if err := b.sem.Acquire(ctx, n); err != nil {
		return 0, err
	}
	b.inUse.Add(n)
	return n, nil
}

func (b *requestBudget) release(n int64) {
	if n > 0 {
		b.inUse.Add(-n)
		b.sem.Release(n)
	}
}

// errFrameStalled is a frame whose bytes stopped arriving mid-read.
type errFrameStalled struct {
	got, size int
	stall     time.Duration
}

func (e errFrameStalled) Error() string {
	return fmt.Sprintf("request stalled: %d of %d bytes in, nothing for %s", e.got, e.size, e.stall)
}

// frameConn reads one connection's request frames.
type frameConn struct {
	c net.Conn
	r *bufio.Reader
	// idle bounds the wait for a frame's first byte
	// (connections.max.idle.ms); stall the wait for each later piece of
	// it. Zero: no bound.
	idle, stall time.Duration
}

// size reads the next frame's length prefix.
func (f *frameConn) size() (int32, error) {
	var b [4]byte
	var deadline time.Time // none
	if f.idle > 0 {
		deadline = time.Now().Add(f.idle)
	}
	f.c.SetReadDeadline(deadline)
	if _, err := io.ReadFull(f.r, b[:1]); err != nil {
		return 0, err
	}
	if err := f.readFull(b[1:], 1, 4); err != nil {
		return 0, err
	}
	return int32(binary.BigEndian.Uint32(b[:])), nil
}

// body reads a frame of size bytes, allocating as they arrive. A frame
// of more than firstChunk bytes is a pooled buffer.
func (f *frameConn) body(size int) ([]byte, error) {
	if size <= firstChunk {
		b := make([]byte, size)
		return b, f.readFull(b, 0, size)
	}
	b := bufpool.Get(firstChunk)
	for len(b) < size {
		if len(b) == cap(b) {
			nb := bufpool.Get(min(size, growFactor*cap(b)))
			nb = append(nb, b...)
			bufpool.Put(b)
			b = nb
		}
		n := min(cap(b), size)
		if err := f.readFull(b[len(b):n], len(b), size); err != nil {
			bufpool.Put(b)
			return nil, err
		}
		b = b[:n]
	}
	return b, nil
}

// readFull fills p, the frame's bytes from got on, failing if nothing
// arrives for f.stall.
func (f *frameConn) readFull(p []byte, got, size int) error {
	for len(p) > 0 {
		if f.stall > 0 {
			f.c.SetReadDeadline(time.Now().Add(f.stall))
		}
		n, err := f.r.Read(p)
		p, got = p[n:], got+n
		switch {
		case err == nil || len(p) == 0:
		case err == io.EOF:
			return io.ErrUnexpectedEOF
		case isTimeout(err):
			return errFrameStalled{got: got, size: size, stall: f.stall}
		default:
			return err
		}
	}
	return nil
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
