package group

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/rpc"
	"github.com/strata-io/strata/meta"
	"github.com/strata-io/strata/txn"
)

// Service answers group requests on NATS while this node is the
// controller, and forwards them to the controller otherwise. Its
// coordinator lives only while this node leads.
type Service struct {
	member  *meta.Member
	nc      *nats.Conn
	cluster string
	id      int32
	logger  *slog.Logger
	subs    []*nats.Subscription

	handlers *rpc.Pool
	caller   *rpc.Caller

	opts Options

	mu    sync.Mutex
	coord *Coordinator
	txn   *txn.Coordinator // the transaction coordinator, beside coord
}

// Options tune the coordinators: the transaction coordinator's
// transaction.max.timeout.ms and transactional.id.expiration.ms (zero:
// Kafka's defaults).
type Options struct {
	TxnMaxTimeout, TxnIDExpiration time.Duration
	// ConsumerSessionTimeout and ConsumerHeartbeatInterval are the
	// consumer protocol's (KIP-848) group.consumer.session.timeout.ms
	// and group.consumer.heartbeat.interval.ms (zero: Kafka's 45 s and
	// 5 s).
	ConsumerSessionTimeout, ConsumerHeartbeatInterval time.Duration
}

// Start subscribes the service.
func Start(m *meta.Member, nc *nats.Conn, cluster string, id int32, logger *slog.Logger, opts Options) (*Service, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	caller, err := rpc.NewCaller(nc)
	if err != nil {
		return nil, err
	}
	s := &Service{member: m, nc: nc, cluster: cluster, id: id, logger: logger, handlers: rpc.NewPool(4096), caller: caller, opts: opts}
	for _, sub := range []struct{ subj, queue string }{
		{rpc.GroupSubject(cluster), "group"},
		{rpc.GroupSubject(cluster) + "." + strconv.Itoa(int(id)), ""},
	} {
		ns, err := nc.QueueSubscribe(sub.subj, sub.queue, rpc.Gather(s.logger, s.handlers.Wrap(s.handle)))
		if err != nil {
			s.Close()
			return nil, err
		}
		s.subs = append(s.subs, ns)
	}
	return s, nil
}

// Close unsubscribes and drops the coordinator.
func (s *Service) Close() {
	for _, sub := range s.subs {
		sub.Unsubscribe()
	}
	s.handlers.Close()
	s.caller.Close()
	s.mu.Lock()
	c, tc := s.coord, s.txn
	s.coord, s.txn = nil, nil
	s.mu.Unlock()
	if c != nil {
		c.Close()
	}
	if tc != nil {
		tc.Close()
	}
}

// coordinator returns the coordinator while this node leads, creating it;
// when leadership has moved it drops it (its members get NOT_COORDINATOR).
func (s *Service) coordinator() (*Coordinator, *txn.Coordinator) {
	leads := s.member.Server().IsLeader()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !leads {
		if s.coord != nil {
			go s.coord.Close()
			s.coord = nil
		}
		if s.txn != nil {
			go s.txn.Close()
			s.txn = nil
		}
		return nil, nil
	}
	if s.coord == nil {
		s.coord = New(memberStore{s.member}, s.logger)
		s.coord.SetConsumerTimeouts(s.opts.ConsumerSessionTimeout, s.opts.ConsumerHeartbeatInterval)
	}
	if s.txn == nil {
		s.txn = txn.New(txn.Config{Store: memberStore{s.member}, Markers: s.sendMarkers, Members: s.coord.CheckMember,
			Epoch: txn.EpochOf(s.member.Server().Raft().CurrentTerm()), MaxTimeout: s.opts.TxnMaxTimeout,
			IDExpiration: s.opts.TxnIDExpiration, Logger: s.logger})
	}
	return s.coord, s.txn
}

// sendMarkers asks node to write transaction markers, over its Kafka
// subject (WriteTxnMarkers is for nodes only: gateways never forward it).
func (s *Service) sendMarkers(ctx context.Context, node int32, req *kmsg.WriteTxnMarkersRequest) (*kmsg.WriteTxnMarkersResponse, error) {
	resp, err := s.caller.Kafka(ctx, rpc.KafkaSubject(s.cluster, node), req, rpc.KafkaCall{})
	if err != nil {
		return nil, err
	}
	r, ok := resp.(*kmsg.WriteTxnMarkersResponse)
	if !ok {
		return nil, fmt.Errorf("group: node %d answered WriteTxnMarkers with %T", node, resp)
	}
	return r, nil
}

