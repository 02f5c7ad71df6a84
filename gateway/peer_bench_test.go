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

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/meta"
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
// allow, then read back from the start. Strata runs on each path between
// its gateway and its node: in one process over NATS, over the node's
// stream and directly (local, as strata dev does); then as separate
// processes (a node and a gateway, children of the test) over NATS
// (procs-nats) and over the stream (procs-stream, strata node's
// default). Each reports its MB/s, its ratio to JetStream's, its produce
// p99 and the cores the whole machine kept busy.
//
//	go test -run '^$' -bench StrataVsJetStream -benchtime 1x ./gateway
func BenchmarkStrataVsJetStream(b *testing.B) {
	payload := make([]byte, peerSize)
	rand.Read(payload)
	for range b.N {
		jp, jc, jl, jpc, jcc := benchJetStream(b, payload)
		b.ReportMetric(jp, "jetstream-produce-MB/s")
		b.ReportMetric(jc, "jetstream-consume-MB/s")
		b.ReportMetric(jl, "jetstream-publish-p99-ms")
		b.ReportMetric(jpc, "jetstream-produce-cores")
		b.ReportMetric(jcc, "jetstream-consume-cores")
		for _, path := range []struct {
			name string
			addr func(b *testing.B) string
			copy bool
		}{
			{"nats", inProcess(testenv.Options{}), false},
			{"stream", inProcess(testenv.Options{Streams: true}), false},
			{"local", inProcess(testenv.Options{LocalPath: true}), false},
			// The gateway copying fetched records into the response,
			// as before they went to the socket by writev: the
			// baseline of that change, in the same run.
			{"local-copy", inProcess(testenv.Options{LocalPath: true}), true},
			{"stream-copy", inProcess(testenv.Options{Streams: true}), true},
			{"procs-nats", processes(true), false},
			{"procs-stream", processes(false), false},
		} {
			was := gateway.SetGather(!path.copy)
			r := benchStrata(b, path.addr(b), payload)
			gateway.SetGather(was)
			b.ReportMetric(r.produce, path.name+"-produce-MB/s")
			b.ReportMetric(r.consume, path.name+"-consume-MB/s")
			b.ReportMetric(r.p99, path.name+"-produce-p99-ms")
			b.ReportMetric(r.produce/jp, path.name+"-produce-ratio")
			b.ReportMetric(r.consume/jc, path.name+"-consume-ratio")
			b.ReportMetric(r.produceCores, path.name+"-produce-cores")
			b.ReportMetric(r.consumeCores, path.name+"-consume-cores")
		}
	}
}

func mbps(n int, d time.Duration) float64 { return float64(n) * peerSize / d.Seconds() / 1e6 }

// inProcess starts one node and a gateway in the test process.
func inProcess(opts testenv.Options) func(b *testing.B) string {
	return func(b *testing.B) string { return testenv.InProcess(b, 1, opts).Addr() }
}

// processes starts one node and one gateway as processes of their own,
// the node's NATS connection direct (no fault proxy).
func processes(noStreams bool) func(b *testing.B) string {
	return func(b *testing.B) string {
		c := testenv.Processes(b, 1, testenv.ProcsOptions{Direct: true, NoStreams: noStreams})
		// The gateway has heard the node's heartbeat naming its stream.
		c.WaitHeartbeats(1, func(hb meta.Heartbeat) bool { return noStreams || hb.StreamAddr != "" })
		return c.Addrs()[0]
	}
}

type strataResult struct{ produce, consume, p99, produceCores, consumeCores float64 }

// benchStrata runs the workload through the gateway at addr.
func benchStrata(b *testing.B, addr string, payload []byte, opts ...kgo.Opt) strataResult {
	ctx := context.Background()
	prod, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("peer"),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(time.Millisecond), kgo.MaxBufferedRecords(10_000)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	if r, err := kadm.NewClient(prod).CreateTopic(ctx, 1, 1, nil, "peer"); err != nil || r.Err != nil {
		b.Fatal(err, r.Err)
	}
	var res strataResult
	lat := make([]time.Duration, 0, peerRecords)
	var mu sync.Mutex
	var wg sync.WaitGroup
	cpu := testenv.MachineCPU()
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
	res.produce, res.produceCores, res.p99 = mbps(peerRecords, time.Since(start)), cpu.Cores(), p99(lat)
	cons, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.ConsumeTopics("peer"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(16 << 20)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close()
	cpu = testenv.MachineCPU()
	start = time.Now()
	for got := 0; got < peerRecords; {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			b.Fatal(err)
		}
		got += fs.NumRecords()
	}
	res.consume, res.consumeCores = mbps(peerRecords, time.Since(start)), cpu.Cores()
	return res
}

func benchJetStream(b *testing.B, payload []byte) (produceMBs, consumeMBs, p99ms, produceCores, consumeCores float64) {
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
	cpu := testenv.MachineCPU()
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
	produceMBs, produceCores = mbps(peerRecords, time.Since(start)), cpu.Cores()
	sub, err := js.PullSubscribe("peer", "bench", nats.AckNone())
	if err != nil {
		b.Fatal(err)
	}
	cpu = testenv.MachineCPU()
	start = time.Now()
	for got := 0; got < peerRecords; {
		msgs, err := sub.Fetch(1000, nats.MaxWait(5*time.Second))
		if err != nil {
			b.Fatal(fmt.Errorf("fetch after %d: %w", got, err))
		}
		got += len(msgs)
	}
	return produceMBs, mbps(peerRecords, time.Since(start)), p99(lat), produceCores, cpu.Cores()
}
