package node_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
)

// BenchmarkCleanerIsolation measures what the log cleaner costs a
// producer on another partition of the same node: produce latency on
// "live" at 2,000 records/s (acks=all, one 100-byte record at a time)
// for 5 s with nothing else running, then for as long as the cleaner
// compacts "table" (STRATA_CLEAN_ISOLATION_MB, default 1024 MiB
// of 1 KiB values over 10,000 keys, held back by min.compaction.lag.ms
// until the window starts): "plain", random values sent uncompressed
// (the log as big as written), and "snappy", franz-go's default codec on
// compressible values (a smaller log, but every batch the cleaner
// rewrites is decompressed and compressed again). Reported per run: each
// window's p99, their ratio, and how long the clean took.
// STRATA_CLEAN_IO_MB_PER_SECOND paces the cleaner's reads, as
// --log-cleaner-io-max-bytes-per-second does.
//
//	go test -run '^$' -bench CleanerIsolation -benchtime 1x ./node
func BenchmarkCleanerIsolation(b *testing.B) {
	mb := int64(1024)
	if s := os.Getenv("STRATA_CLEAN_ISOLATION_MB"); s != "" {
		mb, _ = strconv.ParseInt(s, 10, 64)
	}
	rate, _ := strconv.ParseFloat(os.Getenv("STRATA_CLEAN_IO_MB_PER_SECOND"), 64)
	b.Run("plain", func(b *testing.B) { cleanerIsolation(b, mb, false, rate*(1<<20)) })
	b.Run("snappy", func(b *testing.B) { cleanerIsolation(b, mb, true, rate*(1<<20)) })
}

func cleanerIsolation(b *testing.B, mb int64, snappy bool, ioRate float64) {
	for range b.N {
		c := testenv.InProcess(b, 1, testenv.Options{MaintainInterval: 100 * time.Millisecond, CleanerIOBytesPerSecond: ioRate})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		codec := kgo.NoCompression()
		value := randomValue()[:1024] // nothing to compress: the log is as big as written
		if snappy {
			codec, value = kgo.SnappyCompression(), make([]byte, 1024)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(5*time.Millisecond),
			kgo.ProducerBatchCompression(codec))
		if err != nil {
			b.Fatal(err)
		}
		adm := kadm.NewClient(cl)
		table := map[string]*string{"cleanup.policy": kadm.StringPtr("compact"), "segment.bytes": kadm.StringPtr(fmt.Sprint(64 << 20)),
			"min.compaction.lag.ms": kadm.StringPtr("3600000")}
		for topic, configs := range map[string]map[string]*string{"table": table, "live": nil} {
			if r, err := adm.CreateTopic(ctx, 1, 1, configs, topic); err != nil || r.Err != nil {
				b.Fatal(err, r.Err)
			}
		}
		for i := range mb << 10 {
			cl.Produce(ctx, &kgo.Record{Topic: "table", Key: fmt.Appendf(nil, "key-%05d", i%10_000), Value: value}, nil)
		}
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		checkpoint := filepath.Join(c.DataDir(1), "partitions", "table-0", "cleaner-offset-checkpoint")
		b.ResetTimer()
		alone, _ := produceWindow(ctx, b, c.Addr(), nil)
		var took time.Duration
		cleaned := make(chan struct{})
		// The window lasts as long as the clean.
		during, _ := produceUntil(ctx, b, c.Addr(), func(stop <-chan struct{}) {
			defer close(cleaned)
			start := time.Now()
			if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "min.compaction.lag.ms", Value: kadm.StringPtr("0")}}, "table"); err != nil {
				b.Error(err)
				return
			}
			for ctx.Err() == nil {
				if _, err := os.Stat(checkpoint); err == nil {
					took = time.Since(start)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}, cleaned)
		b.StopTimer()
		if took == 0 {
			b.Fatal("the cleaner did not finish")
		}
		b.ReportMetric(quantileMs(alone, 0.99), "alone-p99-ms")
		b.ReportMetric(quantileMs(during, 0.99), "cleaning-p99-ms")
		b.ReportMetric(quantileMs(during, 0.99)/quantileMs(alone, 0.99), "p99-ratio")
		b.ReportMetric(took.Seconds(), "clean-s")
		cl.Close()
		cancel()
	}
}
