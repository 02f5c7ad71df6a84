package gateway_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/internal/rpc"
	"github.com/strata-io/strata/testenv"
)

// TestConsumerGroups: three consumers in one group share a topic through
// rebalances and together commit every record; a second group sees every
// record too (queue and publish/subscribe).
func TestConsumerGroups(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClient(t, c.Addr()))
	if res, err := adm.CreateTopic(ctx, 3, 1, nil, "jobs"); err != nil || res.Err != nil {
		t.Fatal(err, res.Err)
	}
	const n = 300
	prod := newClient(t, c.Addr(), kgo.DefaultProduceTopic("jobs"))
	produce := func(from, to int) {
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "%d", i)})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	var mu sync.Mutex
	seen := map[string]bool{}
	perConsumer := map[string]int{}
	consume := func(name string, cl *kgo.Client, stop <-chan struct{}, wg *sync.WaitGroup) {
		defer wg.Done()
		defer cl.Close() // leaves the group
		for {
			select {
			case <-stop:
				return
			default:
			}
			pctx, pcancel := context.WithTimeout(ctx, 300*time.Millisecond)
			fs := cl.PollFetches(pctx)
			pcancel()
			fs.EachRecord(func(r *kgo.Record) {
				mu.Lock()
				seen[string(r.Value)] = true
				perConsumer[name]++
				mu.Unlock()
			})
			if err := cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
				t.Logf("%s commit: %v", name, err)
			}
		}
	}
	groupClient := func(group string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.DisableIdempotentWrite(), kgo.ConsumerGroup(group),
			kgo.ConsumeTopics("jobs"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
			kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	stop := make(chan struct{})
	stopA := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(3)
	go consume("a", groupClient("g"), stopA, &wg)
	go consume("b", groupClient("g"), stop, &wg)
	go consume("c", groupClient("g"), stop, &wg)
	waitSeen := func(want int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			mu.Lock()
			got := len(seen)
			mu.Unlock()
			if got >= want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("group consumed %d of %d records", got, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	time.Sleep(2 * time.Second) // let the three settle into one generation
	produce(0, n/2)
	waitSeen(n / 2)
	close(stopA) // a leaves: b and c take over its partitions
	produce(n/2, n)
	waitSeen(n)
	close(stop)
	wg.Wait()
	mu.Lock()
	busy := 0
	for _, k := range perConsumer {
		if k > 0 {
			busy++
		}
	}
	t.Logf("records per consumer: %v", perConsumer)
	mu.Unlock()
	if busy < 2 {
		t.Fatalf("only %d consumer(s) got records: the group did not share the topic", busy)
	}

	// Every record is committed: the group's offsets are the log ends.
	ends, err := adm.ListEndOffsets(ctx, "jobs")
	if err != nil {
		t.Fatal(err)
	}
	committed, err := adm.FetchOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(e kadm.ListedOffset) {
		o, ok := committed.Lookup("jobs", e.Partition)
		if !ok || o.At != e.Offset {
			t.Errorf("partition %d: committed %v, log end %d", e.Partition, o.At, e.Offset)
		}
	})

	// A second group sees everything again.
	other := groupClient("h")
	defer other.Close()
	count := 0
	for count < n {
		fs := other.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("group h: %v", err)
		}
		count += fs.NumRecords()
	}
	if count != n {
		t.Fatalf("group h read %d records", count)
	}
}

// TestGroupRequestsPastSilentMember: group requests go straight to the
// controller, so a member that takes queue messages and never answers (a
// one-way partition) holds none of them.
func TestGroupRequestsPastSilentMember(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{})
	silent, err := c.Conn().QueueSubscribe(rpc.GroupSubject("test"), "group", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Unsubscribe()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, c.Addr()))
	if res, err := adm.CreateTopic(ctx, 1, 1, nil, "done"); err != nil || res.Err != nil {
		t.Fatal(err, res.Err)
	}
	// Through the queue, half of these would reach the silent member.
	for i := range int64(20) {
		var o kadm.Offsets
		o.AddOffset("done", 0, i, -1)
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := adm.CommitOffsets(cctx, "readers", o)
		ccancel()
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	if n, _ := silent.Delivered(); n != 0 {
		t.Fatalf("the silent member took %d group requests", n)
	}
}
