package node_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/meta"
	"github.com/strata-io/strata/testenv"
	"github.com/strata-io/strata/tier"
)

// BenchmarkTieredCompaction measures the compaction of uploaded
// segments: a tiered compacted topic gets STRATA_TIER_COMPACT_MB (default
// 256) MiB of 1 KiB random values over 10,000 keys, held back from
// cleaning (min.compaction.lag.ms) until all of it is in the bucket and
// only 16 MiB is left on local disk. Then the lag is lifted and the
// leader's remote cleaner compacts the manifest. Reported: the rate of
// log compacted (manifest bytes before the clean over its time), and as
// a peer in the same run, a plain sequential GET of the same objects;
// their ratio; the store requests per GB of log compacted; the space
// reclaimed. For a local directory ("dir") and MinIO ("minio", skipped
// without Docker or a minio binary).
//
//	go test -run '^$' -bench TieredCompaction -benchtime 1x ./node
func BenchmarkTieredCompaction(b *testing.B) {
	mb := int64(256)
	if s := os.Getenv("STRATA_TIER_COMPACT_MB"); s != "" {
		mb, _ = strconv.ParseInt(s, 10, 64)
	}
	b.Run("dir", func(b *testing.B) {
		store, err := tier.OpenDir(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		tieredCompaction(b, store, mb)
	})
	b.Run("minio", func(b *testing.B) { tieredCompaction(b, testenv.StartMinIO(b).Store("tier", "bench"), mb) })
}

func tieredCompaction(b *testing.B, store tier.Store, mb int64) {
	for range b.N {
		cs := &countingStore{Store: store}
		c := testenv.InProcess(b, 1, testenv.Options{Tier: cs, MaintainInterval: 100 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(5*time.Millisecond),
			kgo.ProducerBatchCompression(kgo.NoCompression()))
		if err != nil {
			b.Fatal(err)
		}
		adm := kadm.NewClient(cl)
		configs := map[string]*string{"cleanup.policy": kadm.StringPtr("compact"), "remote.storage.enable": kadm.StringPtr("true"),
			"segment.bytes": kadm.StringPtr(fmt.Sprint(16 << 20)), "local.retention.bytes": kadm.StringPtr(fmt.Sprint(16 << 20)),
			"segment.ms": kadm.StringPtr("1000"), "min.compaction.lag.ms": kadm.StringPtr("3600000")}
		if r, err := adm.CreateTopic(ctx, 1, 1, configs, "table"); err != nil || r.Err != nil {
			b.Fatal(err, r.Err)
		}
		value := randomValue()[:1024]
		for i := range mb << 10 {
			cl.Produce(ctx, &kgo.Record{Topic: "table", Key: fmt.Appendf(nil, "key-%05d", i%10_000), Value: value}, nil)
		}
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		end := mb << 10
		member := c.Nodes[1].Member
		var segs []meta.TierSegment
		testenv.WaitFor(ctx, b, 50*time.Millisecond, func() bool {
			v := member.Server().FSM().View()
			segs, err = v.TierSegments("table", 0)
			v.Close()
			return err == nil && len(segs) > 0 && segs[len(segs)-1].LastOffset+1 == end
		}, func() string { return "the log was never all uploaded" })
		var before int64
		for _, s := range segs {
			before += s.SizeBytes
		}
		// The peer: one sequential GET of every object the clean reads.
		b.ResetTimer()
		start := time.Now()
		for _, s := range segs {
			rc, err := store.Get(ctx, s.ObjectKey, 0, -1)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, rc); err != nil {
				b.Fatal(err)
			}
			rc.Close()
		}
		rawTook := time.Since(start)
		gets, puts, got := cs.gets.Load(), cs.puts.Load(), cs.got.Load()
		start = time.Now()
		if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "min.compaction.lag.ms", Value: kadm.StringPtr("0")}}, "table"); err != nil {
			b.Fatal(err)
		}
		var after int64
		testenv.WaitFor(ctx, b, 20*time.Millisecond, func() bool {
			v := member.Server().FSM().View()
			st, err := v.TierCleaner("table", 0)
			segs, _ = v.TierSegments("table", 0)
			v.Close()
			return err == nil && st.FirstDirty >= end
		}, func() string { return "the remote cleaner never reached the end of the manifest" })
		took := time.Since(start)
		b.StopTimer()
		for _, s := range segs {
			after += s.SizeBytes
		}
		gb := float64(before) / (1 << 30)
		rate := float64(before) / (1 << 20) / took.Seconds()
		raw := float64(before) / (1 << 20) / rawTook.Seconds()
		b.ReportMetric(rate, "compact-MB/s")
		b.ReportMetric(raw, "raw-get-MB/s")
		b.ReportMetric(rate/raw, "ratio")
		b.ReportMetric(float64(cs.gets.Load()-gets)/gb, "GET/GB")
		b.ReportMetric(float64(cs.puts.Load()-puts)/gb, "PUT/GB")
		b.ReportMetric(float64(cs.got.Load()-got)/float64(before), "read/log")
		b.ReportMetric(100*(1-float64(after)/float64(before)), "reclaimed-%")
		cl.Close()
		c.Close()
		cancel()
	}
}
