package gateway_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
)

// BenchmarkShareConsume measures a queue's throughput: share groups of 1,
// 4 and 16 members, each acknowledging every record it gets (one
// ShareAcknowledge per poll, durable before it is answered), against a
// classic group of 4 members (one per partition) committing its offsets,
// on the same 4-partition topic of 100-byte records, in the same run.
// Each op consumes the whole topic; reported: records/s, and for the
// share groups each acknowledgement's round trip (p50, p99), as the
// client waits for it.
//
//	go test -run '^$' -bench ShareConsume -benchtime 2x ./gateway
func BenchmarkShareConsume(b *testing.B) {
	const records = 200_000
	c := testenv.InProcess(b, 1, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cl := newClient(b, c.Addr(), kgo.ProducerLinger(5*time.Millisecond))
	adm := kadm.NewClient(cl)
	value := make([]byte, 100)
	round := 0
	for _, mode := range []struct {
		name    string
		members int
		share   bool
	}{
		{"classic-4", 4, false},
		{"share-1", 1, true},
		{"share-4", 4, true},
		{"share-16", 16, true},
	} {
		b.Run(mode.name, func(b *testing.B) {
			var elapsed time.Duration
			var acks []time.Duration
			for range b.N {
				round++
				topic := fmt.Sprintf("sc-%d", round)
				if r, err := adm.CreateTopic(ctx, 4, 1, nil, topic); err != nil || r.Err != nil {
					b.Fatal(err, r.Err)
				}
				var rs []*kgo.Record
				for i := range records {
					rs = append(rs, &kgo.Record{Topic: topic, Partition: int32(i % 4), Value: value})
				}
				if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
					b.Fatal(err)
				}
				group := topic + "-g"
				if mode.share {
					setGroupConfigs(b, ctx, cl, group, "share.auto.offset.reset", "earliest")
				}
				var got atomic.Int64
				var mu sync.Mutex
				cctx, stop := context.WithCancel(ctx)
				var wg sync.WaitGroup
				start := time.Now()
				for range mode.members {
					wg.Add(1)
					go func() {
						defer wg.Done()
						opts := []kgo.Opt{kgo.ConsumeTopics(topic)}
						if mode.share {
							opts = append(opts, kgo.ShareGroup(group))
						} else {
							opts = append(opts, kgo.ConsumerGroup(group), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
						}
						cons := newClient(b, c.Addr(), opts...)
						defer cons.Close()
						for cctx.Err() == nil {
							fs := cons.PollFetches(cctx)
							n := 0
							fs.EachRecord(func(r *kgo.Record) {
								n++
								if mode.share {
									r.Ack(kgo.AckAccept)
								}
							})
							if n == 0 {
								continue
							}
							if mode.share {
								t0 := time.Now()
								if err := cons.FlushAcks(cctx); err == nil {
									mu.Lock()
									acks = append(acks, time.Since(t0))
									mu.Unlock()
								}
							}
							if got.Add(int64(n)) >= records {
								stop()
							}
						}
					}()
				}
				<-cctx.Done()
				elapsed += time.Since(start)
				stop()
				wg.Wait()
				if got.Load() < records {
					b.Fatalf("consumed %d of %d records", got.Load(), records)
				}
			}
			b.ReportMetric(float64(records*b.N)/elapsed.Seconds(), "records/s")
			if len(acks) > 0 {
				slices.Sort(acks)
				b.ReportMetric(float64(acks[len(acks)/2].Microseconds())/1000, "ack-p50-ms")
				b.ReportMetric(float64(acks[len(acks)*99/100].Microseconds())/1000, "ack-p99-ms")
			}
		})
	}
}
