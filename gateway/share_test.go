package gateway_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/testenv"
)

// setGroupConfigs sets share group configs through the GROUP resource, as
// kafka-configs.sh --entity-type groups does.
func setGroupConfigs(t testing.TB, ctx context.Context, cl *kgo.Client, group string, kvs ...string) {
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

func produceKeys(t testing.TB, ctx context.Context, cl *kgo.Client, topic string, from, n int) {
	t.Helper()
	var rs []*kgo.Record
	for i := from; i < from+n; i++ {
		rs = append(rs, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: []byte("v")})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// TestShareGroupQueue: eight share consumers compete for a 2-partition
// topic, as in a work queue. Seeded at random, consumers release some
// records on first delivery, and one stops polling while holding records
// (hung). Checked:
//   - every consumer gets records;
//   - every record is accepted exactly once;
//   - a released record comes back with a higher delivery count;
//   - the hung consumer's records go to others, delivered twice, no
//     sooner than the lock duration after it got them.
func TestShareGroupQueue(t *testing.T) {
	seed := testenv.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 3))
	c := testenv.InProcess(t, 1, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cl := newClient(t, c.Addr())
	adm := kadm.NewClient(cl)
	if r, err := adm.CreateTopic(ctx, 2, 1, nil, "q"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	const lock = 2 * time.Second
	setGroupConfigs(t, ctx, cl, "workers", "share.auto.offset.reset", "earliest", "share.record.lock.duration.ms", strconv.Itoa(int(lock.Milliseconds())))
	const total = 3000
	releaseOneIn := 5 + rng.IntN(10)
	hungAfter := 20 + rng.IntN(100) // records the hung consumer takes in its one poll, at most
	type delivery struct {
		worker int
		dc     int32
		at     time.Time
	}
	var mu sync.Mutex
	accepted := map[int]int{}
	deliveries := map[int][]delivery{}
	released := map[int]bool{}
	per := map[int]int{}
	record := func(w int, r *kgo.Record) int {
		k, _ := strconv.Atoi(string(r.Key))
		mu.Lock()
		defer mu.Unlock()
		deliveries[k] = append(deliveries[k], delivery{w, r.DeliveryCount(), time.Now()})
		per[w]++
		return k
	}
	var wg sync.WaitGroup
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	const hung = 7
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			opts := []kgo.Opt{kgo.ConsumeTopics("q"), kgo.ShareGroup("workers"), kgo.ShareMaxRecords(25)}
			if w == hung {
				opts = append(opts, kgo.ShareMaxRecords(int32(hungAfter)))
			}
			cons := newClient(t, c.Addr(), opts...)
			for cctx.Err() == nil {
				fs := cons.PollFetches(cctx)
				for _, e := range fs.Errors() {
					if e.Err != context.Canceled {
						t.Errorf("worker %d: %v", w, e.Err)
					}
				}
				if w == hung && fs.NumRecords() > 0 {
					fs.EachRecord(func(r *kgo.Record) { record(w, r) })
					<-cctx.Done() // holds its records, never acknowledges
					return
				}
				fs.EachRecord(func(r *kgo.Record) {
					k := record(w, r)
					if r.DeliveryCount() == 1 && k%releaseOneIn == 0 {
						r.Ack(kgo.AckRelease)
						mu.Lock()
						released[k] = true
						mu.Unlock()
						return
					}
					r.Ack(kgo.AckAccept)
					mu.Lock()
					accepted[k]++
					mu.Unlock()
				})
				if err := cons.FlushAcks(cctx); err != nil && cctx.Err() == nil {
					t.Errorf("worker %d: acknowledging: %v", w, err)
				}
			}
		}()
	}
	// Records arrive while the consumers run, each worker waiting a
	// little between polls so that all get a share.
	produceKeys(t, ctx, cl, "q", 0, total/2)
	testenv.WaitFor(ctx, t, 20*time.Millisecond, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return per[hung] > 0
	}, func() string { return "the hung consumer got no records" })
	produceKeys(t, ctx, cl, "q", total/2, total/2)
	testenv.WaitFor(ctx, t, 50*time.Millisecond, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted) == total
	}, func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("%d of %d records accepted", len(accepted), total)
	})
	stop()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("seed %d: records per worker %v; released 1 in %d; the hung worker held %d", seed, per, releaseOneIn, per[hung])
	for w := range 8 {
		if per[w] == 0 {
			t.Errorf("worker %d got no records: %v", w, per)
		}
	}
	for k, n := range accepted {
		if n != 1 {
			t.Errorf("record %d accepted %d times: %+v", k, n, deliveries[k])
		}
	}
	for k, ds := range deliveries {
		for i := 1; i < len(ds); i++ {
			if ds[i].dc <= ds[i-1].dc {
				t.Errorf("record %d delivered with count %d after %d: %+v", k, ds[i].dc, ds[i-1].dc, ds)
			}
		}
		if released[k] && len(ds) < 2 {
			t.Errorf("record %d was released but never delivered again", k)
		}
		if ds[0].worker == hung {
			if len(ds) < 2 || ds[1].worker == hung || ds[1].dc != 2 {
				t.Errorf("record %d, held by the hung worker, was not delivered to another: %+v", k, ds)
			} else if gap := ds[1].at.Sub(ds[0].at); gap < lock-200*time.Millisecond {
				t.Errorf("record %d went to another worker %v after the hung one got it, before its %v lock ran out", k, gap, lock)
			}
		}
	}
}

