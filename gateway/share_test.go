package gateway_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/testenv"
)

// setGroupConfigs sets share group configs through the GROUP resource, as
// kafka-configs.sh --entity-type groups does.
func setGroupConfigs(t *testing.T, ctx context.Context, cl *kgo.Client, group string, kvs ...string) {
	t.Helper()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	for i := 0; i < len(kvs); i += 2 {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Value = kvs[i], kmsg.StringPtr(kvs[i+1])
		res.Configs = append(res.Configs, c)
	}
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Resources {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			t.Fatalf("set group configs: %v %v", err, r.ErrorMessage)
		}
	}
}

func produceKeys(t *testing.T, ctx context.Context, cl *kgo.Client, topic string, from, n int) {
	t.Helper()
	var rs []*kgo.Record
	for i := from; i < from+n; i++ {
		rs = append(rs, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: []byte("v")})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// TestShareGroupQueue: competing share consumers on one topic each get
// records, and every record is accepted once.
func TestShareGroupQueue(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl := newClient(t, c.Addr())
	adm := kadm.NewClient(cl)
	if r, err := adm.CreateTopic(ctx, 2, 1, nil, "q"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	setGroupConfigs(t, ctx, cl, "workers", "share.auto.offset.reset", "earliest")
	const total = 2000
	produceKeys(t, ctx, cl, "q", 0, total)
	var mu sync.Mutex
	seen := map[int]int{}
	per := map[int]int{}
	var wg sync.WaitGroup
	cctx, stop := context.WithCancel(ctx)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cons := newClient(t, c.Addr(), kgo.ConsumeTopics("q"), kgo.ShareGroup("workers"), kgo.ShareMaxRecords(50))
			for cctx.Err() == nil {
				fs := cons.PollFetches(cctx)
				for _, e := range fs.Errors() {
					if e.Err != context.Canceled {
						t.Errorf("worker %d: %v", w, e.Err)
					}
				}
				fs.EachRecord(func(r *kgo.Record) {
					k, _ := strconv.Atoi(string(r.Key))
					r.Ack(kgo.AckAccept)
					mu.Lock()
					seen[k]++
					per[w]++
					mu.Unlock()
				})
				cons.FlushAcks(cctx)
				time.Sleep(5 * time.Millisecond) // let the others in
			}
		}()
	}
	testenv.WaitFor(ctx, t, 50*time.Millisecond, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == total
	}, func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("%d of %d records consumed", len(seen), total)
	})
	stop()
	wg.Wait()
	for k, n := range seen {
		if n != 1 {
			t.Errorf("record %d delivered %d times", k, n)
		}
	}
	t.Logf("records per worker: %v", per)
	if len(per) < 2 {
		t.Fatalf("only %d of 4 workers got records: %v", len(per), per)
	}
}
