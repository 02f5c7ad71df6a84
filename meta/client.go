package meta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// Client reaches the metadata group over NATS from anywhere (a gateway, a
// node, the CLI's admin paths): proposals on meta.apply and consistent
// reads on meta.read, answered by the controller.
type Client struct {
	nc      *nats.Conn
	cluster string
}

// readTry is how long a read's first try waits for an answer.
const readTry = time.Second

// NewClient returns a client for the cluster.
func NewClient(nc *nats.Conn, cluster string) *Client { return &Client{nc: nc, cluster: cluster} }

func (c *Client) request(ctx context.Context, subj string, data []byte) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	msg, err := c.nc.RequestWithContext(ctx, subject(c.cluster, subj), data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNotLeader, subj, err)
	}
	return msg.Data, nil
}

// Propose applies a command through the controller. A rejected command
// returns an error wrapping its sentinel.
func (c *Client) Propose(ctx context.Context, cmd Command) (*ApplyResult, error) {
	data, err := c.request(ctx, subjApply, EncodeCommand(cmd))
	if err != nil {
		return nil, err
	}
	var r applyReply
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("meta: malformed apply reply: %w", err)
	}
	if r.Error != "" {
		if r.Code == errCode(ErrNotLeader) {
			return nil, codeErr(r.Code, r.Error)
		}
		return &ApplyResult{Err: codeErr(r.Code, r.Error)}, nil
	}
	res := &ApplyResult{Value: r.Value}
	if r.Partition != nil {
		res.Partition = *r.Partition
	}
	return res, nil
}

// Read returns part of the state as of a consistent read.
//
// A read changes nothing, so one not answered soon is asked again, with
// twice the time each round, until ctx ends: NATS hands each try to a
// member of the queue group at random, and a member that looks alive but
// receives nothing (a one-way partition) then costs a try, not the read.
func (c *Client) Read(ctx context.Context, req ReadRequest) (*ReadResponse, error) {
	b, _ := json.Marshal(req)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	var data []byte
	var err error
	for try := readTry; ; try *= 2 {
		tctx, cancel := context.WithTimeout(ctx, try)
		data, err = c.request(tctx, subjRead, b)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	var r ReadResponse
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("meta: malformed read reply: %w", err)
	}
	if r.Error != "" {
		return nil, codeErr(r.Code, r.Error)
	}
	return &r, nil
}

// Events subscribes to change events.
func (c *Client) Events(fn func(Event)) (*nats.Subscription, error) {
	return c.nc.Subscribe(subject(c.cluster, subjEvents), func(m *nats.Msg) {
		var ev Event
		if json.Unmarshal(m.Data, &ev) == nil {
			fn(ev)
		}
	})
}
