package node_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/testenv"
)

// BenchmarkPartitionTakeover measures what a large partition costs when
// it changes hands, against a small partition in the same cluster (its
// peer: the ratio is what to compare across runs on a noisy machine).
// "big" holds STRATA_TAKEOVER_BYTES (default 1 GiB) from idempotent
// producers in batches of about 16 KiB; "small" holds a few records.
// Both have two replicas, on nodes 2 and 3 of three, led by node 2 (node
// 1 bootstraps the metadata group and is likely its controller, which
// this is not about).
//
//   - failover: node 2 stops; takeover-big-ms and takeover-small-ms are
//     the times until a produce to each is acknowledged again (the
//     session timeout, 1 s here, is in both).
//
//   - open: one node holding both restarts; open-big-ms and
//     open-small-ms are the times until each accepts a produce, and
//     small-p99-ms the p99 produce latency on small while big is not
//     yet open (0 when small never served before big).
//
//     STRATA_TAKEOVER_BYTES=1073741824 go test -run '^$' -bench PartitionTakeover -benchtime 1x ./node
func BenchmarkPartitionTakeover(b *testing.B) {
	size := int64(1 << 30)
	if s := os.Getenv("STRATA_TAKEOVER_BYTES"); s != "" {
		size, _ = strconv.ParseInt(s, 10, 64)
	}
	b.Run("failover", func(b *testing.B) {
		for range b.N {
			c := testenv.InProcess(b, 3, testenv.Options{}) // three voters: one may stop
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			cl := takeoverClient(b, c)
			fillTakeoverTopics(ctx, b, c, cl, 2, size)
			b.ResetTimer()
			start := time.Now()
			c.StopNode(2)
			big, small := produceAgain(ctx, b, cl, start)
			b.ReportMetric(float64(big.Milliseconds()), "takeover-big-ms")
			b.ReportMetric(float64(small.Milliseconds()), "takeover-small-ms")
			b.StopTimer()
			cl.Close()
			cancel()
			c.Close()
		}
	})
	for _, cold := range []bool{false, true} {
		name := "open"
		if cold {
			name = "open-cold" // no producer snapshot: big's open scans its whole log
		}
		b.Run(name, func(b *testing.B) { benchOpen(b, size, cold) })
	}
	b.Run("open-while-serving", func(b *testing.B) { benchOpenWhileServing(b, size) })
}

// benchOpenWhileServing is BenchmarkPartitionTakeover's open on a running
// node: one node serves small while big (closed, its producer snapshots
// removed, so the open scans its whole log) opens again. small's produce
// latency is sampled one produce at a time for as long as big's open
// takes, once before it (the baseline: same node, same window) and once
// while it runs; the ratio of the two p99s is the cost of the open to
// another partition.
func benchOpenWhileServing(b *testing.B, size int64) {
	for range b.N {
		c := testenv.InProcess(b, 1, testenv.Options{})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		cl := takeoverClient(b, c)
		fillTakeoverTopics(ctx, b, c, cl, 1, size)
		n := c.Nodes[1].Node
		n.CloseForTest("big", 0)
		snaps, _ := filepath.Glob(filepath.Join(c.DataDir(1), "*", "big-0", "*.producers"))
		more, _ := filepath.Glob(filepath.Join(c.DataDir(1), "big-0", "*.producers"))
		for _, f := range append(snaps, more...) {
			os.Remove(f)
		}
		// big is closed: a produce to it opens it (as does the roles
		// loop's next pass). small has a client of its own, so that no
		// request to big holds one of small's back in the client.
		sc := takeoverClient(b, c)
		if err := sc.ProduceSync(ctx, &kgo.Record{Topic: "small", Value: []byte("warm")}).FirstErr(); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		start := time.Now()
		var during []time.Duration
		opened := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			during = sampleProduce(ctx, sc, "small", opened)
		}()
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "big", Value: []byte("again")}).FirstErr(); err != nil {
			b.Fatal(err)
		}
		openTook := time.Since(start)
		close(opened)
		<-sampled
		b.StopTimer()
		// The baseline: small alone, for as long again.
		quiet := make(chan struct{})
		time.AfterFunc(openTook, func() { close(quiet) })
		base := sampleProduce(ctx, sc, "small", quiet)
		b.ReportMetric(float64(openTook.Milliseconds()), "open-big-ms")
		b.ReportMetric(float64(len(during)), "small-produces")
		b.ReportMetric(quantileMs(during, 0.99), "small-p99-ms")
		b.ReportMetric(quantileMs(during, 1), "small-max-ms")
		b.ReportMetric(quantileMs(base, 0.99), "alone-p99-ms")
		b.ReportMetric(quantileMs(base, 1), "alone-max-ms")
		sc.Close()
		cl.Close()
		cancel()
		c.Close()
	}
}

// sampleProduce produces to topic one record at a time, every 2 ms, until
// stop, and returns each acknowledged produce's latency.
func sampleProduce(ctx context.Context, cl *kgo.Client, topic string, stop <-chan struct{}) []time.Duration {
	var lat []time.Duration
	for {
		select {
		case <-stop:
			return lat
		case <-time.After(2 * time.Millisecond):
		}
		t0 := time.Now()
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("x")}).FirstErr(); err == nil {
			lat = append(lat, time.Since(t0))
		}
	}
}

