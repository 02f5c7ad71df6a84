package meta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/strata-io/strata/internal/rpc"
)

// Client reaches the metadata group over NATS from anywhere (a gateway, a
// node, the CLI's admin paths): proposals on meta.apply and consistent
// reads on meta.read, answered by the controller.
//
// A client remembers the controller its last read or event named and sends
// proposals straight to it: a member that hears nothing (a one-way
// partition, a paused process) still takes its share of a queue group's
// messages and never answers, and a proposal cannot be asked again the
// way a read is.
type Client struct {
	nc      *nats.Conn
	cluster string
	// controller is the controller's id as last learnt; 0: unknown.
	controller atomic.Int32
}

// readTry is how long a read's first try waits for an answer; each try
// after waits twice as long, up to ReadTryMax. The cap keeps a run of
// picks of a member that never answers from costing minutes.
const (
	readTry    = time.Second
	ReadTryMax = 8 * time.Second
)

// NewClient returns a client for the cluster.
func NewClient(nc *nats.Conn, cluster string) *Client { return &Client{nc: nc, cluster: cluster} }

func (c *Client) request(ctx context.Context, subj string, data []byte) ([]byte, error) {
	ctx, cancel := bounded(ctx, 10*time.Second)
	defer cancel()
	caller, err := callerFor(c.nc)
	if err != nil {
		return nil, err
	}
	msg := nats.NewMsg(subject(c.cluster, subj))
	msg.Data = data
	// One message to the queue group; the answer may come in chunks (a
	// read of thousands of partitions or segments).
	reply, err := caller.RequestOne(ctx, msg)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNotLeader, subj, err)
	}
	if e := reply.Header.Get(rpc.HeaderError); e != "" {
		return nil, fmt.Errorf("meta: %s: %s", subj, e)
	}
	return reply.Data, nil
}

// bounded gives ctx a timeout of d unless it has a deadline already.
func bounded(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// callers holds one rpc.Caller (a reply inbox) per connection, shared by
// every Client on it: clients are made freely, and never closed.
var callers sync.Map // *nats.Conn -> *rpc.Caller

func callerFor(nc *nats.Conn) (*rpc.Caller, error) {
	if c, ok := callers.Load(nc); ok {
		return c.(*rpc.Caller), nil
	}
	c, err := rpc.NewCaller(nc)
	if err != nil {
		return nil, err
	}
	if prev, loaded := callers.LoadOrStore(nc, c); loaded {
		c.Close()
		return prev.(*rpc.Caller), nil
	}
	return c, nil
}

// Propose applies a command through the controller. A rejected command
// returns an error wrapping its sentinel.
//
// A command too big for one NATS message (a restore naming thousands of
// segments) goes in chunks straight to the controller's own subject: the
// chunks of one message must reach one member, which a queue group does
// not promise.
func (c *Client) Propose(ctx context.Context, cmd Command) (*ApplyResult, error) {
	var r applyReply
	var err error
	if b := EncodeCommand(cmd); rpc.Fits(c.nc, len(b)) {
		r, err = c.proposeOne(ctx, b)
	} else {
		r, err = c.proposeChunked(ctx, b)
	}
	if err != nil {
		return nil, err
	}
	if r.Error != "" {
		if r.Code == errCode(ErrNotLeader) {
			return nil, codeErr(r.Code, r.Error)
		}
		return &ApplyResult{Err: codeErr(r.Code, r.Error), Txn: r.Txn}, nil
	}
	res := &ApplyResult{Value: r.Value, Txn: r.Txn}
	if r.Partition != nil {
		res.Partition = *r.Partition
	}
	return res, nil
}

// proposeOne sends a command in one message to the controller, learnt by
// a read when not known (reads go on past a silent member), else to the
// queue group. A controller that has since lost the lead forwards it.
func (c *Client) proposeOne(ctx context.Context, b []byte) (applyReply, error) {
	var r applyReply
	id := c.controller.Load()
	if id == 0 {
		if rr, err := c.Read(ctx, ReadRequest{Kind: "nodes"}); err == nil {
			id = rr.Controller
		}
	}
	subj := subjApply
	if id != 0 {
		subj += "." + strconv.Itoa(int(id))
	}
	data, err := c.request(ctx, subj, b)
	if id != 0 && errors.Is(err, nats.ErrNoResponders) {
		// That node is gone: it never saw the command, so send it again
		// to whichever member is there.
		data, err = c.request(ctx, subjApply, b)
	}
	if err == nil && json.Unmarshal(data, &r) != nil {
		err = fmt.Errorf("meta: malformed apply reply: %q", data)
	}
	if err != nil || r.Code == errCode(ErrNotLeader) {
		c.controller.CompareAndSwap(id, 0) // ask anew next time
	}
	return r, err
}

// Controller is the controller's id as this client last learnt it from a
// read or an event; 0 when it has not.
func (c *Client) Controller() int32 { return c.controller.Load() }

// Hint tells the client which node leads, as its caller knows it (a
// member from Raft).
func (c *Client) Hint(controller int32) { c.controller.Store(controller) }

// proposeChunked sends a command in chunks to the controller found by a
// read, again while the one it reached no longer leads.
func (c *Client) proposeChunked(ctx context.Context, b []byte) (applyReply, error) {
	var r applyReply
	ctx, cancel := bounded(ctx, 30*time.Second)
	defer cancel()
	caller, err := callerFor(c.nc)
	if err != nil {
		return r, err
	}
	for {
		rr, err := c.Read(ctx, ReadRequest{Kind: "nodes"})
		if err != nil {
			return r, err
		}
		msg := nats.NewMsg(subject(c.cluster, subjApply+"."+strconv.Itoa(int(rr.Controller))))
		msg.Data = b
		reply, err := caller.Request(ctx, msg)
		if err != nil {
			return r, fmt.Errorf("%w: %s: %w", ErrNotLeader, subjApply, err)
		}
		if e := reply.Header.Get(rpc.HeaderError); e != "" {
			return r, fmt.Errorf("meta: %s", e)
		}
		r = applyReply{}
		if json.Unmarshal(reply.Data, &r) != nil {
			return r, fmt.Errorf("meta: malformed apply reply: %q", reply.Data)
		}
		if r.Code != errCode(ErrNotLeader) || ctx.Err() != nil {
			return r, nil
		}
		time.Sleep(50 * time.Millisecond) // the lead is moving
	}
}

// Read returns part of the state as of a consistent read.
//
// A read changes nothing, so one not answered soon is asked again, with
// twice the time each round, until ctx ends: NATS hands each try to a
// member of the queue group at random, and a member that looks alive but
// receives nothing (a one-way partition) then costs a try, not the read.
func (c *Client) Read(ctx context.Context, req ReadRequest) (*ReadResponse, error) {
	b, _ := json.Marshal(req)
	ctx, cancel := bounded(ctx, 10*time.Second)
	defer cancel()
	var data []byte
	var err error
	for try := readTry; ; try = min(2*try, ReadTryMax) {
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
	if r.Controller != 0 {
		c.controller.Store(r.Controller)
	}
	return &r, nil
}

// Events subscribes to change events; the client learns the controller
// from them too.
func (c *Client) Events(fn func(Event)) (*nats.Subscription, error) {
	return c.nc.Subscribe(subject(c.cluster, subjEvents), func(m *nats.Msg) {
		var ev Event
		if json.Unmarshal(m.Data, &ev) == nil {
			if ev.Controller != 0 {
				c.controller.Store(ev.Controller) // a new controller announces itself soon after it leads
			}
			fn(ev)
		}
	})
}
