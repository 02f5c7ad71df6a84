package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/testenv"
)

// brokerIDs asks one gateway's Metadata which brokers it lists.
func brokerIDs(t *testing.T, ctx context.Context, addr string) ([]int32, *kmsg.MetadataResponse) {
	t.Helper()
	cl := newClient(t, addr)
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int32
	for _, b := range resp.Brokers {
		ids = append(ids, b.NodeID)
	}
	slices.Sort(ids)
	return ids, resp
}

// waitBrokers waits until a gateway lists exactly want as brokers.
func waitBrokers(t *testing.T, ctx context.Context, addr string, want []int32, within time.Duration) *kmsg.MetadataResponse {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ids, resp := brokerIDs(t, ctx, addr)
		if slices.Equal(ids, want) {
			return resp
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway %s lists brokers %v, want %v", addr, ids, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// brokerAddrs maps each broker a Metadata answer lists to its address.
func brokerAddrs(resp *kmsg.MetadataResponse) map[int32]string {
	m := map[int32]string{}
	for _, b := range resp.Brokers {
		m[b.NodeID] = net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
	}
	return m
}

// TestBrokersAreNodes runs three nodes behind two gateways. Both list the
// nodes as brokers, each at a port of one of the gateways that stands for
// it, and agree on every address; every partition's leader is among its
// replicas and its ISR within them, as Kafka's admin tools check; the
// coordinator and controller are brokers listed; a gateway that stops
// hands its nodes' addresses to the other at once, and clients carry on.
func TestBrokersAreNodes(t *testing.T) {
	c := testenv.InProcess(t, 3, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g1 := c.StartGateway(1)
	nodes := []int32{1, 2, 3}
	gwPort := func(id int32, addr string) bool {
		return addr == c.Gateway.NodePortAddr("PLAINTEXT", id) || addr == g1.NodePortAddr("PLAINTEXT", id)
	}
	// Both gateways hear of each other's ports within a heartbeat.
	var r0, r1 *kmsg.MetadataResponse
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	testenv.WaitFor(wctx, t, 50*time.Millisecond, func() bool {
		r0 = waitBrokers(t, ctx, c.Addr(), nodes, 5*time.Second)
		r1 = waitBrokers(t, ctx, g1.Addr(), nodes, 5*time.Second)
		return fmt.Sprint(brokerAddrs(r0)) == fmt.Sprint(brokerAddrs(r1))
	}, func() string {
		return fmt.Sprintf("gateways list the brokers at different addresses: %v and %v", brokerAddrs(r0), brokerAddrs(r1))
	})
	wcancel()
	for id, a := range brokerAddrs(r0) {
		if !gwPort(id, a) {
			t.Fatalf("broker %d is at %s, not a gateway's port for it", id, a)
		}
	}
	if !slices.Contains(nodes, r0.ControllerID) {
		t.Fatalf("controller %d is not a broker listed", r0.ControllerID)
	}

	adm := kadm.NewClient(newClient(t, c.Addr()))
	if r, err := adm.CreateTopic(ctx, 6, 3, nil, "spread"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	// Kafka's invariants, from either gateway once the ISR is full.
	for _, addr := range []string{c.Addr(), g1.Addr()} {
		testenv.WaitFor(ctx, t, 50*time.Millisecond, func() bool {
			_, resp := brokerIDs(t, ctx, addr)
			full := true
			for _, tp := range resp.Topics {
				for _, p := range tp.Partitions {
					if p.ErrorCode != 0 {
						full = false
						continue
					}
					if !slices.Contains(p.Replicas, p.Leader) || !slices.Contains(p.ISR, p.Leader) {
						t.Fatalf("partition %d: leader %d, replicas %v, ISR %v", p.Partition, p.Leader, p.Replicas, p.ISR)
					}
					for _, r := range p.ISR {
						if !slices.Contains(p.Replicas, r) {
							t.Fatalf("partition %d: ISR %v not within replicas %v", p.Partition, p.ISR, p.Replicas)
						}
					}
					full = full && len(p.ISR) == 3
				}
			}
			return full
		}, func() string { return "the ISR of every partition never filled" })
	}
	dc, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, newClient(t, c.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	if len(dc.Brokers) != 3 || !slices.Contains(nodes, dc.ControllerID) {
		t.Fatalf("DescribeCluster: %d brokers, controller %d", len(dc.Brokers), dc.ControllerID)
	}

	// A client bootstrapped at one gateway produces through the brokers'
	// addresses, and its coordinators are brokers listed.
	prod := newClient(t, c.Addr(), kgo.DefaultProduceTopic("spread"))
	var recs []*kgo.Record
	for i := range 400 {
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)})
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	addrs := brokerAddrs(r0)
	for i := range 20 {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKey = fmt.Sprintf("group-%d", i)
		resp, err := req.RequestWith(ctx, prod)
		if err != nil || resp.ErrorCode != 0 {
			t.Fatal(err, resp)
		}
		if a := net.JoinHostPort(resp.Host, strconv.Itoa(int(resp.Port))); addrs[resp.NodeID] != a {
			t.Fatalf("coordinator %d at %s; Metadata lists it at %s", resp.NodeID, a, addrs[resp.NodeID])
		}
	}

	// The second gateway stops: within a heartbeat the first names its
	// own ports for every node, and the client carries on.
	g1.Close()
	var a map[int32]string
	wctx, wcancel = context.WithTimeout(ctx, 2*time.Second)
	testenv.WaitFor(wctx, t, 20*time.Millisecond, func() bool {
		_, resp := brokerIDs(t, ctx, c.Addr())
		a = brokerAddrs(resp)
		ok := len(a) == 3
		for id, addr := range a {
			ok = ok && addr == c.Gateway.NodePortAddr("PLAINTEXT", id)
		}
		return ok
	}, func() string { return fmt.Sprintf("after a gateway stopped, brokers are at %v", a) })
	wcancel()
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cons := newClient(t, c.Addr(), kgo.ConsumeTopics("spread"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := 0
	for got < 800 {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		got += fs.NumRecords()
	}
	if got != 800 {
		t.Fatalf("consumed %d records, produced 800", got)
	}
}

// TestBrokersAreGateways: with BrokersAreGateways (gateways behind one
// load-balanced address), Metadata lists the live gateways, spreads
// leadership and coordinators over them, and drops one that stops.
func TestBrokersAreGateways(t *testing.T) {
	asGateways := func(cfg *gateway.Config) { cfg.BrokersAreGateways = true }
	c := testenv.InProcess(t, 1, testenv.Options{Gateway: asGateways})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g1, err := gateway.Start(gateway.Config{Cluster: "test", Conn: c.Conn(), ID: 1, Addr: "127.0.0.1:0", BrokersAreGateways: true})
	if err != nil {
		t.Fatal(err)
	}
	defer g1.Close()
	waitBrokers(t, ctx, c.Addr(), []int32{0, 1}, 5*time.Second)
	waitBrokers(t, ctx, g1.Addr(), []int32{0, 1}, 5*time.Second)
	adm := kadm.NewClient(newClient(t, c.Addr()))
	if r, err := adm.CreateTopic(ctx, 16, 1, nil, "spread"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	_, r0 := brokerIDs(t, ctx, c.Addr())
	count := map[int32]int{}
	for _, tp := range r0.Topics {
		for _, p := range tp.Partitions {
			if *tp.Topic == "spread" {
				count[p.Leader]++
			}
		}
	}
	if count[0] == 0 || count[1] == 0 || count[0]+count[1] != 16 {
		t.Fatalf("leadership not spread over both gateways: %v", count)
	}
	prod := newClient(t, c.Addr(), kgo.DefaultProduceTopic("spread"))
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	g1.Close()
	waitBrokers(t, ctx, c.Addr(), []int32{0}, time.Second)
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// TestTopicIDs produces (v13) and fetches (v13+) by topic ID, as newer
// clients do, and gets UNKNOWN_TOPIC_ID for an ID no topic has.
func TestTopicIDs(t *testing.T) {
	_, ctx, cl, adm := topicEnv(t, "ids", 1)
	td, err := adm.ListTopics(ctx, "ids")
	if err != nil {
		t.Fatal(err)
	}
	id := td["ids"].ID
	produce := func(id [16]byte) *kmsg.ProduceResponse {
		t.Helper()
		req := testenv.ProduceRequest("", -1, testenv.Batch([]byte("by-id")))
		req.Topics[0].TopicID = id
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if v := resp.GetVersion(); v < 13 {
			t.Fatalf("produce went out at v%d, want v13+", v)
		}
		return resp
	}
	if p := produce(id).Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("produce by id: %+v", p)
	}
	if p := produce([16]byte{1}).Topics[0].Partitions[0]; p.ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("produce to unknown id: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	fetch := func(id [16]byte) *kmsg.FetchResponse {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.MaxBytes = 1 << 20
		ft := kmsg.NewFetchRequestTopic()
		ft.TopicID = id
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.PartitionMaxBytes = 1 << 20
		ft.Partitions = append(ft.Partitions, fp)
		req.Topics = append(req.Topics, ft)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if v := resp.GetVersion(); v < 13 {
			t.Fatalf("fetch went out at v%d, want v13+", v)
		}
		return resp
	}
	resp := fetch(id)
	if tp := resp.Topics[0]; tp.TopicID != id || tp.Partitions[0].ErrorCode != 0 || tp.Partitions[0].HighWatermark != 1 || len(tp.Partitions[0].RecordBatches) == 0 {
		t.Fatalf("fetch by id: %+v", tp)
	}
	if p := fetch([16]byte{1}).Topics[0].Partitions[0]; p.ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("fetch from unknown id: %v", kerr.ErrorForCode(p.ErrorCode))
	}
}

// TestNotLeaderRetried: a gateway whose view names the wrong node hears
// NOT_LEADER_OR_FOLLOWER, refreshes and retries, so the client sees
// success on its first try, for produce, fetch and list offsets alike.
func TestNotLeaderRetried(t *testing.T) {
	c := testenv.InProcess(t, 2, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newClient(t, c.Addr(), testenv.NamedTopics)
	adm := kadm.NewClient(cl)
	if r, err := adm.CreateTopic(ctx, 1, 1, nil, "moved"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	leader := int32(-1)
	for leader < 0 {
		md, err := adm.Metadata(ctx, "moved")
		if err != nil {
			t.Fatal(err)
		}
		if p := md.Topics["moved"].Partitions[0]; p.Err == nil && len(p.Replicas) == 1 {
			leader = p.Replicas[0]
		}
	}
	wrong := 3 - leader // the other of nodes 1 and 2
	// Once the other node knows the topic it answers NOT_LEADER_OR_FOLLOWER
	// (before, UNKNOWN_TOPIC_OR_PARTITION, which the gateway retries too).
	for {
		v := c.Nodes[wrong].Member.Server().FSM().View()
		_, ok, _ := v.Partition("moved", 0)
		v.Close()
		if ok {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	broker := cl.Broker(1) // node 1, at a gateway port that stands for it

	if err := c.Gateway.PinStaleLeader(ctx, "moved", 0, wrong); err != nil {
		t.Fatal(err)
	}
	presp, err := broker.Request(ctx, testenv.ProduceRequest("moved", -1, testenv.Batch([]byte("x"))))
	if err != nil {
		t.Fatal(err)
	}
	if p := presp.(*kmsg.ProduceResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("produce through a stale view: %v offset %d", kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}

	if err := c.Gateway.PinStaleLeader(ctx, "moved", 0, wrong); err != nil {
		t.Fatal(err)
	}
	freq := kmsg.NewPtrFetchRequest()
	freq.MaxBytes = 1 << 20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "moved"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	freq.Topics = append(freq.Topics, ft)
	fresp, err := broker.Request(ctx, freq)
	if err != nil {
		t.Fatal(err)
	}
	if p := fresp.(*kmsg.FetchResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 || p.HighWatermark != 1 {
		t.Fatalf("fetch through a stale view: %v hw %d", kerr.ErrorForCode(p.ErrorCode), p.HighWatermark)
	}

	if err := c.Gateway.PinStaleLeader(ctx, "moved", 0, wrong); err != nil {
		t.Fatal(err)
	}
	lreq := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = "moved"
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Timestamp = -1
	lt.Partitions = append(lt.Partitions, lp)
	lreq.Topics = append(lreq.Topics, lt)
	lresp, err := broker.Request(ctx, lreq)
	if err != nil {
		t.Fatal(err)
	}
	if p := lresp.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 || p.Offset != 1 {
		t.Fatalf("list offsets through a stale view: %v offset %d", kerr.ErrorForCode(p.ErrorCode), p.Offset)
	}
}

// TestLargerThanNATSPayload produces and consumes records several times
// the NATS max payload: requests and replies between gateway and node go
// in chunks, whole, never cut.
func TestLargerThanNATSPayload(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{NATSMaxPayload: 128 << 10})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newClient(t, c.Addr(), kgo.ProducerBatchMaxBytes(4<<20), kgo.MaxBufferedBytes(64<<20),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.FetchMaxBytes(8<<20), kgo.FetchMaxPartitionBytes(8<<20))
	adm := kadm.NewClient(cl)
	if r, err := adm.CreateTopic(ctx, 4, 1, map[string]*string{"max.message.bytes": kadm.StringPtr("5000000")}, "big"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	var recs []*kgo.Record
	want := map[string][]byte{}
	for i := range 12 {
		v := make([]byte, 300<<10+i*250<<10) // 300 KiB to 3 MiB
		for j := range v {
			v[j] = byte(i*31 + j)
		}
		k := fmt.Sprintf("k%d", i)
		want[k] = v
		recs = append(recs, &kgo.Record{Topic: "big", Key: []byte(k), Value: v})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cons := newClient(t, c.Addr(), kgo.ConsumeTopics("big"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(8<<20), kgo.FetchMaxPartitionBytes(8<<20))
	for len(want) > 0 {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if w, ok := want[string(r.Key)]; !ok || !bytes.Equal(w, r.Value) {
				t.Fatalf("record %s: %d bytes, not as produced", r.Key, len(r.Value))
			}
			delete(want, string(r.Key))
		})
	}
}
