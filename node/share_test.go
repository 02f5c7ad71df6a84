package node_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/meta"
	"github.com/strata-io/strata/testenv"
)

// TestShareGroupFailover: share consumers work through a queue on three
// nodes while, in a seeded order, a partition's leader and the controller
// (the group coordinator) stop and come back. No record is lost: each one
// produced is accepted, and a record delivered again comes with a
// delivery count no lower than before (an acquisition not yet written
// when its leader stopped counts again from the written one).
func TestShareGroupFailover(t *testing.T) {
	seed := testenv.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 9))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := testenv.InProcess(t, 3, testenv.Options{})
	cl := newClient(t, c)
	createTopic(ctx, t, cl, 2, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, "jobs")
	waitISR(ctx, t, c, "jobs", 3)
	setGroupConfigs(ctx, t, cl, "workers", map[string]string{"share.auto.offset.reset": "earliest", "share.record.lock.duration.ms": "3000"})

	type delivery struct {
		worker int
		dc     int32
	}
	var mu sync.Mutex
	accepted := map[int]int{}
	deliveries := map[int][]delivery{}
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cons := newClient(t, c, kgo.ConsumeTopics("jobs"), kgo.ShareGroup("workers"), kgo.ShareMaxRecords(50))
			for cctx.Err() == nil {
				fs := cons.PollFetches(cctx)
				fs.EachRecord(func(r *kgo.Record) {
					k, _ := strconv.Atoi(string(r.Key))
					r.Ack(kgo.AckAccept)
					mu.Lock()
					deliveries[k] = append(deliveries[k], delivery{w, r.DeliveryCount()})
					accepted[k]++
					mu.Unlock()
				})
				cons.FlushAcks(cctx) // a leader that stopped refuses some; they come back
			}
		}()
	}
	produced := 0
	produce := func(n int) {
		t.Helper()
		var rs []*kgo.Record
		for range n {
			rs = append(rs, &kgo.Record{Topic: "jobs", Key: []byte(strconv.Itoa(produced)), Value: []byte("job")})
			produced++
		}
		if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	waitAccepted := func(what string) {
		t.Helper()
		testenv.WaitFor(ctx, t, 50*time.Millisecond, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(accepted) == produced
		}, func() string {
			mu.Lock()
			defer mu.Unlock()
			return fmt.Sprintf("%s: %d of %d records accepted", what, len(accepted), produced)
		})
	}
	produce(500)
	faults := []string{"leader", "controller"}
	if rng.IntN(2) == 0 {
		faults[0], faults[1] = faults[1], faults[0]
	}
	for _, f := range faults {
		produce(300 + rng.IntN(500))
		victim := controller(t, c)
		if f == "leader" {
			victim = partitions(t, c, "jobs")[rng.IntN(2)].Leader
		}
		t.Logf("seed %d: stopping node %d (%s) with %d records produced", seed, victim, f, produced)
		c.StopNode(victim)
		produce(300 + rng.IntN(500))
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		c.StartNode(victim)
		waitISR(ctx, t, c, "jobs", 3)
		waitAccepted("after node " + strconv.Itoa(int(victim)) + " came back")
	}
	produce(500)
	waitAccepted("in the end")
	stop()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	again := 0
	for k := range produced {
		ds := deliveries[k]
		if len(ds) == 0 {
			t.Fatalf("record %d never delivered", k)
		}
		for i := 1; i < len(ds); i++ {
			if ds[i].dc < ds[i-1].dc {
				t.Errorf("record %d delivered with count %d after %d: %+v", k, ds[i].dc, ds[i-1].dc, ds)
			}
		}
		if len(ds) > 1 {
			again++
		}
	}
	t.Logf("seed %d: %d records, %d delivered more than once across the failovers", seed, produced, again)
}

// TestShareMetrics: a node's share metrics count what members were handed
// and how they acknowledged it, and show each share-partition's start and
// records in flight.
func TestShareMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := testenv.InProcess(t, 1, testenv.Options{Registry: reg})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newClient(t, c)
	createTopic(ctx, t, cl, 1, 1, nil, "m")
	setGroupConfigs(ctx, t, cl, "mg", map[string]string{"share.auto.offset.reset": "earliest"})
	var rs []*kgo.Record
	for i := range 100 {
		rs = append(rs, &kgo.Record{Topic: "m", Value: []byte(strconv.Itoa(i))})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cons := newClient(t, c, kgo.ConsumeTopics("m"), kgo.ShareGroup("mg"))
	seen := 0
	for seen < 100 && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			seen++
			if r.Offset%10 == 0 {
				r.Ack(kgo.AckReject)
			} else {
				r.Ack(kgo.AckAccept)
			}
		})
		if err := cons.FlushAcks(ctx); err != nil {
			t.Fatal(err)
		}
	}
	p := map[string]string{"group": "mg", "topic": "m", "partition": "0"}
	for name, want := range map[string]float64{
		"strata_share_partition_start_offset":      100,
		"strata_share_partition_in_flight_records": 0,
		"strata_share_partition_acquired_records":  0,
	} {
		if got, ok := metricValue(t, reg, name, p); !ok || got != want {
			t.Errorf("%s = %v (%v), want %v", name, got, ok, want)
		}
	}
	for typ, want := range map[string]float64{"accept": 90, "reject": 10} {
		if got, _ := metricValue(t, reg, "strata_share_acknowledgements_total", map[string]string{"type": typ}); got != want {
			t.Errorf("%s acknowledgements: %v, want %v", typ, got, want)
		}
	}
	if got, _ := metricValue(t, reg, "strata_share_records_acquired_total", nil); got != 100 {
		t.Errorf("records acquired: %v, want 100", got)
	}
	if got, _ := metricValue(t, reg, "strata_share_state_writes_total", nil); got < 2 {
		t.Errorf("share state writes: %v", got)
	}
}

