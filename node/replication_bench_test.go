package node_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
)

// BenchmarkReplicatedProduce compares, in one three-node cluster, produce
// throughput flat out and latency at a moderate rate for RF=1 acks=1,
// RF=3 acks=1 and RF=3 acks=all (min.insync.replicas=2).
//
//	go test -run '^$' -bench ReplicatedProduce -benchtime 1x ./node
func BenchmarkReplicatedProduce(b *testing.B) {
	c := testenv.InProcess(b, 3, testenv.Options{ReplicaLagMax: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	admin, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()))
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	cases := []struct {
		name string
		rf   int16
		acks kgo.Acks
	}{
		{"rf1-acks1", 1, kgo.LeaderAck()},
		{"rf3-acks1", 3, kgo.LeaderAck()},
		{"rf3-acksall", 3, kgo.AllISRAcks()},
	}
	for _, tc := range cases {
		topic := "bench-" + tc.name
		if r, err := kadm.NewClient(admin).CreateTopic(ctx, 3, tc.rf, map[string]*string{"min.insync.replicas": kadm.StringPtr(fmt.Sprint(min(tc.rf, 2)))}, topic); err != nil || r.Err != nil {
			b.Fatal(err, r.Err)
		}
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			topic := "bench-" + tc.name
			for range b.N {
				opts := []kgo.Opt{kgo.SeedBrokers(c.Addr()), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(tc.acks),
					kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(time.Millisecond), kgo.MaxBufferedRecords(100000)}
				if tc.acks != kgo.AllISRAcks() {
					opts = append(opts, kgo.DisableIdempotentWrite())
				}
				cl, err := kgo.NewClient(opts...)
				if err != nil {
					b.Fatal(err)
				}
				value := make([]byte, 1024)
				// Flat out: 200 MB.
				const n = 200 << 10
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
				mbps := float64(n*len(value)) / time.Since(start).Seconds() / 1e6
				// Moderate rate: 2,000 records/s for 3 s, each timed.
				var mu sync.Mutex
				var lat []time.Duration
				tick := time.NewTicker(500 * time.Microsecond)
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
				tick.Stop()
				if err := cl.Flush(ctx); err != nil {
					b.Fatal(err)
				}
				cl.Close()
				slices.Sort(lat)
				b.ReportMetric(mbps, "MB/s")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
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
