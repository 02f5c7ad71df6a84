package rpc

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/bufpool"
)

// Kafka requests over NATS, both sides. A request's body is its kmsg
// encoding, with HeaderAPIKey and HeaderAPIVersion; the reply carries the
// response at the same version, or HeaderError when the request could not
// be served at all. Gateways send them to nodes and to the group
// coordinator, and followers send their fetches to leaders, through
// Caller.Kafka; nodes and the coordinator read them with ReadKafka and
// answer with RespondKafka or RespondError.

// KafkaCall is how Caller.Kafka sends one request.
type KafkaCall struct {
	// Header is added to the request's headers.
	Header map[string]string
	// One sends the request whole, as a subject served by a queue group
	// needs (RequestOne).
	One bool
	// Appended, when set, asks for a produce's interim reply and is
	// called when it comes (RequestProgress with ProgressAppended).
	Appended func()
}

// RemoteError is a request-level failure the other side answered with
// (HeaderError).
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return e.Msg }

// Kafka sends req on subject and decodes the response at req's version.
// A transport error (nats.ErrNoResponders, the context's) comes back as
// it is, a request-level failure as a *RemoteError.
func (c *Caller) Kafka(ctx context.Context, subject string, req kmsg.Request, call KafkaCall) (kmsg.Response, error) {
	msg := nats.NewMsg(subject)
	msg.Header.Set(HeaderAPIKey, strconv.Itoa(int(req.Key())))
	msg.Header.Set(HeaderAPIVersion, strconv.Itoa(int(req.GetVersion())))
	for k, v := range call.Header {
		msg.Header.Set(k, v)
	}
	SetDeadline(ctx, msg)
	msg.Data = Append(bufpool.Get(SizeHint(req)), req)
	defer bufpool.Put(msg.Data) // NATS copies it before the request returns
	var reply *nats.Msg
	var err error
	switch {
	case call.Appended != nil:
		reply, err = c.RequestProgress(ctx, msg, ProgressAppended, func(string) { call.Appended() })
	case call.One:
		reply, err = c.RequestOne(ctx, msg)
	default:
		reply, err = c.Request(ctx, msg)
	}
	if err != nil {
		return nil, err
	}
	if e := reply.Header.Get(HeaderError); e != "" {
		return nil, &RemoteError{Msg: e}
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if err := resp.ReadFrom(reply.Data); err != nil {
		return nil, fmt.Errorf("decode %s v%d: %w", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	return resp, nil
}

// ReadKafka decodes the Kafka request msg carries.
func ReadKafka(msg *nats.Msg) (kmsg.Request, error) {
	key, err1 := strconv.Atoi(msg.Header.Get(HeaderAPIKey))
	version, err2 := strconv.Atoi(msg.Header.Get(HeaderAPIVersion))
	if err1 != nil || err2 != nil {
		return nil, errors.New("request without Kafka API key and version headers")
	}
	req := kmsg.RequestForKey(int16(key))
	if req == nil {
		return nil, fmt.Errorf("unknown API key %d", key)
	}
	req.SetVersion(int16(version))
	if err := req.ReadFrom(msg.Data); err != nil {
		return nil, fmt.Errorf("decode %s v%d: %w", kmsg.NameForKey(int16(key)), version, err)
	}
	return req, nil
}

// RespondKafka answers msg with resp, encoded at req's version into a
// pooled buffer. encoded, when set, is called once the encoding holds its
// own copy of the response's data.
func RespondKafka(nc *nats.Conn, msg *nats.Msg, req kmsg.Request, resp kmsg.Response, encoded func()) error {
	reply := nats.NewMsg(msg.Reply)
	reply.Header.Set(HeaderAPIKey, strconv.Itoa(int(req.Key())))
	reply.Header.Set(HeaderAPIVersion, strconv.Itoa(int(req.GetVersion())))
	resp.SetVersion(req.GetVersion())
	reply.Data = Append(bufpool.Get(SizeHint(resp)), resp)
	if encoded != nil {
		encoded()
	}
	err := Respond(nc, msg, reply)
	bufpool.Put(reply.Data) // NATS copied it
	return err
}

// RespondError answers msg with a request-level failure.
func RespondError(nc *nats.Conn, msg *nats.Msg, err error) error {
	reply := nats.NewMsg(msg.Reply)
	reply.Header.Set(HeaderError, err.Error())
	return Respond(nc, msg, reply)
}