// shareFetchRaw sends one ShareFetch to broker b.
func shareFetchRaw(t *testing.T, ctx context.Context, b *kgo.Broker, mut func(*kmsg.ShareFetchRequest)) *kmsg.ShareFetchResponse {
	t.Helper()
	req := kmsg.NewPtrShareFetchRequest()
	req.GroupID, req.MemberID = kmsg.StringPtr("raw"), kmsg.StringPtr("member-a")
	req.MaxWaitMillis, req.MaxBytes, req.MaxRecords, req.BatchSize = 500, 1<<20, 100, 100
	mut(req)
	resp, err := req.RequestWith(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func shareTopic(id [16]byte, acks ...kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch) []kmsg.ShareFetchRequestTopic {
	p := kmsg.NewShareFetchRequestTopicPartition()
	p.AcknowledgementBatches = acks
	t := kmsg.NewShareFetchRequestTopic()
	t.TopicID, t.Partitions = id, []kmsg.ShareFetchRequestTopicPartition{p}
	return []kmsg.ShareFetchRequestTopic{t}
}

// topicAndBroker is topic's id and the first broker, to send raw share
// requests to one broker (a share session is per broker).
func topicAndBroker(t *testing.T, ctx context.Context, cl *kgo.Client, topic string) ([16]byte, *kgo.Broker) {
	t.Helper()
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil || len(meta.Brokers) == 0 {
		t.Fatal(err)
	}
	return [16]byte(td[topic].ID), cl.Broker(int(meta.Brokers[0].NodeID))
}

func ackBatch(first, last int64, types ...int8) kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch {
	b := kmsg.NewShareFetchRequestTopicPartitionAcknowledgementBatch()
	b.FirstOffset, b.LastOffset, b.AcknowledgeTypes = first, last, types
	return b
}

// TestShareFetchBadInput: what a share consumer can get wrong gets
// Kafka's error, and changes nothing: an unknown or stale session, an
// acknowledgement in a new session, a record acknowledged that the member
// does not hold (another's, or never delivered), an unknown
// acknowledgement type, a renewal that also fetches, a member id too
// long, ShareAcknowledge outside a session, and ShareFetch naming a
// consumer group. Closing the session gives back what the member held,
// delivered again with a higher count.
func TestShareFetchBadInput(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newClient(t, c.Addr())
	adm := kadm.NewClient(cl)
	if r, err := adm.CreateTopic(ctx, 1, 1, nil, "bad"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	setGroupConfigs(t, ctx, cl, "raw", "share.auto.offset.reset", "earliest")
	produceKeys(t, ctx, cl, "bad", 0, 10)
	id, b := topicAndBroker(t, ctx, cl, "bad")
	want := func(what string, got int16, code *kerr.Error) {
		t.Helper()
		if code == nil && got != 0 || code != nil && got != code.Code {
			t.Fatalf("%s: %v, want %v", what, kerr.ErrorForCode(got), code)
		}
	}
	want("no session", shareFetchRaw(t, ctx, b, func(r *kmsg.ShareFetchRequest) {
		r.ShareSessionEpoch, r.Topics = 3, shareTopic(id)
	}).ErrorCode, kerr.ShareSessionNotFound)
	want("acks in a new session", shareFetchRaw(t, ctx, b, func(r *kmsg.ShareFetchRequest) {
		r.Topics = shareTopic(id, ackBatch(0, 0, 1))
	}).ErrorCode, kerr.InvalidRequest)
	want("member id too long", shareFetchRaw(t, ctx, b, func(r *kmsg.ShareFetchRequest) {
		r.MemberID, r.Topics = kmsg.StringPtr("0123456789012345678901234567890123456789"), shareTopic(id)
	}).ErrorCode, kerr.InvalidRequest)

	// Member a opens a session and acquires 0..4.
	open := shareFetchRaw(t, ctx, b, func(r *kmsg.ShareFetchRequest) { r.MaxRecords, r.Topics = 5, shareTopic(id) })
	want("open", open.ErrorCode, nil)
	if len(open.Topics) != 1 || len(open.Topics[0].Partitions) != 1 || len(open.Topics[0].Partitions[0].AcquiredRecords) == 0 {
		t.Fatalf("open acquired nothing: %+v", open.Topics)
	}
	acq := open.Topics[0].Partitions[0].AcquiredRecords
	if acq[0].FirstOffset != 0 || acq[len(acq)-1].LastOffset != 4 || acq[0].DeliveryCount != 1 {
		t.Fatalf("acquired %+v, want 0..4 delivered once", acq)
	}
	want("stale epoch", shareFetchRaw(t, ctx, b, func(r *kmsg.ShareFetchRequest) { r.ShareSessionEpoch = 7 }).ErrorCode, kerr.InvalidShareSessionEpoch)

	// Member b takes 5..9, then tries to acknowledge a's records.
	bOpen := shareFetchRaw(t, ctx, b, func(r *kmsg.ShareFetchRequest) {
		r.MemberID, r.Topics = kmsg.StringPtr("member-b"), shareTopic(id)
	})
	if n := len(bOpen.Topics); n != 1 || bOpen.Topics[0].Partitions[0].AcquiredRecords[0].FirstOffset != 5 {
		t.Fatalf("b acquired %+v", bOpen.Topics)
	}
	steal := shareFetchRaw(t, ctx, b, func(r *kmsg.ShareFetchRequest) {
		r.MemberID, r.ShareSessionEpoch, r.MaxWaitMillis = kmsg.StringPtr("member-b"), 1, 0
		r.Topics = shareTopic(id, ackBatch(0, 1, 1))
	})
	want("b acknowledges a's records", steal.Topics[0].Partitions[0].AcknowledgeErrorCode, kerr.InvalidRecordState)
	never := shareFetchRaw(t, ctx, b, func(r *kmsg.ShareFetchRequest) {
		r.ShareSessionEpoch, r.MaxWaitMillis, r.Topics = 1, 0, shareTopic(id, ackBatch(50, 50, 1))
	})
	want("a acknowledges a record never delivered", never.Topics[0].Partitions[0].AcknowledgeErrorCode, kerr.InvalidRecordState)
	badType := shareFetchRaw(t, ctx, b, func(r *kmsg.ShareFetchRequest) {
		r.ShareSessionEpoch, r.MaxWaitMillis, r.Topics = 2, 0, shareTopic(id, ackBatch(0, 0, 9))
	})
	want("unknown acknowledgement type", badType.Topics[0].Partitions[0].AcknowledgeErrorCode, kerr.InvalidRequest)
	want("renewal that fetches", shareFetchRaw(t, ctx, b, func(r *kmsg.ShareFetchRequest) {
		r.ShareSessionEpoch, r.IsRenewAck, r.Topics = 3, true, shareTopic(id, ackBatch(0, 0, 4))
	}).ErrorCode, kerr.InvalidRequest)

	ack := kmsg.NewPtrShareAcknowledgeRequest()
	ack.GroupID, ack.MemberID = kmsg.StringPtr("raw"), kmsg.StringPtr("member-a")
	aresp, err := ack.RequestWith(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	want("ShareAcknowledge opening a session", aresp.ErrorCode, kerr.InvalidShareSessionEpoch)

	// a's refused acknowledgements changed nothing: it still holds 0..4,
	// and accepts 0 while renewing 1.
	renew := shareFetchRaw(t, ctx, b, func(r *kmsg.ShareFetchRequest) {
		r.ShareSessionEpoch, r.IsRenewAck = 3, true
		r.MaxWaitMillis, r.MaxBytes, r.MaxRecords, r.BatchSize = 0, 0, 0, 0
		r.Topics = shareTopic(id, ackBatch(0, 1, 1, 4))
	})
	want("accept and renew", renew.Topics[0].Partitions[0].AcknowledgeErrorCode, nil)

	// A consumer group is not a share group.
	cons := newClient(t, c.Addr(), kgo.ConsumeTopics("bad"), kgo.ConsumerGroup("classic"))
	cons.PollFetches(ctx)
	other := shareFetchRaw(t, ctx, b, func(r *kmsg.ShareFetchRequest) {
		r.GroupID, r.Topics = kmsg.StringPtr("classic"), shareTopic(id)
	})
	want("ShareFetch of a consumer group", other.ErrorCode, kerr.InvalidRequest)

	// a closes its session: 1..4 go back, and b gets them, delivered twice.
	want("close", shareFetchRaw(t, ctx, b, func(r *kmsg.ShareFetchRequest) { r.ShareSessionEpoch = -1 }).ErrorCode, nil)
	again := shareFetchRaw(t, ctx, b, func(r *kmsg.ShareFetchRequest) {
		r.MemberID, r.ShareSessionEpoch = kmsg.StringPtr("member-b"), 2
	})
	got := again.Topics[0].Partitions[0].AcquiredRecords
	if len(got) != 1 || got[0].FirstOffset != 1 || got[0].LastOffset != 4 || got[0].DeliveryCount != 2 {
		t.Fatalf("after a closed its session b acquired %+v, want 1..4 delivered twice", got)
	}
}

// TestPubSubAndQueue: on one topic, two consumer groups (publish and
// subscribe) each read every record once, in order per partition, while a
// share group (a queue) hands each record to one of its three members.
func TestPubSubAndQueue(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl := newClient(t, c.Addr())
	if r, err := kadm.NewClient(cl).CreateTopic(ctx, 3, 1, nil, "events"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	setGroupConfigs(t, ctx, cl, "queue", "share.auto.offset.reset", "earliest")
	const total = 1500
	produceKeys(t, ctx, cl, "events", 0, total)
	var mu sync.Mutex
	subs := map[string]map[int]int{"audit": {}, "search": {}}
	lastOffset := map[string]map[int32]int64{"audit": {}, "search": {}}
	queue := map[int]int{}
	byMember := map[int]int{}
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for _, g := range []string{"audit", "search"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cons := newClient(t, c.Addr(), kgo.ConsumeTopics("events"), kgo.ConsumerGroup(g), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			for cctx.Err() == nil {
				cons.PollFetches(cctx).EachRecord(func(r *kgo.Record) {
					k, _ := strconv.Atoi(string(r.Key))
					mu.Lock()
					defer mu.Unlock()
					if last, ok := lastOffset[g][r.Partition]; ok && r.Offset != last+1 {
						t.Errorf("group %s partition %d: offset %d after %d", g, r.Partition, r.Offset, last)
					}
					lastOffset[g][r.Partition] = r.Offset
					subs[g][k]++
				})
			}
		}()
	}
	for m := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cons := newClient(t, c.Addr(), kgo.ConsumeTopics("events"), kgo.ShareGroup("queue"), kgo.ShareMaxRecords(40))
			for cctx.Err() == nil {
				cons.PollFetches(cctx).EachRecord(func(r *kgo.Record) {
					k, _ := strconv.Atoi(string(r.Key))
					r.Ack(kgo.AckAccept)
					mu.Lock()
					queue[k]++
					byMember[m]++
					mu.Unlock()
				})
				cons.FlushAcks(cctx)
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	testenv.WaitFor(ctx, t, 50*time.Millisecond, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(queue) == total && len(subs["audit"]) == total && len(subs["search"]) == total
	}, func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("queue %d, audit %d, search %d of %d", len(queue), len(subs["audit"]), len(subs["search"]), total)
	})
	stop()
	wg.Wait()
	for k := range total {
		if queue[k] != 1 || subs["audit"][k] != 1 || subs["search"][k] != 1 {
			t.Fatalf("record %d: queue %d times, audit %d, search %d; each should be once", k, queue[k], subs["audit"][k], subs["search"][k])
		}
	}
	if len(byMember) < 2 {
		t.Fatalf("the queue's records went to %d of its 3 members: %v", len(byMember), byMember)
	}
	t.Logf("queue records per member: %v", byMember)
}

// TestShareDeadLetters: with a dead-letter topic set for the group, each
// record a member rejects, and each one released until the delivery limit,
// is written to that topic once, with headers saying where it came from
// and why, and (copy.record.enable) its key and value. A topic not named
// dlq.* is refused as the group's dead-letter topic.
func TestShareDeadLetters(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl := newClient(t, c.Addr())
	adm := kadm.NewClient(cl)
	if r, err := adm.CreateTopic(ctx, 2, 1, nil, "work"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	if r, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"errors.deadletterqueue.group.enable": kmsg.StringPtr("true")}, "dlq.work"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	bad := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, "jobs"
	res.Configs = []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "errors.deadletterqueue.topic.name", Value: kmsg.StringPtr("work")}}
	bad.Resources = append(bad.Resources, res)
	if resp, err := bad.RequestWith(ctx, cl); err != nil || resp.Resources[0].ErrorCode != kerr.InvalidConfig.Code {
		t.Fatalf("a dead-letter topic not named dlq.*: %v %v", err, resp)
	}
	setGroupConfigs(t, ctx, cl, "jobs", "share.auto.offset.reset", "earliest", "share.delivery.count.limit", "2",
		"errors.deadletterqueue.topic.name", "dlq.work", "errors.deadletterqueue.copy.record.enable", "true")
	const total = 40
	produceKeys(t, ctx, cl, "work", 0, total)
	want := map[int]string{} // key -> disposition
	for k := range total {
		switch {
		case k%5 == 0:
			want[k] = "CLIENT_REJECTED"
		case k%7 == 1:
			want[k] = "MAX_DELIVERY_ATTEMPTS_REACHED"
		}
	}
	cons := newClient(t, c.Addr(), kgo.ConsumeTopics("work"), kgo.ShareGroup("jobs"))
	done := map[int]bool{}
	for len(done) < total && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			k, _ := strconv.Atoi(string(r.Key))
			switch want[k] {
			case "CLIENT_REJECTED":
				r.Ack(kgo.AckReject)
				done[k] = true
			case "MAX_DELIVERY_ATTEMPTS_REACHED":
				r.Ack(kgo.AckRelease)
				if r.DeliveryCount() == 2 {
					done[k] = true
				}
			default:
				r.Ack(kgo.AckAccept)
				done[k] = true
			}
		})
		if err := cons.FlushAcks(ctx); err != nil {
			t.Fatal(err)
		}
	}
	reader := newClient(t, c.Addr(), kgo.ConsumeTopics("dlq.work"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[int]map[string]string{}
	for len(got) < len(want) && ctx.Err() == nil {
		reader.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			k, _ := strconv.Atoi(string(r.Key))
			if _, dup := got[k]; dup {
				t.Errorf("record %d written to the dead-letter topic twice", k)
			}
			got[k] = h
			if string(r.Value) != "v" {
				t.Errorf("record %d's value not copied: %q", k, r.Value)
			}
		})
	}
	for k, disposition := range want {
		h := got[k]
		if h["_dlq.errors.disposition"] != disposition || h["_dlq.errors.group.id"] != "jobs" || h["_dlq.errors.original.topic"] != "work" {
			t.Errorf("record %d's dead letter: %v, want disposition %s", k, h, disposition)
		}
		if disposition == "MAX_DELIVERY_ATTEMPTS_REACHED" && h["_dlq.errors.delivery.count"] != "2" {
			t.Errorf("record %d: delivery count header %q, want 2", k, h["_dlq.errors.delivery.count"])
		}
		if h["_dlq.errors.original.offset"] == "" || h["_dlq.errors.original.partition"] == "" {
			t.Errorf("record %d: no original offset or partition: %v", k, h)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d dead letters, want %d", len(got), len(want))
	}
}

