package gateway

import (
	"context"
	"regexp"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/meta"
)

// The transaction observability APIs, as kafka-transactions.sh uses
// them: ListTransactions and DescribeTransactions answer from the
// coordinator's records in the metadata; DescribeProducers asks each
// partition's leader for its producer state.

func (g *Gateway) transactions(ctx context.Context) ([]meta.Transaction, error) {
	r, err := g.meta.Read(ctx, meta.ReadRequest{Kind: "transactions"})
	if err != nil {
		return nil, err
	}
	return r.Transactions, nil
}

// listTransactions lists the transactional ids the principal may
// describe, filtered by state, producer id, running time (v1) and id
// pattern (v2).
func (g *Gateway) listTransactions(ctx context.Context, req *kmsg.ListTransactionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	var pattern *regexp.Regexp
	if req.TransactionalIDPattern != nil && *req.TransactionalIDPattern != "" {
		re, err := regexp.Compile(*req.TransactionalIDPattern)
		if err != nil {
			resp.ErrorCode = kerr.InvalidRegularExpression.Code
			return resp
		}
		pattern = re
	}
	all, err := g.transactions(ctx)
	if err != nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	now := time.Now().UnixMilli()
	for _, t := range all {
		state := t.State.String()
		switch {
		case len(req.StateFilters) > 0 && !slices.Contains(req.StateFilters, state):
			continue
		case len(req.ProducerIDFilters) > 0 && !slices.Contains(req.ProducerIDFilters, t.ProducerID):
			continue
		case req.DurationFilterMillis >= 0 && req.Version >= 1 && (t.State != meta.TxnOngoing || now-t.StartMs < req.DurationFilterMillis):
			continue
		case pattern != nil && !pattern.MatchString(t.ID):
			continue
		case !g.allowed(ctx, opDescribe, rtTxnID, t.ID):
			continue
		}
		s := kmsg.NewListTransactionsResponseTransactionState()
		s.TransactionalID, s.ProducerID, s.TransactionState = t.ID, t.ProducerID, state
		resp.TransactionStates = append(resp.TransactionStates, s)
	}
	return resp
}

// describeTransactions describes transactional ids: state, producer,
// timeout, start and partitions.
func (g *Gateway) describeTransactions(ctx context.Context, req *kmsg.DescribeTransactionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	all, err := g.transactions(ctx)
	for _, id := range req.TransactionalIDs {
		s := kmsg.NewDescribeTransactionsResponseTransactionState()
		s.TransactionalID, s.ProducerID, s.ProducerEpoch, s.StartTimestamp = id, -1, -1, -1
		i := slices.IndexFunc(all, func(t meta.Transaction) bool { return t.ID == id })
		switch {
		case !g.allowed(ctx, opDescribe, rtTxnID, id):
			s.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		case err != nil:
			s.ErrorCode = kerr.CoordinatorNotAvailable.Code
		case i < 0:
			s.ErrorCode = kerr.TransactionalIDNotFound.Code
		default:
			t := all[i]
			s.State, s.TimeoutMillis, s.ProducerID, s.ProducerEpoch = t.State.String(), t.TimeoutMs, t.ProducerID, t.Epoch
			if t.State == meta.TxnOngoing || t.State == meta.TxnPrepareCommit || t.State == meta.TxnPrepareAbort {
				s.StartTimestamp = t.StartMs
			}
			for _, p := range t.Partitions {
				k := slices.IndexFunc(s.Topics, func(st kmsg.DescribeTransactionsResponseTransactionStateTopic) bool { return st.Topic == p.Topic })
				if k < 0 {
					st := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
					st.Topic = p.Topic
					s.Topics = append(s.Topics, st)
					k = len(s.Topics) - 1
				}
				s.Topics[k].Partitions = append(s.Topics[k].Partitions, p.Partition)
			}
		}
		resp.TransactionStates = append(resp.TransactionStates, s)
	}
	return resp
}

// describeProducers asks each partition's leader for its active
// producers; READ on the topic.
func (g *Gateway) describeProducers(ctx context.Context, req *kmsg.DescribeProducersRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	var refs []partRef
	for i, rt := range req.Topics {
		st := kmsg.NewDescribeProducersResponseTopic()
		st.Topic = rt.Topic
		authorized := g.allowed(ctx, opRead, rtTopic, rt.Topic)
		for j, p := range rt.Partitions {
			sp := kmsg.NewDescribeProducersResponseTopicPartition()
			sp.Partition = p
			if authorized {
				refs = append(refs, partRef{rt.Topic, p, slot{i, j}})
			} else {
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	g.route(ctx, leaderWait, refs, nil, func(rs []partRef) kmsg.Request {
		part := kmsg.NewPtrDescribeProducersRequest()
		part.SetVersion(req.GetVersion())
		for _, r := range rs {
			t := kmsg.NewDescribeProducersRequestTopic()
			t.Topic, t.Partitions = r.topic, []int32{r.partition}
			part.Topics = append(part.Topics, t)
		}
		return part
	}, func(r kmsg.Response, rs []partRef) []partRef {
		got := r.(*kmsg.DescribeProducersResponse)
		return takeParts(rs, len(got.Topics), func(k int) []kmsg.DescribeProducersResponseTopicPartition { return got.Topics[k].Partitions },
			func(ref partRef) *kmsg.DescribeProducersResponseTopicPartition {
				return &resp.Topics[ref.i].Partitions[ref.j]
			},
			func(p *kmsg.DescribeProducersResponseTopicPartition) *int16 { return &p.ErrorCode })
	}, func(ref partRef, code int16) { resp.Topics[ref.i].Partitions[ref.j].ErrorCode = code })
	return resp
}
