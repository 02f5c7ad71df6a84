package node_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
)

// BenchmarkReplicatedProduce compares, in one three-node cluster, produce
// throughput flat out and latency at a moderate rate for RF=1 acks=1,
// RF=3 acks=1 and RF=3 acks=all (min.insync.replicas=2), each with the
// client's defaults otherwise (kgo: one request in flight without
// idempotence, up to five with it).
//
// Each case gets a fresh topic, deleted afterwards, and each phase starts
// with the page cache flushed; one untimed round first warms the cluster,
// and one acked record per partition warms each topic. On a VM
// whose memory the host backs lazily, the first write into never-used
// page cache costs several times more CPU than later ones: without the
// warm-up and the deletes, whichever case first grows the page cache
// pays for it. "cores" is the process's CPU time over the flat-out
// phase's wall time; "x-rf1" an RF=3 run's throughput over the mean of
// the RF=1 runs before it.
//
//	go test -run '^$' -bench ReplicatedProduce -benchtime 1x -count 3 ./node
func BenchmarkReplicatedProduce(b *testing.B) {
	c := testenv.InProcess(b, 3, testenv.Options{ReplicaLagMax: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	admin, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()))
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	type benchCase struct {
		name string
		rf   int16
		acks kgo.Acks
	}
	// baseline holds the RF=1 runs' MB/s: each RF=3 run reports its ratio
	// to their mean (x-rf1), measured side by side in one process.
	var baseline []float64
	// round produces 200 MB flat out into a new topic, then (unless
	// warming up) 3 s at 2,000 records/s with each record timed, and
	// deletes the topic.
	round := func(b *testing.B, tc benchCase, topic string, timed bool) {
		if r, err := adm.CreateTopic(ctx, 3, tc.rf, map[string]*string{"min.insync.replicas": kadm.StringPtr(fmt.Sprint(min(tc.rf, 2)))}, topic); err != nil || r.Err != nil {
			b.Fatal(err, r.Err)
		}
		defer func() {
			if _, err := adm.DeleteTopics(ctx, topic); err != nil {
				b.Fatal(err)
			}
			// The nodes drop its data in the background: wait, so that
			// is not timed with the next case.
			for id := range c.Nodes {
				for {
					left, _ := filepath.Glob(filepath.Join(c.DataDir(id), topic+"-*"))
					if len(left) == 0 {
						break
					}
					if ctx.Err() != nil {
						b.Fatalf("node %d still holds %v", id, left)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
		warm, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.RequiredAcks(tc.acks), kgo.DisableIdempotentWrite(),
			kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			b.Fatal(err)
		}
		defer warm.Close()
		opts := []kgo.Opt{kgo.SeedBrokers(c.Addr()), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(tc.acks),
			kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(time.Millisecond), kgo.MaxBufferedRecords(100000)}
		if tc.acks != kgo.AllISRAcks() {
			opts = append(opts, kgo.DisableIdempotentWrite())
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		value := make([]byte, 1024)
		// What a new topic costs once (metadata, a producer id, each
		// partition's log and followers) is not throughput: one acked
		// record per partition first.
		for p := range int32(3) {
			if err := warm.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: value}).FirstErr(); err != nil {
				b.Fatal(err)
			}
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
			b.Fatal(err)
		}
		const n = 200 << 10
		syscall.Sync()
		cpu0 := cpuTime()
		start := time.Now()
		for range n {
			cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
				if err != nil {
					b.Error(err)
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		if !timed {
			return
		}
		mbps := float64(n*len(value)) / took.Seconds() / 1e6
		b.ReportMetric(mbps, "MB/s")
		if tc.rf == 1 {
			baseline = append(baseline, mbps)
		} else if len(baseline) > 0 {
			b.ReportMetric(mbps/(sum(baseline)/float64(len(baseline))), "x-rf1")
		}
		b.ReportMetric((cpuTime()-cpu0).Seconds()/took.Seconds(), "cores")
		// The latency phase starts without the flat-out phase's dirty
		// pages: their writeback (ext4 journal commits waiting on it)
		// would stall appends and be timed as ours.
		syscall.Sync()
		var mu sync.Mutex
		var lat []time.Duration
		tick := time.NewTicker(500 * time.Microsecond)
		defer tick.Stop()
		for range 6000 {
			<-tick.C
			sent := time.Now()
			cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
				if err != nil {
					b.Error(err)
				}
				mu.Lock()
				lat = append(lat, time.Since(sent))
				mu.Unlock()
			})
		}
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
	cases := []benchCase{
		{"rf1-acks1", 1, kgo.LeaderAck()},
		{"rf3-acks1", 3, kgo.LeaderAck()},
		{"rf3-acksall", 3, kgo.AllISRAcks()},
	}
	round(b, cases[2], "bench-warmup", false)
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			for i := range b.N {
				round(b, tc, fmt.Sprintf("bench-%s-%d", tc.name, i), true)
			}
		})
	}
}

func sum(xs []float64) float64 {
	t := 0.0
	for _, x := range xs {
		t += x
	}
	return t
}

// cpuTime is the CPU time, user and system, this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFailover stops the leader of a partition with three replicas
// and measures how long until a produce to it is acknowledged again
// (acks=all), against the session timeout (1s in testenv).
//
//	go test -run '^$' -bench Failover -benchtime 5x ./node
func BenchmarkFailover(b *testing.B) {
	var total time.Duration
	for range b.N {
		c := testenv.InProcess(b, 3, testenv.Options{})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.DefaultProduceTopic("fo"), kgo.RecordRetries(1<<30),
			kgo.ProduceRequestTimeout(time.Second), kgo.RequestTimeoutOverhead(500*time.Millisecond),
			kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }))
		if err != nil {
			b.Fatal(err)
		}
		if r, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, "fo"); err != nil || r.Err != nil {
			b.Fatal(err, r.Err)
		}
		for {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("warm")}).FirstErr(); err == nil {
				break
			}
		}
		leader := int32(-1)
		for leader < 0 {
			v := c.Nodes[1].Member.Server().FSM().View()
			p, _, _ := v.Partition("fo", 0)
			v.Close()
			if len(p.ISR) == 3 {
				leader = p.Leader
			}
		}
		start := time.Now()
		c.StopNode(leader)
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("after")}).FirstErr(); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		total += took
		cl.Close()
		cancel()
		c.Close()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "failover-ms")
}
