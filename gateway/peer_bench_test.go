package gateway_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
)

// peerRecords and peerSize are the workload both systems get.
const (
	peerRecords = 200_000
	peerSize    = 1024
)

func p99(d []time.Duration) float64 {
	slices.Sort(d)
	return float64(d[int(0.99*float64(len(d)-1))].Microseconds()) / 1000
}

// BenchmarkStrataVsJetStream runs the same workload, in the same run,
// against Strata (one partition, franz-go, acks=all) and NATS JetStream
// (one stream, file storage, R1, async publish, pull consumer): 200,000
// records of 1 KiB random bytes produced as fast as acknowledgements
// allow, then read back from the start. Strata runs twice: its gateway
// asking the node over NATS, as separate processes do, and directly
// (strata-local-*), as strata dev does.
func BenchmarkStrataVsJetStream(b *testing.B) {
	payload := make([]byte, peerSize)
	rand.Read(payload)
	for range b.N {
		sp, sc, sl := benchStrata(b, payload, false)
		lp, lc, ll := benchStrata(b, payload, true)
		jp, jc, jl := benchJetStream(b, payload)
		b.ReportMetric(lp, "strata-local-produce-MB/s")
		b.ReportMetric(lc, "strata-local-consume-MB/s")
		b.ReportMetric(ll, "strata-local-produce-p99-ms")
		b.ReportMetric(lp/jp, "local-produce-ratio")
		b.ReportMetric(lc/jc, "local-consume-ratio")
		b.ReportMetric(sp, "strata-produce-MB/s")
		b.ReportMetric(jp, "jetstream-produce-MB/s")
		b.ReportMetric(sc, "strata-consume-MB/s")
		b.ReportMetric(jc, "jetstream-consume-MB/s")
		b.ReportMetric(sl, "strata-produce-p99-ms")
		b.ReportMetric(jl, "jetstream-publish-p99-ms")
		b.ReportMetric(sp/jp, "produce-ratio")
		b.ReportMetric(sc/jc, "consume-ratio")
	}
}

func mbps(n int, d time.Duration) float64 { return float64(n) * peerSize / d.Seconds() / 1e6 }

// benchStrata runs the workload on one node and a gateway in one process:
// over NATS as separate processes would, or with local, as strata dev
// does, the gateway asking the node directly.
func benchStrata(b *testing.B, payload []byte, local bool) (produceMBs, consumeMBs, p99ms float64) {
	c := testenv.InProcess(b, 1, testenv.Options{LocalPath: local})
	ctx := context.Background()
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.DefaultProduceTopic("peer"),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(time.Millisecond), kgo.MaxBufferedRecords(10_000))
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	if r, err := kadm.NewClient(prod).CreateTopic(ctx, 1, 1, nil, "peer"); err != nil || r.Err != nil {
		b.Fatal(err, r.Err)
	}
	lat := make([]time.Duration, 0, peerRecords)
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range peerRecords {
		t0 := time.Now()
		wg.Add(1)
		prod.Produce(ctx, &kgo.Record{Value: payload}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
			mu.Lock()
			lat = append(lat, time.Since(t0))
			mu.Unlock()
			wg.Done()
		})
	}
	wg.Wait()
	produceMBs = mbps(peerRecords, time.Since(start))
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.ConsumeTopics("peer"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(16<<20))
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close()
	start = time.Now()
	for got := 0; got < peerRecords; {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			b.Fatal(err)
		}
		got += fs.NumRecords()
	}
	return produceMBs, mbps(peerRecords, time.Since(start)), p99(lat)
}

func benchJetStream(b *testing.B, payload []byte) (produceMBs, consumeMBs, p99ms float64) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: b.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		b.Fatal(err)
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(5 * time.Second) {
		b.Fatal("nats not ready")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := nc.JetStream(nats.PublishAsyncMaxPending(10_000))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := js.AddStream(&nats.StreamConfig{Name: "PEER", Subjects: []string{"peer"}, Storage: nats.FileStorage, Replicas: 1}); err != nil {
		b.Fatal(err)
	}
	type pending struct {
		f  nats.PubAckFuture
		t0 time.Time
	}
	futures := make(chan pending, 10_000)
	lat := make([]time.Duration, 0, peerRecords)
	done := make(chan struct{})
	go func() { // acks arrive in order: wait for each as it comes
		defer close(done)
		for p := range futures {
			select {
			case <-p.f.Ok():
			case err := <-p.f.Err():
				b.Error(err)
			}
			lat = append(lat, time.Since(p.t0))
		}
	}()
	start := time.Now()
	for range peerRecords {
		t0 := time.Now()
		f, err := js.PublishAsync("peer", payload)
		if err != nil {
			b.Fatal(err)
		}
		futures <- pending{f, t0}
	}
	close(futures)
	<-done
	produceMBs = mbps(peerRecords, time.Since(start))
	sub, err := js.PullSubscribe("peer", "bench", nats.AckNone())
	if err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	for got := 0; got < peerRecords; {
		msgs, err := sub.Fetch(1000, nats.MaxWait(5*time.Second))
		if err != nil {
			b.Fatal(fmt.Errorf("fetch after %d: %w", got, err))
		}
		got += len(msgs)
	}
	return produceMBs, mbps(peerRecords, time.Since(start)), p99(lat)
}