// setGroupConfigs sets a group's configs (IncrementalAlterConfigs on the
// GROUP resource).
func setGroupConfigs(ctx context.Context, t *testing.T, cl *kgo.Client, group string, configs map[string]string) {
	t.Helper()
	alter := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	for k, v := range configs {
		rc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		rc.Name, rc.Value = k, kmsg.StringPtr(v)
		res.Configs = append(res.Configs, rc)
	}
	alter.Resources = append(alter.Resources, res)
	if resp, err := alter.RequestWith(ctx, cl); err != nil || resp.Resources[0].ErrorCode != 0 {
		t.Fatal(err, kerr.ErrorForCode(resp.Resources[0].ErrorCode))
	}
}

// TestShareDeadLettersAcrossFailover: records a consumer holds at the
// delivery limit when their leader stops are released when it comes
// back, as an expired lock would release them: archived, and sent to the
// group's dead-letter topic.
func TestShareDeadLettersAcrossFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := testenv.InProcess(t, 1, testenv.Options{})
	cl := newClient(t, c)
	createTopic(ctx, t, cl, 1, 1, nil, "jobs")
	createTopic(ctx, t, cl, 1, 1, map[string]*string{"errors.deadletterqueue.group.enable": kadm.StringPtr("true")}, "dlq.jobs")
	setGroupConfigs(ctx, t, cl, "workers", map[string]string{"share.auto.offset.reset": "earliest",
		"share.delivery.count.limit": "2", "errors.deadletterqueue.topic.name": "dlq.jobs"})
	const total = 6
	for i := range total {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "jobs", Key: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Release each record once; hold it on its second delivery, the last
	// the limit allows.
	cons := newClient(t, c, kgo.ConsumeTopics("jobs"), kgo.ShareGroup("workers"))
	held := map[string]bool{}
	for len(held) < total {
		if ctx.Err() != nil {
			t.Fatalf("held %d of %d at the limit", len(held), total)
		}
		fs := cons.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			if r.DeliveryCount() < 2 {
				r.Ack(kgo.AckRelease)
			} else {
				held[string(r.Key)] = true
			}
		})
		if len(held) < total {
			if err := cons.FlushAcks(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The acquisitions reach the metadata in the background.
	fsm := c.Nodes[1].Member.Server().FSM()
	var st meta.ShareState
	testenv.WaitFor(ctx, t, 10*time.Millisecond, func() bool {
		v := fsm.View()
		defer v.Close()
		var err error
		if st, _, err = v.ShareState("workers", "jobs", 0); err != nil {
			t.Fatal(err)
		}
		n := int64(0)
		for _, b := range st.Batches {
			if b.Deliveries == 2 {
				n += b.Last - b.First + 1
			}
		}
		return n == total
	}, func() string { return fmt.Sprintf("share state never recorded the second deliveries: %+v", st) })
	c.StopNode(1)
	c.StartNode(1)

	reader := newClient(t, c, kgo.ConsumeTopics("dlq.jobs"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[string]bool{}
	for len(got) < total {
		if ctx.Err() != nil {
			t.Fatalf("%d of %d dead letters", len(got), total)
		}
		reader.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			if h["_dlq.errors.disposition"] != "MAX_DELIVERY_ATTEMPTS_REACHED" || h["_dlq.errors.delivery.count"] != "2" {
				t.Fatalf("dead letter headers %v", h)
			}
			got[h["_dlq.errors.original.offset"]] = true
		})
	}
	// The state written after the restart archives them: they are not
	// delivered again.
	again := newClient(t, c, kgo.ConsumeTopics("jobs"), kgo.ShareGroup("workers"))
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	defer pcancel()
	again.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
		t.Errorf("record %s delivered again after its last delivery (count %d)", r.Key, r.DeliveryCount())
	})
}

// TestShareIdleForgotten: a share-partition with nothing in flight is
// dropped from its leader's memory once unused for ShareIdle, and the
// next fetch loads it from the metadata: what was accepted is not
// delivered again.
func TestShareIdleForgotten(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg := prometheus.NewRegistry()
	c := testenv.InProcess(t, 1, testenv.Options{Registry: reg, ShareIdle: 300 * time.Millisecond})
	cl := newClient(t, c)
	createTopic(ctx, t, cl, 1, 1, nil, "idle")
	setGroupConfigs(ctx, t, cl, "sleepy", map[string]string{"share.auto.offset.reset": "earliest"})
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "idle", Key: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// consume accepts records until it has keys [from, to), and fails
	// on any other key or a delivery after the first.
	consume := func(from, to int) {
		cons := newClient(t, c, kgo.ConsumeTopics("idle"), kgo.ShareGroup("sleepy"))
		defer cons.Close()
		seen := map[int]bool{}
		for len(seen) < to-from {
			if ctx.Err() != nil {
				t.Fatalf("%d of keys [%d, %d)", len(seen), from, to)
			}
			cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				k, _ := strconv.Atoi(string(r.Key))
				if k < from || k >= to || r.DeliveryCount() != 1 {
					t.Errorf("key %d (delivery %d); want keys [%d, %d), each once", k, r.DeliveryCount(), from, to)
				}
				seen[k] = true
				r.Ack(kgo.AckAccept)
			})
			if err := cons.FlushAcks(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(0, 10)
	consume(0, 10)
	labels := map[string]string{"group": "sleepy", "topic": "idle", "partition": "0"}
	testenv.WaitFor(ctx, t, 20*time.Millisecond, func() bool {
		_, held := metricValue(t, reg, "strata_share_partition_start_offset", labels)
		return !held // forgotten
	}, func() string { return "an idle share-partition was never forgotten" })
	produce(10, 15)
	consume(10, 15)
}
