package gateway

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Transactions: the gateway checks a request's ACLs, as Kafka's broker
// does, and forwards it to the transaction coordinator on the controller
// by the group coordinator's path (groupRequest). Partition leaders write
// the markers when the coordinator asks them; clients cannot
// (WriteTxnMarkers is not served here).

// txnRequest authorizes and forwards InitProducerId (with a
// transactional id), AddPartitionsToTxn, AddOffsetsToTxn, EndTxn and
// TxnOffsetCommit. Every one needs WRITE on the transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); adding partitions WRITE on
// their topics, adding a group or committing its offsets READ on the
// group, and committing offsets READ on their topics.
func (g *Gateway) txnRequest(ctx context.Context, h requestHeader, req kmsg.Request) kmsg.Response {
	denied := func(code int16) kmsg.Response {
		resp := groupError(req, code)
		return resp
	}
	writeID := func(id string) bool { return g.allowed(ctx, opWrite, rtTxnID, id) }
	switch r := req.(type) {
	case *kmsg.InitProducerIDRequest:
		if !writeID(*r.TransactionalID) {
			return denied(kerr.TransactionalIDAuthorizationFailed.Code)
		}
	case *kmsg.AddPartitionsToTxnRequest:
		ok := true
		for _, id := range txnIDsOf(r) {
			ok = ok && writeID(id)
		}
		if !ok {
			return denied(kerr.TransactionalIDAuthorizationFailed.Code)
		}
		topicDenied := map[string]bool{}
		forEachTxnTopic(r, func(topic string) {
			if !g.allowed(ctx, opWrite, rtTopic, topic) {
				topicDenied[topic] = true
			}
		})
		if len(topicDenied) > 0 {
			resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
			resp.SetVersion(req.GetVersion())
			txnPartitionErrors(r, resp, func(topic string, _ int32) int16 {
				if topicDenied[topic] {
					return kerr.TopicAuthorizationFailed.Code
				}
				return kerr.OperationNotAttempted.Code
			})
			return resp
		}
	case *kmsg.AddOffsetsToTxnRequest:
		if !writeID(r.TransactionalID) {
			return denied(kerr.TransactionalIDAuthorizationFailed.Code)
		}
		if !g.allowed(ctx, opRead, rtGroup, r.Group) {
			return denied(kerr.GroupAuthorizationFailed.Code)
		}
	case *kmsg.EndTxnRequest:
		if !writeID(r.TransactionalID) {
			return denied(kerr.TransactionalIDAuthorizationFailed.Code)
		}
	case *kmsg.TxnOffsetCommitRequest:
		if !writeID(r.TransactionalID) {
			return denied(kerr.TransactionalIDAuthorizationFailed.Code)
		}
		if !g.allowed(ctx, opRead, rtGroup, r.Group) {
			return denied(kerr.GroupAuthorizationFailed.Code)
		}
		for _, t := range r.Topics {
			if !g.allowed(ctx, opRead, rtTopic, t.Topic) {
				return denied(kerr.TopicAuthorizationFailed.Code)
			}
		}
	}
	return g.groupRequest(ctx, h, req)
}

// txnIDsOf lists the transactional ids an AddPartitionsToTxn names: one
// before v4, a batch from v4.
func txnIDsOf(r *kmsg.AddPartitionsToTxnRequest) []string {
	if r.Version < 4 {
		return []string{r.TransactionalID}
	}
	ids := make([]string, 0, len(r.Transactions))
	for _, t := range r.Transactions {
		ids = append(ids, t.TransactionalID)
	}
	return ids
}

func forEachTxnTopic(r *kmsg.AddPartitionsToTxnRequest, fn func(topic string)) {
	if r.Version < 4 {
		for _, t := range r.Topics {
			fn(t.Topic)
		}
		return
	}
	for _, tx := range r.Transactions {
		for _, t := range tx.Topics {
			fn(t.Topic)
		}
	}
}

// txnPartitionErrors answers every partition of an AddPartitionsToTxn
// with code(topic, partition), in either form.
func txnPartitionErrors(r *kmsg.AddPartitionsToTxnRequest, resp *kmsg.AddPartitionsToTxnResponse, code func(string, int32) int16) {
	if r.Version < 4 {
		for _, t := range r.Topics {
			rt := kmsg.NewAddPartitionsToTxnResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p, code(t.Topic, p)
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return
	}
	for _, tx := range r.Transactions {
		rtx := kmsg.NewAddPartitionsToTxnResponseTransaction()
		rtx.TransactionalID = tx.TransactionalID
		for _, t := range tx.Topics {
			rt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
				rp.Partition, rp.ErrorCode = p, code(t.Topic, p)
				rt.Partitions = append(rt.Partitions, rp)
			}
			rtx.Topics = append(rtx.Topics, rt)
		}
		resp.Transactions = append(resp.Transactions, rtx)
	}
}