// TestShareGroupTimeoutConfigs: a share group's own
// share.heartbeat.interval.ms is what its members are told, and its
// share.session.timeout.ms is when a silent member is removed.
func TestShareGroupTimeoutConfigs(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newClient(t, c.Addr())
	if r, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "tt"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	setGroupConfigs(t, ctx, cl, "quick", "share.heartbeat.interval.ms", "700", "share.session.timeout.ms", "1500")
	hb := kmsg.NewPtrShareGroupHeartbeatRequest()
	hb.GroupID, hb.MemberID, hb.SubscribedTopicNames = "quick", "silent-member", []string{"tt"}
	resp, err := hb.RequestWith(ctx, cl)
	if err != nil || resp.ErrorCode != 0 {
		t.Fatal(err, kerr.ErrorForCode(resp.ErrorCode))
	}
	if resp.HeartbeatIntervalMillis != 700 {
		t.Fatalf("heartbeat interval %d ms, want the group's 700", resp.HeartbeatIntervalMillis)
	}
	members := func() int {
		d := kmsg.NewPtrShareGroupDescribeRequest()
		d.GroupIDs = []string{"quick"}
		r, err := d.RequestWith(ctx, cl)
		if err != nil || len(r.Groups) != 1 {
			t.Fatal(err)
		}
		return len(r.Groups[0].Members)
	}
	if members() != 1 {
		t.Fatal("the member did not join")
	}
	start := time.Now()
	testenv.WaitFor(ctx, t, 100*time.Millisecond, func() bool { return members() == 0 },
		func() string { return "the silent member is still in the group" })
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the silent member was removed after %v; its group's session timeout is 1.5 s", took)
	}
}

