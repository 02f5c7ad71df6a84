package gateway_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/strata-io/strata/testenv"
)

// TestSarama runs the classic Go client against the gateway, as the seed
// tutorial's programs do: with sarama.NewConfig() defaults and with a
// pinned newer protocol version.
func TestSarama(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{AutoCreateTopics: true})
	for _, v := range []struct {
		name    string
		version sarama.KafkaVersion
	}{{"defaults", sarama.NewConfig().Version}, {"v3.6", sarama.V3_6_0_0}} {
		t.Run(v.name, func(t *testing.T) {
			topic := "sarama-" + v.name
			cfg := sarama.NewConfig()
			cfg.Version = v.version
			cfg.Producer.RequiredAcks = sarama.WaitForAll
			cfg.Producer.Return.Successes = true
			cfg.Producer.Partitioner = sarama.NewHashPartitioner
			cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
			admin, err := sarama.NewClusterAdmin([]string{c.Addr()}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close()
			if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1}, false); err != nil {
				t.Fatal(err)
			}
			prod, err := sarama.NewSyncProducer([]string{c.Addr()}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			const n = 50
			for i := range n {
				if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint(i % 5)),
					Value: sarama.StringEncoder(fmt.Sprint(i))}); err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
			}
			prod.Close()

			// A plain partition consumer from the oldest offset.
			cons, err := sarama.NewConsumer([]string{c.Addr()}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer cons.Close()
			got := 0
			for _, p := range []int32{0, 1} {
				pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
				if err != nil {
					t.Fatal(err)
				}
				hw := pc.HighWaterMarkOffset()
				for off := int64(0); off < hw; off++ {
					select {
					case m := <-pc.Messages():
						if m.Offset != off {
							t.Fatalf("partition %d: offset %d, want %d", p, m.Offset, off)
						}
						got++
					case err := <-pc.Errors():
						t.Fatal(err)
					case <-time.After(10 * time.Second):
						t.Fatalf("partition %d: timed out at offset %d of %d", p, off, hw)
					}
				}
				pc.Close()
			}
			if got != n {
				t.Fatalf("consumed %d of %d", got, n)
			}

			// A consumer group reads everything and commits.
			group, err := sarama.NewConsumerGroup([]string{c.Addr()}, "sarama-group-"+v.name, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer group.Close()
			h := &countingHandler{want: n, done: make(chan struct{})}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			go func() {
				for ctx.Err() == nil {
					if err := group.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
						t.Logf("group consume: %v", err)
						time.Sleep(100 * time.Millisecond)
					}
				}
			}()
			select {
			case <-h.done:
			case <-ctx.Done():
				t.Fatalf("consumer group read %d of %d", h.count(), n)
			}
		})
	}
}

type countingHandler struct {
	mu   sync.Mutex
	n    int
	want int
	done chan struct{}
	once sync.Once
}

func (h *countingHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *countingHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *countingHandler) count() int                                { h.mu.Lock(); defer h.mu.Unlock(); return h.n }
func (h *countingHandler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		s.MarkMessage(m, "")
		h.mu.Lock()
		h.n++
		if h.n >= h.want {
			h.once.Do(func() { close(h.done) })
		}
		h.mu.Unlock()
	}
	return nil
}

// TestSaramaTransactions: a Sarama transactional producer commits and
// aborts; a read_committed Sarama consumer sees only the committed
// records, and a read_uncommitted one all of them.
func TestSaramaTransactions(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{})
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Transaction.ID = "sarama-tx"
	cfg.Net.MaxOpenRequests = 1
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	admin, err := sarama.NewClusterAdmin([]string{c.Addr()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.CreateTopic("sarama-txn", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	prod, err := sarama.NewSyncProducer([]string{c.Addr()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	committed := map[string]bool{}
	for i, commit := range []bool{true, false, true} {
		if err := prod.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		for j := range 10 {
			v := fmt.Sprintf("%d-%d", i, j)
			if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: "sarama-txn", Value: sarama.StringEncoder(v)}); err != nil {
				t.Fatalf("send %s: %v", v, err)
			}
			if commit {
				committed[v] = true
			}
		}
		if commit {
			err = prod.CommitTxn()
		} else {
			err = prod.AbortTxn()
		}
		if err != nil {
			t.Fatalf("transaction %d (commit %v): %v", i, commit, err)
		}
	}
	prod.Close()
	read := func(level sarama.IsolationLevel, want int) map[string]bool {
		t.Helper()
		ccfg := sarama.NewConfig()
		ccfg.Version = sarama.V3_6_0_0
		ccfg.Consumer.IsolationLevel = level
		cons, err := sarama.NewConsumer([]string{c.Addr()}, ccfg)
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close()
		pc, err := cons.ConsumePartition("sarama-txn", 0, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		got := map[string]bool{}
		timeout := time.After(10 * time.Second)
		for len(got) < want {
			select {
			case m := <-pc.Messages():
				got[string(m.Value)] = true
			case <-timeout:
				return got
			}
		}
		select { // nothing more
		case m := <-pc.Messages():
			got[string(m.Value)] = true
		case <-time.After(500 * time.Millisecond):
		}
		return got
	}
	got := read(sarama.ReadCommitted, len(committed))
	if len(got) != len(committed) {
		t.Fatalf("read_committed read %d records, want the %d committed: %v", len(got), len(committed), got)
	}
	for v := range got {
		if !committed[v] {
			t.Fatalf("read_committed read %s, of the aborted transaction", v)
		}
	}
	if got := read(sarama.ReadUncommitted, 30); len(got) != 30 {
		t.Fatalf("read_uncommitted read %d records, want 30", len(got))
	}
}
