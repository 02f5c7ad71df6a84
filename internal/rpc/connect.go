package rpc

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// Connect dials NATS at url, trying again while the server cannot be
// reached (not started yet, restarting, or a connection closed during
// the handshake, which nats.Connect reports as a bare EOF) until wait has
// passed or ctx ends. A process that starts while NATS restarts waits for
// it instead of exiting. Each failure is logged; the last one is returned,
// naming the URL. Once connected, opts decide how the connection recovers
// (callers pass nats.MaxReconnects(-1)).
func Connect(ctx context.Context, url string, wait time.Duration, logger *slog.Logger, opts ...nats.Option) (*nats.Conn, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	deadline := time.Now().Add(wait)
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			if attempt > 1 {
				logger.Info("connected to NATS", "url", url, "attempts", attempt)
			}
			return nc, nil
		}
		if time.Now().Add(backoff).After(deadline) {
			return nil, fmt.Errorf("cannot reach NATS at %s (tried %d times over %s): %w", url, attempt, wait, err)
		}
		logger.Warn("cannot reach NATS, trying again", "url", url, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cannot reach NATS at %s: %w (%w)", url, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}
