package rpc

import (
	"context"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// HeaderDeadline carries the time (Unix milliseconds, the sender's
// clock) after which the sender no longer waits for an answer, so work it
// asked for must not start: a message that sat in a paused node's socket,
// or a forward that outlived its caller, is dropped instead of applied
// after a newer request from the same client. Clocks of the cluster's
// machines are assumed to agree far better than the margins it guards.
const HeaderDeadline = "Strata-Deadline"

// SetDeadline records ctx's deadline, if it has one, on msg.
func SetDeadline(ctx context.Context, msg *nats.Msg) {
	d, ok := ctx.Deadline()
	if !ok {
		return
	}
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	msg.Header.Set(HeaderDeadline, strconv.FormatInt(d.UnixMilli(), 10))
}

// Context returns a context for handling msg: it ends at the deadline the
// sender set, or after fallback when the sender set none (or a malformed
// one). A deadline already past gives a context already done.
func Context(msg *nats.Msg, fallback time.Duration) (context.Context, context.CancelFunc) {
	if v := msg.Header.Get(HeaderDeadline); v != "" {
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
			return context.WithDeadline(context.Background(), time.UnixMilli(ms))
		}
	}
	return context.WithTimeout(context.Background(), fallback)
}