// TestShareSessionLimit: past the gateway's share-session limit a new
// session gets SHARE_SESSION_LIMIT_REACHED, and once one closes there is
// room again.
func TestShareSessionLimit(t *testing.T) {
	defer gateway.SetMaxShareSessions(gateway.SetMaxShareSessions(1))
	c := testenv.InProcess(t, 1, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newClient(t, c.Addr())
	adm := kadm.NewClient(cl)
	if r, err := adm.CreateTopic(ctx, 1, 1, nil, "lim"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	id, b := topicAndBroker(t, ctx, cl, "lim")
	open := func(member string, epoch int32) int16 {
		return shareFetchRaw(t, ctx, b, func(r *kmsg.ShareFetchRequest) {
			r.MemberID, r.ShareSessionEpoch, r.MaxWaitMillis, r.Topics = kmsg.StringPtr(member), epoch, 0, shareTopic(id)
		}).ErrorCode
	}
	if code := open("a", 0); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	if code := open("b", 0); code != kerr.ShareSessionLimitReached.Code {
		t.Fatalf("a second session past the limit: %v", kerr.ErrorForCode(code))
	}
	if code := open("a", 0); code != 0 {
		t.Fatalf("a member reopening its own session: %v", kerr.ErrorForCode(code))
	}
	if code := open("a", -1); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	if code := open("b", 0); code != 0 {
		t.Fatalf("after a session closed: %v", kerr.ErrorForCode(code))
	}
}

// TestShareForgetWithAcks: a ShareFetch that acknowledges a partition's
// records while forgetting it (a reassignment) applies the
// acknowledgements and acquires nothing more there.
func TestShareForgetWithAcks(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newClient(t, c.Addr())
	if r, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "fg"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	setGroupConfigs(t, ctx, cl, "raw", "share.auto.offset.reset", "earliest")
	produceKeys(t, ctx, cl, "fg", 0, 10)
	id, b := topicAndBroker(t, ctx, cl, "fg")
	open := shareFetchRaw(t, ctx, b, func(r *kmsg.ShareFetchRequest) { r.MaxRecords, r.Topics = 5, shareTopic(id) })
	if acq := open.Topics[0].Partitions[0].AcquiredRecords; len(acq) != 1 || acq[0].LastOffset != 4 {
		t.Fatalf("acquired %+v, want 0..4", acq)
	}
	forget := shareFetchRaw(t, ctx, b, func(r *kmsg.ShareFetchRequest) {
		r.ShareSessionEpoch, r.MaxWaitMillis, r.Topics = 1, 0, shareTopic(id, ackBatch(0, 4, 1))
		r.ForgottenTopicsData = []kmsg.ShareFetchRequestForgottenTopicsData{{TopicID: id, Partitions: []int32{0}}}
	})
	if len(forget.Topics) != 1 || len(forget.Topics[0].Partitions) != 1 {
		t.Fatalf("the acknowledged partition is not in the answer: %+v", forget.Topics)
	}
	if p := forget.Topics[0].Partitions[0]; p.AcknowledgeErrorCode != 0 || len(p.AcquiredRecords) != 0 {
		t.Fatalf("forgotten with acknowledgements: %v, acquired %+v", kerr.ErrorForCode(p.AcknowledgeErrorCode), p.AcquiredRecords)
	}
	other := shareFetchRaw(t, ctx, b, func(r *kmsg.ShareFetchRequest) { r.MemberID, r.Topics = kmsg.StringPtr("member-b"), shareTopic(id) })
	if acq := other.Topics[0].Partitions[0].AcquiredRecords; len(acq) != 1 || acq[0].FirstOffset != 5 || acq[0].LastOffset != 9 || acq[0].DeliveryCount != 1 {
		t.Fatalf("another member acquired %+v, want 5..9 delivered once", acq)
	}
}

// TestShareReadCommitted: a share group with share.isolation.level
// read_committed gets a committed transaction's records, never an
// aborted one's, and an open one's only once it commits; a group left
// at read_uncommitted gets them all as they are written.
func TestShareReadCommitted(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl := newClient(t, c.Addr())
	adm := kadm.NewClient(cl)
	if r, err := adm.CreateTopic(ctx, 1, 1, nil, "ledger"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	setGroupConfigs(t, ctx, cl, "committed", "share.auto.offset.reset", "earliest", "share.isolation.level", "read_committed")
	setGroupConfigs(t, ctx, cl, "everything", "share.auto.offset.reset", "earliest")
	tx, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.TransactionalID("ledger-writer"), kgo.DefaultProduceTopic("ledger"))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	// txn writes n records in a transaction, and ends it unless open.
	txn := func(prefix string, n int, end kgo.TransactionEndTry, open bool) {
		t.Helper()
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if err := tx.ProduceSync(ctx, &kgo.Record{Key: []byte(fmt.Sprint(prefix, i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if !open {
			if err := tx.EndTransaction(ctx, end); err != nil {
				t.Fatal(err)
			}
		}
	}
	txn("committed-", 10, kgo.TryCommit, false)
	txn("aborted-", 10, kgo.TryAbort, false)
	txn("open-", 5, kgo.TryCommit, true)

	// poll takes what a share consumer gets until want keys came or
	// quiet passed with nothing new, accepting each record.
	poll := func(cons *kgo.Client, got map[string]bool, want int, quiet time.Duration) {
		t.Helper()
		last := time.Now()
		for len(got) < want || time.Since(last) < quiet {
			if ctx.Err() != nil {
				t.Fatalf("%d of %d records: %v", len(got), want, got)
			}
			pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
			fs := cons.PollFetches(pctx)
			pcancel()
			fs.EachRecord(func(r *kgo.Record) {
				got[string(r.Key)] = true
				last = time.Now()
				r.Ack(kgo.AckAccept)
			})
			if err := cons.FlushAcks(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	only := func(got map[string]bool, prefixes ...string) {
		t.Helper()
		for k := range got {
			ok := false
			for _, p := range prefixes {
				ok = ok || strings.HasPrefix(k, p)
			}
			if !ok {
				t.Fatalf("got %s; want only %v", k, prefixes)
			}
		}
	}

	all := map[string]bool{}
	poll(newClient(t, c.Addr(), kgo.ConsumeTopics("ledger"), kgo.ShareGroup("everything")), all, 25, 0)

	committed := newClient(t, c.Addr(), kgo.ConsumeTopics("ledger"), kgo.ShareGroup("committed"))
	got := map[string]bool{}
	poll(committed, got, 10, time.Second)
	only(got, "committed-")
	if len(got) != 10 {
		t.Fatalf("read_committed before the open transaction ends: %d records", len(got))
	}
	if err := tx.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	poll(committed, got, 15, 500*time.Millisecond)
	only(got, "committed-", "open-")
	if len(got) != 15 {
		t.Fatalf("read_committed after the commit: %d records", len(got))
	}
}
