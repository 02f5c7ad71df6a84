// Package stream carries Kafka requests from gateways to nodes over a
// direct TCP connection, beside NATS: the bytes of a produce or a fetch
// then cross one socket instead of two and skip the NATS server's relay.
// NATS still carries discovery (a node's heartbeat names its stream
// address), control and everything else; a gateway that cannot reach a
// node's stream falls back to NATS.
//
// The wire: each frame is a 4-byte big-endian length and that many
// bytes. A request frame holds
//
//	id uint32 | flags uint8 | deadline int64 (Unix ns, 0: none) | api key int16 | api version int16 | kmsg body
//
// and an answer frame
//
//	id uint32 | kind uint8 | body
//
// A connection opens with a hello frame from the gateway: helloPrefix
// and the node's stream token, a secret the node names only in its
// heartbeats on NATS. A connection without it is closed unanswered, so
// reaching a node's stream port is not enough to produce or fetch: it
// takes what NATS gives only to Strata's own users.
//
// where kind is kindResponse (the response at the request's version),
// kindAppended (a produce's interim answer: every partition appended,
// only the wait for replicas left; no body) or kindError (a request-level
// failure; the body is its message). Requests on one connection are
// served concurrently and answered as they finish, matched by id.
package stream

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// NewToken makes a stream token: 32 random bytes, in hex.
func NewToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// helloFrame is the frame a connection opens with.
func helloFrame(token string) []byte {
	f := make([]byte, 4, 4+len(helloPrefix)+len(token))
	f = append(append(f, helloPrefix...), token...)
	putLength(f)
	return f
}

const (
	flagTierRead     = 1 << 0 // rpc.HeaderTierRead
	flagWantAppended = 1 << 1 // send kindAppended when a produce is appended

	kindResponse = 0
	kindAppended = 1
	kindError    = 2

	requestHeader = 4 + 1 + 8 + 2 + 2
	answerHeader  = 4 + 1

	helloPrefix  = "strata-stream/1 "
	helloTimeout = 5 * time.Second

	// MaxFrame bounds one frame: a fetch answer is at most 55 MiB of
	// records, a produce request at most the gateway's request bound.
	MaxFrame = 128 << 20
)

// ErrFrameTooLarge is a frame length over MaxFrame: the peer is not a
// Strata stream, or is broken; the connection is closed.
var ErrFrameTooLarge = errors.New("stream: frame too large")

// readFrame reads one frame's payload into a buffer from get.
func readFrame(r io.Reader, get func(int) []byte) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > MaxFrame {
		return nil, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, size)
	}
	buf := get(int(size))[:size]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// putLength fills the first four bytes of frame with the length of the
// rest.
func putLength(frame []byte) {
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
}

// isClosed reports an error that only says the connection ended.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)
}
