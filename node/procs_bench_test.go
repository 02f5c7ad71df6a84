package node_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
)

// BenchmarkTierProcs measures the read path of tiered data with a node
// and a gateway as separate processes (children of the test), MinIO as a
// process of its own and NATS in the test process, as a deployment runs
// them: 256 MiB of uploaded history over three partitions, replayed cold
// from offset 0 through the gateway, which reads the bucket itself, with
// 1 MiB and with 16 MiB per-partition fetches (the gateway started afresh
// before each, so its chunk cache is empty), against minio-go GETs of the
// same objects in the same run; then produce p99 on another topic (2,000
// records/s, acks=all) alone and while the history replays through the
// same gateway. The producer and the cold replays' consumers are the
// test process; the replay during the producer's window is a process of
// its own.
//
//	STRATA_MINIO_BIN=$PWD/.cache/bin/minio go test -run '^$' -bench TierProcs -benchtime 1x ./node
func BenchmarkTierProcs(b *testing.B) {
	mb := func(bytes int64, d time.Duration) float64 { return float64(bytes) / d.Seconds() / 1e6 }
	for range b.N {
		m := testenv.StartMinIO(b)
		m.CreateBucket("tier")
		c := testenv.Processes(b, 1, testenv.ProcsOptions{TierURL: m.URLWithKeys("tier", ""), TierGateways: 1, Direct: true})
		addr := c.Addrs()[0]
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		cl := historyAndLive(ctx, b, addr, 3)
		value := randomValue()
		for i := range (256 << 20) / len(value) {
			cl.Produce(ctx, &kgo.Record{Topic: "history", Partition: int32(i % 3), Value: value}, nil)
		}
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		// Each partition's uploaded part ends where its local log starts,
		// once everything but the active segment has left the disk.
		remoteEnd := map[int32]int64{}
		for p := range int32(3) {
			end, _, err := tryListOffset(ctx, cl, "history", p, -1)
			if err != nil {
				b.Fatal(err)
			}
			for {
				local, _, err := tryListOffset(ctx, cl, "history", p, -4)
				if err == nil && local >= end-int64((32<<20)/len(value)) {
					remoteEnd[p] = local
					break
				}
				if ctx.Err() != nil {
					b.Fatal("history never left the disk")
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		end, _ := listOffset(ctx, b, cl, "history", -1) // partition 0's, for the looping replay

		// Raw GETs of the uploaded .log objects, one after another.
		raw, err := minio.New(m.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.Secret, "")})
		if err != nil {
			b.Fatal(err)
		}
		getCPU, getMinIO := testenv.MachineCPU(), testenv.ProcessCPU(m.PID())
		getStart := time.Now()
		var got int64
		for o := range raw.ListObjects(ctx, "tier", minio.ListObjectsOptions{Recursive: true}) {
			if o.Err != nil {
				b.Fatal(o.Err)
			}
			if !strings.HasSuffix(o.Key, ".log") {
				continue
			}
			obj, err := raw.GetObject(ctx, "tier", o.Key, minio.GetObjectOptions{})
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, obj)
			obj.Close()
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
		getRate, getCores, getMinIOCores := mb(got, time.Since(getStart)), getCPU.Cores(), getMinIO.Cores()

		// The peer: the same objects through a proxy that does no more
		// than GET them and write them on, read and thrown away.
		proxy, proxyAddr := startProxy(b, m, "tier")
		proxyCPU, proxyMinIO, proxyProc := testenv.MachineCPU(), testenv.ProcessCPU(m.PID()), testenv.ProcessCPU(proxy.cmd.Process.Pid)
		proxyStart := time.Now()
		proxied, err := readProxy(proxyAddr)
		if err != nil {
			b.Fatal(err)
		}
		proxyRate, proxyCores := mb(proxied, time.Since(proxyStart)), proxyCPU.Cores()
		proxyMinIOCores, proxyProcCores := proxyMinIO.Cores(), proxyProc.Cores()

		// Cold replays of the uploaded part through a gateway started
		// afresh, at each fetch size: by a franz-go consumer, as a user
		// replays, and by bare Fetch requests that decode nothing, as the
		// raw GET and the proxy's reader decode nothing.
		b.ResetTimer()
		type replay struct {
			rate, cores float64
			ttfb        time.Duration
			// who the cores went to: MinIO, the gateway, the node and the
			// test process (the consumer, and NATS)
			minio, gateway, node, test float64
		}
		replays := map[string]replay{}
		for _, size := range []struct {
			name  string
			bytes int32
		}{{"1MiB", 1 << 20}, {"16MiB", 16 << 20}} {
			for _, raw := range []bool{false, true} {
				c.KillGateway(0)
				c.StartGateway(0)
				c.CutProfiles()
				cpu := testenv.MachineCPU()
				pm, pg, pn, pt := testenv.ProcessCPU(m.PID()), testenv.ProcessCPU(c.GatewayPID(0)), testenv.ProcessCPU(c.NodePID(1)), testenv.ProcessCPU(os.Getpid())
				start := time.Now()
				var r replay
				var replayed int64
				name := size.name
				if raw {
					name = "raw-" + name
					if replayed, r.ttfb, err = rawFetch(ctx, addr, "history", remoteEnd, size.bytes); err != nil {
						b.Fatal(err)
					}
				} else {
					replayed, r.ttfb = kgoReplay(ctx, b, addr, remoteEnd, size.bytes)
				}
				r.rate, r.cores = mb(replayed, time.Since(start)), cpu.Cores()
				r.minio, r.gateway, r.node, r.test = pm.Cores(), pg.Cores(), pn.Cores(), pt.Cores()
				c.CutProfiles()
				replays[name] = r
			}
		}
		if q := os.Getenv(tierQuotaEnv); q != "" {
			var n int64
			if _, err := fmt.Sscan(q, &n); err != nil {
				b.Fatalf("%s: %v", tierQuotaEnv, err)
			}
			c.KillGateway(0)
			c.SetTierQuota(0, n<<20)
			c.StartGateway(0)
		}
		produceWindow(ctx, b, addr, nil) // warm up: the gateway was just started
		alone, _ := produceWindow(ctx, b, addr, nil)
		var during, floor []time.Duration
		var looped, proxyLooped int64
		var took, proxyTook time.Duration
		c.CutProfiles()
		during, _ = produceWindow(ctx, b, addr, func(stop <-chan struct{}) {
			looped, took = replayInChild(b, addr, end, stop)
		})
		c.CutProfiles()
		// The floor: the same, with the history's bytes moving through
		// the peers instead of Strata.
		floor, _ = produceWindow(ctx, b, addr, func(stop <-chan struct{}) {
			proxyLooped, proxyTook = rawReadWhile(b, proxyAddr, stop)
		})
		proxy.stop(b)
		b.StopTimer()
		b.ReportMetric(getRate, "rawget-MB/s")
		b.ReportMetric(getCores, "rawget-cores")
		b.ReportMetric(getMinIOCores, "rawget-minio-cores")
		b.ReportMetric(proxyRate, "proxy-MB/s")
		b.ReportMetric(proxyRate/getRate, "proxy/get")
		b.ReportMetric(proxyCores, "proxy-cores")
		b.ReportMetric(proxyMinIOCores, "proxy-minio-cores")
		b.ReportMetric(proxyProcCores, "proxy-proxy-cores")
		for name, r := range replays {
			b.ReportMetric(r.rate, "cold-"+name+"-MB/s")
			b.ReportMetric(r.rate/getRate, "cold-"+name+"/get")
			b.ReportMetric(r.rate/proxyRate, "cold-"+name+"/proxy")
			b.ReportMetric(r.cores, "cold-"+name+"-cores")
			b.ReportMetric(r.minio, "cold-"+name+"-minio-cores")
			b.ReportMetric(r.gateway, "cold-"+name+"-gateway-cores")
			b.ReportMetric(r.node, "cold-"+name+"-node-cores")
			b.ReportMetric(r.test, "cold-"+name+"-consumer-cores")
			b.ReportMetric(float64(r.ttfb.Microseconds())/1000, "cold-"+name+"-ttfb-ms")
		}
		b.ReportMetric(quantileMs(alone, 0.99), "produce-alone-p99-ms")
		b.ReportMetric(quantileMs(during, 0.99), "produce-replay-p99-ms")
		b.ReportMetric(quantileMs(during, 0.99)/quantileMs(alone, 0.99), "p99-ratio")
		b.ReportMetric(float64(looped)/took.Seconds()/1e6, "replay-during-MB/s")
		b.ReportMetric(quantileMs(floor, 0.99), "produce-proxy-p99-ms")
		b.ReportMetric(quantileMs(floor, 0.99)/quantileMs(alone, 0.99), "p99-ratio-proxy")
		b.ReportMetric(float64(proxyLooped)/proxyTook.Seconds()/1e6, "proxy-during-MB/s")
		cl.Close()
		cancel()
	}
}

// tierQuotaEnv, in MiB/s, gives BenchmarkTierProcs' gateway a remote
// fetch quota for its produce windows.
const tierQuotaEnv = "STRATA_BENCH_TIER_QUOTA"

// kgoReplay reads topic "history" from offset 0 to ends with a franz-go
// consumer through addr, and returns the bytes of values below the ends
// and when the first record came.
func kgoReplay(ctx context.Context, b *testing.B, addr string, ends map[int32]int64, partitionBytes int32) (int64, time.Duration) {
	start := time.Now()
	offsets := map[int32]kgo.Offset{}
	for p := range ends {
		offsets[p] = kgo.NewOffset().At(0)
	}
	rc, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"history": offsets}),
		kgo.FetchMaxPartitionBytes(partitionBytes), kgo.FetchMaxBytes(int32(len(ends))*partitionBytes))
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	var ttfb time.Duration
	var replayed int64
	for done := 0; done < len(ends); {
		fs := rc.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			b.Fatal(err)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			if ttfb == 0 {
				ttfb = time.Since(start)
			}
			if rec.Offset < ends[rec.Partition] {
				replayed += int64(len(rec.Value))
			}
			if rec.Offset+1 == ends[rec.Partition] {
				done++
			}
		})
	}
	return replayed, ttfb
}
