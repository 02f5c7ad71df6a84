package node_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
)

// BenchmarkTierProcs measures the read path of tiered data with a node
// and a gateway as separate processes (children of the test), MinIO as a
// process of its own and NATS in the test process, as a deployment runs
// them: 256 MiB of uploaded history replayed cold from offset 0 through
// the gateway, which reads the bucket itself, against minio-go GETs of
// the same objects in the same run; then produce p99 on another topic
// (2,000 records/s, acks=all) alone and while the history replays
// through the same gateway. The consumers and the producer are the test
// process.
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
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerBatchCompression(kgo.NoCompression()),
			kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(5*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		adm := kadm.NewClient(cl)
		for topic, cfg := range map[string]map[string]*string{
			"history": {"remote.storage.enable": kadm.StringPtr("true"), "segment.bytes": kadm.StringPtr(fmt.Sprint(32 << 20)),
				"local.retention.bytes": kadm.StringPtr("1")},
			"live": nil,
		} {
			if r, err := adm.CreateTopic(ctx, 1, 1, cfg, topic); err != nil || r.Err != nil {
				b.Fatal(err, r.Err)
			}
		}
		value := make([]byte, 16<<10)
		for i := range value {
			value[i] = byte(rand.Uint32())
		}
		for range (256 << 20) / len(value) {
			cl.Produce(ctx, &kgo.Record{Topic: "history", Value: value}, nil)
		}
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		end, _ := listOffset(ctx, b, cl, "history", -1)
		for {
			if local, _ := listOffset(ctx, b, cl, "history", -4); local >= end-int64((32<<20)/len(value)) {
				break
			}
			if ctx.Err() != nil {
				b.Fatal("history never left the disk")
			}
			time.Sleep(50 * time.Millisecond)
		}
		remoteEnd, _ := listOffset(ctx, b, cl, "history", -4) // the uploaded part ends here

		// Raw GETs of the uploaded .log objects, one after another.
		raw, err := minio.New(m.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.Secret, "")})
		if err != nil {
			b.Fatal(err)
		}
		getCPU := testenv.MachineCPU()
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
		getRate, getCores := mb(got, time.Since(getStart)), getCPU.Cores()

		// One cold replay of the uploaded part through the gateway.
		b.ResetTimer()
		rc, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			"history": {0: kgo.NewOffset().At(0)}}), kgo.FetchMaxPartitionBytes(8<<20), kgo.FetchMaxBytes(64<<20))
		if err != nil {
			b.Fatal(err)
		}
		replayCPU := testenv.MachineCPU()
		replayStart := time.Now()
		var ttfb time.Duration
		var replayed int64
		for next := int64(0); next < remoteEnd; {
			fs := rc.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				b.Fatal(err)
			}
			fs.EachRecord(func(r *kgo.Record) {
				if ttfb == 0 {
					ttfb = time.Since(replayStart)
				}
				replayed += int64(len(r.Value))
				next = r.Offset + 1
			})
		}
		replayRate, replayCores := mb(replayed, time.Since(replayStart)), replayCPU.Cores()
		rc.Close()

		alone, _ := produceWindow(ctx, b, addr, nil)
		var during []time.Duration
		var looped int64
		var took time.Duration
		during, _ = produceWindow(ctx, b, addr, func(stop <-chan struct{}) {
			looped, took = replayWhile(ctx, b, addr, end, stop)
		})
		b.StopTimer()
		b.ReportMetric(getRate, "rawget-MB/s")
		b.ReportMetric(getCores, "rawget-cores")
		b.ReportMetric(replayRate, "cold-replay-MB/s")
		b.ReportMetric(replayRate/getRate, "cold-replay/get")
		b.ReportMetric(replayCores, "cold-replay-cores")
		b.ReportMetric(float64(ttfb.Microseconds())/1000, "cold-ttfb-ms")
		b.ReportMetric(quantileMs(alone, 0.99), "produce-alone-p99-ms")
		b.ReportMetric(quantileMs(during, 0.99), "produce-replay-p99-ms")
		b.ReportMetric(quantileMs(during, 0.99)/quantileMs(alone, 0.99), "p99-ratio")
		b.ReportMetric(float64(looped)/took.Seconds()/1e6, "replay-during-MB/s")
		cl.Close()
		cancel()
	}
}
