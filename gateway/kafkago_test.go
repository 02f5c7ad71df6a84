package gateway_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/strata-io/strata/testenv"
)

// TestKafkaGo runs segmentio/kafka-go against three nodes: its admin
// client creates a topic and reads the metadata, its Writer produces
// (acks=all, hashed by key, and to a topic it auto-creates), and a Reader
// in a consumer group reads it all back and commits.
func TestKafkaGo(t *testing.T) {
	c := testenv.InProcess(t, 3, testenv.Options{AutoCreateTopics: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := &kafkago.Client{Addr: kafkago.TCP(c.Addr()), Timeout: 20 * time.Second}
	created, err := cl.CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{{Topic: "kgo-seg", NumPartitions: 3, ReplicationFactor: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := created.Errors["kgo-seg"]; err != nil {
		t.Fatal(err)
	}
	md, err := cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{"kgo-seg"}})
	if err != nil || len(md.Topics) != 1 || len(md.Topics[0].Partitions) != 3 {
		t.Fatalf("metadata: %+v, %v", md, err)
	}
	for _, p := range md.Topics[0].Partitions {
		if len(p.Replicas) != 3 || p.Error != nil {
			t.Fatalf("partition %+v", p)
		}
	}
	w := &kafkago.Writer{Addr: kafkago.TCP(c.Addr()), Balancer: &kafkago.Hash{}, RequiredAcks: kafkago.RequireAll,
		AllowAutoTopicCreation: true, BatchTimeout: 10 * time.Millisecond}
	defer w.Close()
	var msgs []kafkago.Message
	for i := range 100 {
		msgs = append(msgs, kafkago.Message{Topic: "kgo-seg", Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)})
	}
	msgs = append(msgs, kafkago.Message{Topic: "kgo-seg-auto", Value: []byte("auto")})
	for {
		err := w.WriteMessages(ctx, msgs...)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err) // kafka-go's writer answers a topic still being created with an error to retry
		}
		time.Sleep(200 * time.Millisecond)
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{c.Addr()}, GroupID: "kgo-seg-readers", Topic: "kgo-seg",
		StartOffset: kafkago.FirstOffset, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	seen := map[string]string{}
	for len(seen) < 100 {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(seen), err)
		}
		seen[string(m.Key)] = string(m.Value)
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		if seen[fmt.Sprintf("k%d", i)] != fmt.Sprintf("v%d", i) {
			t.Fatalf("k%d read as %q", i, seen[fmt.Sprintf("k%d", i)])
		}
	}
}