// quantileMs is the q quantile of lat in milliseconds (0 if empty).
func quantileMs(lat []time.Duration, q float64) float64 {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	i := min(len(s)-1, int(float64(len(s))*q))
	return float64(s[i].Microseconds()) / 1000
}

// benchOpen is BenchmarkPartitionTakeover's open case.
func benchOpen(b *testing.B, size int64, cold bool) {
	for range b.N {
		c := testenv.InProcess(b, 1, testenv.Options{})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		cl := takeoverClient(b, c)
		fillTakeoverTopics(ctx, b, c, cl, 1, size)
		cl.Close()
		b.ResetTimer()
		c.StopNode(1)
		if cold {
			snaps, _ := filepath.Glob(filepath.Join(c.DataDir(1), "*", "big-0", "*.producers"))
			more, _ := filepath.Glob(filepath.Join(c.DataDir(1), "big-0", "*.producers"))
			for _, f := range append(snaps, more...) {
				os.Remove(f)
			}
		}
		start := time.Now()
		c.StartNode(1)
		cl = takeoverClient(b, c)
		// Produce to small every 2 ms, one at a time, noting each
		// latency until big is open.
		var mu sync.Mutex
		var lat []time.Duration
		bigOpen := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-bigOpen:
					return
				case <-time.After(2 * time.Millisecond):
				}
				t0 := time.Now()
				if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "small", Value: []byte("x")}).FirstErr(); err == nil {
					mu.Lock()
					lat = append(lat, time.Since(t0))
					mu.Unlock()
				}
			}
		}()
		big, small := produceAgain(ctx, b, cl, start)
		close(bigOpen)
		<-done
		b.ReportMetric(float64(big.Milliseconds()), "open-big-ms")
		b.ReportMetric(float64(small.Milliseconds()), "open-small-ms")
		p99 := 0.0
		if len(lat) > 0 {
			slices.Sort(lat)
			p99 = float64(lat[len(lat)*99/100].Microseconds()) / 1000
		}
		b.ReportMetric(p99, "small-p99-ms")
		b.ReportMetric(float64(len(lat)), "small-produces")
		b.StopTimer()
		cl.Close()
		cancel()
		c.Close()
	}
}

func takeoverClient(b *testing.B, c *testenv.Cluster) *kgo.Client {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(16<<10), kgo.RecordRetries(1<<30), kgo.ProduceRequestTimeout(time.Second),
		kgo.RequestTimeoutOverhead(500*time.Millisecond), kgo.RetryBackoffFn(func(int) time.Duration { return 5 * time.Millisecond }))
	if err != nil {
		b.Fatal(err)
	}
	return cl
}

// fillTakeoverTopics creates big and small (one replica on node 1, or
// two on nodes 2 and 3, led by the first)
// and fills big with size bytes in ~16 KiB batches.
func fillTakeoverTopics(ctx context.Context, b *testing.B, c *testenv.Cluster, cl *kgo.Client, rf int16, size int64) {
	b.Helper()
	for _, topic := range []string{"big", "small"} {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.TimeoutMillis = 30000
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
		ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		ra.Replicas = []int32{1}
		if rf == 2 {
			ra.Replicas = []int32{2, 3}
		}
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, ra)
		cfg := kmsg.NewCreateTopicsRequestTopicConfig()
		cfg.Name, cfg.Value = "segment.bytes", kmsg.StringPtr("134217728")
		rt.Configs = append(rt.Configs, cfg)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err == nil {
			err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
		}
		if err != nil {
			b.Fatalf("create %s: %v", topic, err)
		}
	}
	value := make([]byte, 100)
	for i := range value {
		value[i] = byte(i * 7)
	}
	var produced int64
	for produced < size {
		for range 10000 {
			cl.Produce(ctx, &kgo.Record{Topic: "big", Value: value}, func(_ *kgo.Record, err error) {
				if err != nil {
					b.Errorf("produce: %v", err)
				}
			})
		}
		produced += 10000 * int64(len(value)+10)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "small", Value: value}).FirstErr(); err != nil {
		b.Fatal(err)
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	// Both replicas in sync before anything stops.
	for {
		v := c.Nodes[1].Member.Server().FSM().View()
		ok := true
		for _, topic := range []string{"big", "small"} {
			p, _, _ := v.Partition(topic, 0)
			ok = ok && len(p.ISR) == int(rf) && p.Leader == ra0(rf)
		}
		v.Close()
		if ok {
			return
		}
		if ctx.Err() != nil {
			b.Fatal("replicas never in sync with their first leading")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// produceAgain produces to big and small at once until each is
// acknowledged, and returns how long after start each took.
func produceAgain(ctx context.Context, b *testing.B, cl *kgo.Client, start time.Time) (big, small time.Duration) {
	b.Helper()
	var wg sync.WaitGroup
	for topic, took := range map[string]*time.Duration{"big": &big, "small": &small} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("again")}).FirstErr(); err != nil {
				b.Errorf("produce to %s: %v", topic, err)
			}
			*took = time.Since(start)
		}()
	}
	wg.Wait()
	return big, small
}

// ra0 is the leader fillTakeoverTopics assigns.
func ra0(rf int16) int32 {
	if rf == 2 {
		return 2
	}
	return 1
}
