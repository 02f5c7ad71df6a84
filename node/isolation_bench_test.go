package node_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime/trace"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/testenv"
)

// BenchmarkReplayIsolation measures what a replay of uploaded history
// costs a producer on the same gateway: produce latency on "live" at
// 2,000 records/s (acks=all, one 100-byte record at a time) for a
// window with nothing else running, then for a window while a consumer
// replays "history" (STRATA_ISOLATION_BYTES, default 256 MiB, all in
// MinIO, cold cache) from offset 0 through the same gateway. Both read
// paths in the same run, one gateway each: "node" (the gateway has no
// store, the node reads the bucket and the bytes cross NATS) and "gw"
// (the gateway reads the bucket itself), then "gw-q<MB/s>" for each
// remote fetch quota in STRATA_ISOLATION_QUOTAS (MB/s, comma-separated,
// default "100,200"); each path has a gateway of its own, the only one
// up while it runs. Reported: each window's
// p99, their ratio (the target is at most 1.3), and the replay's MB/s.
//
//	STRATA_MINIO_BIN=$PWD/.cache/bin/minio go test -run '^$' -bench ReplayIsolation -benchtime 1x ./node
func BenchmarkReplayIsolation(b *testing.B) {
	size := int64(256 << 20)
	if s := os.Getenv("STRATA_ISOLATION_BYTES"); s != "" {
		size, _ = strconv.ParseInt(s, 10, 64)
	}
	for range b.N {
		m := testenv.StartMinIO(b)
		store := m.Store("tier", "")
		c := testenv.InProcess(b, 1, testenv.Options{Tier: store, MaintainInterval: 100 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		cl := historyAndLive(ctx, b, c.Addr(), 1)
		value := randomValue()
		for range size / int64(len(value)) {
			cl.Produce(ctx, &kgo.Record{Topic: "history", Value: value}, nil)
		}
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		end, _ := listOffset(ctx, b, cl, "history", -1)
		// Everything but the active segment uploaded and gone from disk.
		for {
			if local, _ := listOffset(ctx, b, cl, "history", -4); local >= end-int64((32<<20)/len(value)) {
				break
			}
			if ctx.Err() != nil {
				b.Fatal("history never left the disk")
			}
			time.Sleep(50 * time.Millisecond)
		}
		// One gateway at a time: gateways share partition leadership by
		// hashing, so with several up a client could be sent to another
		// path's gateway.
		type path struct {
			name  string
			tier  bool  // the gateway reads the bucket itself
			quota int64 // its remote fetch quota, bytes/s
		}
		paths := []path{{"node", false, 0}, {"gw", true, 0}}
		quotas := "100,200"
		if q := os.Getenv("STRATA_ISOLATION_QUOTAS"); q != "" {
			quotas = q
		}
		for _, q := range strings.Split(quotas, ",") {
			mbs, err := strconv.Atoi(q)
			if err != nil || mbs <= 0 {
				b.Fatalf("STRATA_ISOLATION_QUOTAS: %q", q)
			}
			paths = append(paths, path{"gw-q" + q, true, int64(mbs) * 1e6})
		}
		c.Gateway.Close()
		b.ResetTimer()
		for i, path := range paths {
			cfg := gateway.Config{Cluster: "test", Conn: c.Conn(), ID: int32(i + 1), Addr: "127.0.0.1:0", TierFetchMaxBytesPerSecond: path.quota}
			if path.tier {
				cfg.Tier = store
			}
			gw, err := gateway.Start(cfg)
			if err != nil {
				b.Fatal(err)
			}
			waitOneBroker(ctx, b, gw.Addr()) // the last path's gateway forgotten
			alone, _ := produceWindow(ctx, b, gw.Addr(), nil)
			var replayed int64
			var took time.Duration
			stopTrace := traceWindow(b, path.name)
			during, _ := produceWindow(ctx, b, gw.Addr(), func(stop <-chan struct{}) {
				replayed, took = replayWhile(ctx, b, gw.Addr(), end, stop)
			})
			stopTrace()
			gw.Close()
			b.ReportMetric(quantileMs(alone, 0.99), path.name+"-alone-p99-ms")
			b.ReportMetric(quantileMs(during, 0.99), path.name+"-replay-p99-ms")
			b.ReportMetric(quantileMs(during, 0.99)/quantileMs(alone, 0.99), path.name+"-p99-ratio")
			b.ReportMetric(float64(replayed)/took.Seconds()/1e6, path.name+"-replay-MB/s")
		}
		b.StopTimer()
		cl.Close()
		cancel()
	}
}

// historyAndLive creates, through addr, the benchmarks' two topics:
// "history", tiered, with 32 MiB segments and nothing kept on disk past
// the active one, of historyPartitions partitions, and "live"; it
// returns a producing client of them.
func historyAndLive(ctx context.Context, b *testing.B, addr string, historyPartitions int32) *kgo.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	history := map[string]*string{"remote.storage.enable": kadm.StringPtr("true"),
		"segment.bytes": kadm.StringPtr(fmt.Sprint(32 << 20)), "local.retention.bytes": kadm.StringPtr("1")}
	if r, err := adm.CreateTopic(ctx, historyPartitions, 1, history, "history"); err != nil || r.Err != nil {
		b.Fatal(err, r.Err)
	}
	if r, err := adm.CreateTopic(ctx, 1, 1, nil, "live"); err != nil || r.Err != nil {
		b.Fatal(err, r.Err)
	}
	return cl
}

// randomValue is a 16 KiB record value of random bytes (nothing to
// compress).
func randomValue() []byte {
	value := make([]byte, 16<<10)
	for i := range value {
		value[i] = byte(rand.Uint32())
	}
	return value
}

// traceWindow writes an execution trace of the path named in
// STRATA_ISOLATION_TRACE (as path=file) while it replays; it returns
// the function that stops it.
func traceWindow(b *testing.B, name string) func() {
	want, file, ok := strings.Cut(os.Getenv("STRATA_ISOLATION_TRACE"), "=")
	if !ok || want != name {
		return func() {}
	}
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	if err := trace.Start(f); err != nil {
		b.Fatal(err)
	}
	return func() { trace.Stop(); f.Close() }
}

// produceWindow produces to "live" through addr at 2,000 records/s for 5 s
// (while background, if set, runs until the window ends) and returns each
// record's latency, from Produce to acknowledgement.
func produceWindow(ctx context.Context, b *testing.B, addr string, background func(stop <-chan struct{})) ([]time.Duration, error) {
	return produceUntil(ctx, b, addr, background, nil)
}

// produceUntil is produceWindow whose window ends when until closes (or
// after 5 s, if until is nil).
func produceUntil(ctx context.Context, b *testing.B, addr string, background func(stop <-chan struct{}), until <-chan struct{}) ([]time.Duration, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("live"), kgo.ProducerLinger(0))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("warm")}).FirstErr(); err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	var bg sync.WaitGroup
	if background != nil {
		bg.Add(1)
		go func() { defer bg.Done(); background(stop) }()
		time.Sleep(200 * time.Millisecond) // the replay under way
	}
	var mu sync.Mutex
	var lat []time.Duration
	value := make([]byte, 100)
	tick := time.NewTicker(time.Second / 2000)
	deadline := time.Now().Add(5 * time.Second)
	for now := range tick.C {
		if until == nil && now.After(deadline) || until != nil && closed(until) {
			break
		}
		t0 := time.Now()
		cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			if err == nil {
				mu.Lock()
				lat = append(lat, time.Since(t0))
				mu.Unlock()
			}
		})
	}
	tick.Stop()
	err = cl.Flush(ctx)
	close(stop)
	bg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return lat, err
}

