package node

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/batch"
	"github.com/strata-io/strata/internal/rpc"
	"github.com/strata-io/strata/meta"
	plog "github.com/strata-io/strata/node/log"
	"github.com/strata-io/strata/share"
)

// Dead letters, in the spirit of KIP-1191 (not in Kafka 4.2): a share
// group with errors.deadletterqueue.topic.name set has each record it
// archives as undeliverable (rejected by a member, or delivered
// share.delivery.count.limit times) written to that topic by the
// share-partition's leader, with headers naming where it came from and
// why; with errors.deadletterqueue.copy.record.enable, the record's key,
// value and headers too. The topic's name must start with "dlq." and the
// topic must allow it (errors.deadletterqueue.group.enable=true), so that
// a group cannot be used to write into any topic. Off by default.

// Dead-letter record headers.
const (
	dlqHeaderGroup       = "_dlq.errors.group.id"
	dlqHeaderTopic       = "_dlq.errors.original.topic"
	dlqHeaderPartition   = "_dlq.errors.original.partition"
	dlqHeaderOffset      = "_dlq.errors.original.offset"
	dlqHeaderDeliveries  = "_dlq.errors.delivery.count"
	dlqHeaderDisposition = "_dlq.errors.disposition"
)

// errDeadLetterTopic: the group names a topic that cannot take its dead
// letters.
var errDeadLetterTopic = errors.New("dead-letter topic")

// writeDeadLetters writes a share-partition's undeliverable records to
// its group's dead-letter topic, if it has one, and waits for the write
// (acks=all). A failure is logged and counted: the records stay archived.
func (n *Node) writeDeadLetters(ctx context.Context, key sharePartKey, dead []share.Dead, configs map[string]string) {
	dlq := meta.GroupConfig(configs, "errors.deadletterqueue.topic.name")
	if dlq == "" || len(dead) == 0 {
		return
	}
	err := n.sendDeadLetters(ctx, key, dlq, dead, meta.GroupConfig(configs, "errors.deadletterqueue.copy.record.enable") == "true")
	if err != nil {
		n.counts.shareDeadLetterErrors.Add(int64(len(dead)))
		n.logger.Warn("share group: dead letters not written; the records stay archived", "group", key.group, "topic", key.topic,
			"partition", key.partition, "dead_letter_topic", dlq, "records", len(dead), "error", err)
		return
	}
	n.counts.shareDeadLetters.Add(int64(len(dead)))
}

func (n *Node) sendDeadLetters(ctx context.Context, key sharePartKey, dlq string, dead []share.Dead, copyRecord bool) error {
	v := n.cfg.Meta.Server().FSM().View()
	t, ok, err := v.Topic(dlq)
	var part meta.Partition
	if err == nil && ok {
		part, ok, err = v.Partition(dlq, key.partition%t.Partitions)
	}
	v.Close()
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("%w %s does not exist", errDeadLetterTopic, dlq)
	case t.Configs["errors.deadletterqueue.group.enable"] != "true":
		return fmt.Errorf("%w %s does not allow it (errors.deadletterqueue.group.enable=false)", errDeadLetterTopic, dlq)
	case part.Leader < 0:
		return fmt.Errorf("%w %s-%d has no leader", errDeadLetterTopic, dlq, part.Partition)
	}
	now := time.Now().UnixMilli()
	records := make([]batch.Record, 0, len(dead))
	for i, d := range dead {
		disposition := "MAX_DELIVERY_ATTEMPTS_REACHED"
		if d.Rejected {
			disposition = "CLIENT_REJECTED"
		}
		r := batch.Record{Offset: int64(i), Timestamp: now, Headers: []kmsg.Header{
			{Key: dlqHeaderGroup, Value: []byte(key.group)},
			{Key: dlqHeaderTopic, Value: []byte(key.topic)},
			{Key: dlqHeaderPartition, Value: []byte(strconv.Itoa(int(key.partition)))},
			{Key: dlqHeaderOffset, Value: []byte(strconv.FormatInt(d.Offset, 10))},
			{Key: dlqHeaderDeliveries, Value: []byte(strconv.Itoa(int(d.Deliveries)))},
			{Key: dlqHeaderDisposition, Value: []byte(disposition)},
		}}
		if copyRecord {
			orig, err := n.recordAt(ctx, key.topic, key.partition, d.Offset)
			if err != nil {
				return fmt.Errorf("reading %s-%d@%d to copy: %w", key.topic, key.partition, d.Offset, err)
			}
			if orig != nil {
				r.Key, r.Value = orig.Key, orig.Value
				for _, h := range orig.Headers {
					r.Headers = append(r.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
				}
			}
		}
		records = append(records, r)
	}
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks, req.TimeoutMillis = -1, 10_000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = dlq
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = part.Partition, batch.Of(records)
	rt.Partitions = []kmsg.ProduceRequestTopicPartition{rp}
	req.Topics = []kmsg.ProduceRequestTopic{rt}
	resp, err := n.caller.Kafka(ctx, rpc.KafkaSubject(n.cfg.Cluster, part.Leader), req, rpc.KafkaCall{})
	if err != nil {
		return err
	}
	pr, ok := resp.(*kmsg.ProduceResponse)
	if !ok || len(pr.Topics) != 1 || len(pr.Topics[0].Partitions) != 1 {
		return fmt.Errorf("node %d answered the dead letters' produce with %T", part.Leader, resp)
	}
	return kerr.ErrorForCode(pr.Topics[0].Partitions[0].ErrorCode)
}

// recordAt reads the record at offset of a partition this node holds
// (nil: the offset holds none, compacted away).
func (n *Node) recordAt(ctx context.Context, topic string, p int32, offset int64) (*kgo.Record, error) {
	l, part, kc := n.partition(topic, p)
	if kc != nil {
		return nil, kc
	}
	alloc := func(n int) []byte { return make([]byte, n) }
	data, err := l.ReadAlloc(alloc, offset, 1, -1) // the batch holding it, whole
	if errors.Is(err, plog.ErrOffsetOutOfRange) && offset < l.StartOffset() && n.remote != nil {
		data, err = n.readRemote(ctx, l, part, offset, 1, alloc)
	}
	if err != nil {
		return nil, err
	}
	fp := kmsg.NewFetchResponseTopicPartition()
	fp.Partition, fp.RecordBatches = p, data
	got, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: topic, Partition: p, Offset: offset}, &fp, kgo.DefaultDecompressor(), nil)
	for _, r := range got.Records {
		if r.Offset == offset {
			return r, nil
		}
	}
	return nil, nil
}