func (s *Service) handle(msg *nats.Msg) {
	fail := func(e string) { rpc.RespondError(s.nc, msg, errors.New(e)) }
	// The gateway's deadline bounds the work: past it the client has its
	// answer (a timeout) and may have sent a newer request.
	ctx, cancel := rpc.Context(msg, 5*time.Minute)
	defer cancel()
	if ctx.Err() != nil {
		// Normal after a stall; every request dropped means this node's
		// clock runs ahead of the gateways'.
		d, _ := ctx.Deadline()
		s.logger.Warn("group request dropped: its sender's deadline passed before it was handled (if every one is, compare this node's clock with the gateways')",
			"api_key", msg.Header.Get(rpc.HeaderAPIKey), "late_by", time.Since(d).Round(time.Millisecond))
		fail("deadline passed before the request was handled")
		return
	}
	coord, tc := s.coordinator()
	if coord == nil {
		if msg.Header.Get("Strata-Forwarded") != "" {
			fail("not the coordinator")
			return
		}
		id, _, ok := s.member.Server().Leader()
		if !ok {
			fail("no controller elected")
			return
		}
		fwd := nats.NewMsg(rpc.GroupSubject(s.cluster) + "." + strconv.Itoa(int(id)))
		fwd.Header = msg.Header
		fwd.Header.Set("Strata-Forwarded", "1")
		fwd.Data = msg.Data
		resp, err := s.caller.Request(ctx, fwd)
		if err != nil {
			fail(err.Error())
			return
		}
		rpc.Respond(s.nc, msg, resp)
		return
	}
	req, err := rpc.ReadKafka(msg)
	if err != nil {
		fail(err.Error())
		return
	}
	var resp kmsg.Response
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		resp = coord.JoinGroup(ctx, r, msg.Header.Get(rpc.HeaderClientID), "")
	case *kmsg.SyncGroupRequest:
		resp = coord.SyncGroup(ctx, r)
	case *kmsg.HeartbeatRequest:
		resp = coord.Heartbeat(r)
	case *kmsg.LeaveGroupRequest:
		resp = coord.LeaveGroup(r)
	case *kmsg.ConsumerGroupHeartbeatRequest:
		resp = coord.ConsumerGroupHeartbeat(r, msg.Header.Get(rpc.HeaderClientID), "")
	case *kmsg.ConsumerGroupDescribeRequest:
		resp = coord.ConsumerGroupDescribe(r)
	case *kmsg.ShareGroupHeartbeatRequest:
		resp = coord.ShareGroupHeartbeat(r, msg.Header.Get(rpc.HeaderClientID), "")
	case *kmsg.ShareGroupDescribeRequest:
		resp = coord.ShareGroupDescribe(r)
	case *kmsg.AlterShareGroupOffsetsRequest:
		resp = coord.AlterShareGroupOffsets(ctx, r)
	case *kmsg.DeleteShareGroupOffsetsRequest:
		resp = coord.DeleteShareGroupOffsets(ctx, r)
	case *kmsg.OffsetCommitRequest:
		resp = coord.OffsetCommit(ctx, r)
	case *kmsg.OffsetFetchRequest:
		resp = coord.OffsetFetch(ctx, r)
	case *kmsg.ListGroupsRequest:
		resp = coord.ListGroups(ctx, r)
	case *kmsg.DescribeGroupsRequest:
		resp = coord.DescribeGroups(ctx, r)
	case *kmsg.DeleteGroupsRequest:
		resp = coord.DeleteGroups(ctx, r)
	case *kmsg.OffsetDeleteRequest:
		resp = coord.OffsetDelete(ctx, r)
	case *kmsg.InitProducerIDRequest:
		resp = tc.InitProducerID(ctx, r)
	case *kmsg.AddPartitionsToTxnRequest:
		resp = tc.AddPartitionsToTxn(ctx, r)
	case *kmsg.AddOffsetsToTxnRequest:
		resp = tc.AddOffsetsToTxn(ctx, r)
	case *kmsg.EndTxnRequest:
		resp = tc.EndTxn(ctx, r)
	case *kmsg.TxnOffsetCommitRequest:
		resp = tc.TxnOffsetCommit(ctx, r)
	default:
		fail("not a group request")
		return
	}
	rpc.RespondKafka(s.nc, msg, req, resp, nil)
}

// memberStore keeps offsets in the metadata group through its member.
type memberStore struct{ m *meta.Member }

func (s memberStore) CommitOffsets(ctx context.Context, offsets []meta.Offset) error {
	res, err := s.m.Propose(ctx, &meta.CommitOffsets{Offsets: offsets})
	if err == nil {
		err = res.Err
	}
	return err
}

func (s memberStore) GroupOffsets(ctx context.Context, group string) ([]meta.Offset, error) {
	v, err := s.m.ConsistentView(ctx)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	return v.GroupOffsets(group)
}

func (s memberStore) Groups(ctx context.Context) ([]string, error) {
	v, err := s.m.ConsistentView(ctx)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	return v.OffsetGroups()
}

func (s memberStore) DeleteOffsets(ctx context.Context, group, topic string, partitions []int32) error {
	res, err := s.m.Propose(ctx, &meta.DeleteOffsets{Group: group, Topic: topic, Partitions: partitions})
	if err == nil {
		err = res.Err
	}
	return err
}

func (s memberStore) Propose(ctx context.Context, cmd meta.Command) (*meta.ApplyResult, error) {
	return s.m.Propose(ctx, cmd)
}

func (s memberStore) View() *meta.View { return s.m.Server().FSM().View() }

// PendingTxnOffsets lists the partitions whose offsets a transaction not
// yet complete has committed for group.
func (s memberStore) PendingTxnOffsets(ctx context.Context, group string) (map[meta.TxnPartition]bool, error) {
	v := s.View()
	defer v.Close()
	txns, err := v.Transactions()
	if err != nil {
		return nil, err
	}
	out := map[meta.TxnPartition]bool{}
	for _, t := range txns {
		if t.State != meta.TxnOngoing && t.State != meta.TxnPrepareCommit && t.State != meta.TxnPrepareAbort {
			continue
		}
		for _, o := range t.Offsets {
			if o.Group == group {
				out[meta.TxnPartition{Topic: o.Topic, Partition: o.Partition}] = true
			}
		}
	}
	return out, nil
}