// replayWhile reads "history" from offset 0 to end through addr, again
// and again, until stop, and returns the bytes read and the time taken.
// The first pass is cold; later ones may find the gateway's (or node's)
// cache warm.
func replayWhile(ctx context.Context, b *testing.B, addr string, end int64, stop <-chan struct{}) (int64, time.Duration) {
	n, took, err := replayLoop(ctx, addr, end, stop)
	if err != nil {
		b.Fatal(err)
	}
	return n, took
}

func replayLoop(ctx context.Context, addr string, end int64, stop <-chan struct{}) (int64, time.Duration, error) {
	start := time.Now()
	var n int64
	for {
		rc, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			"history": {0: kgo.NewOffset().At(0)}}), kgo.FetchMaxPartitionBytes(8<<20), kgo.FetchMaxBytes(64<<20))
		if err != nil {
			return 0, 0, err
		}
		for next := int64(0); next < end; {
			select {
			case <-stop:
				rc.Close()
				return n, time.Since(start), nil
			default:
			}
			pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
			fs := rc.PollFetches(pctx)
			pcancel()
			fs.EachRecord(func(r *kgo.Record) { n += int64(len(r.Value)); next = r.Offset + 1 })
		}
		rc.Close()
	}
}

// replayChildEnv, set to "ADDR END", makes the test binary a replaying
// consumer of its own (runReplayChild): a replay that does not share the
// producer's process, as in a deployment.
const replayChildEnv = "STRATA_REPLAY_CHILD"

// runReplayChild replays "history" through ADDR until its standard input
// closes, then prints the bytes read and the seconds taken.
func runReplayChild() {
	s := os.Getenv(replayChildEnv)
	if s == "" {
		return
	}
	var addr string
	var end int64
	if _, err := fmt.Sscan(s, &addr, &end); err != nil {
		fmt.Fprintln(os.Stderr, "replay child:", err)
		os.Exit(2)
	}
	stop := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(stop) }()
	n, took, err := replayLoop(context.Background(), addr, end, stop)
	if err != nil {
		fmt.Fprintln(os.Stderr, "replay child:", err)
		os.Exit(1)
	}
	fmt.Println(n, took.Seconds())
	os.Exit(0)
}

// replayInChild runs replayWhile's loop in a process of its own until
// stop, and returns what it read and how long it took.
func replayInChild(b *testing.B, addr string, end int64, stop <-chan struct{}) (int64, time.Duration) {
	bin, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", replayChildEnv, addr, end))
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	<-stop
	in.Close()
	if err := cmd.Wait(); err != nil {
		b.Fatalf("replay child: %v: %s", err, out.String())
	}
	var n int64
	var secs float64
	if _, err := fmt.Sscan(out.String(), &n, &secs); err != nil {
		b.Fatalf("replay child said %q: %v", out.String(), err)
	}
	return n, time.Duration(secs * float64(time.Second))
}

// waitOneBroker waits until the gateway at addr lists itself as the only
// broker: clients it answers cannot be sent to another.
func waitOneBroker(ctx context.Context, b *testing.B, addr string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		if bs, err := adm.ListBrokers(ctx); err == nil && len(bs) == 1 {
			return
		}
		if ctx.Err() != nil {
			b.Fatal("gateways of earlier paths still listed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
