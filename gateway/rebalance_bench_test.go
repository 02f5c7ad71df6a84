package gateway_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
)

// BenchmarkRebalance measures how long a 12-partition group of three
// franz-go members takes to give a fourth member its share once it
// starts: the classic protocol with the eager range and the cooperative
// sticky balancers, and KIP-848 with the server's uniform assignor (at
// Kafka's 5 s heartbeat interval, and at 1 s). Each
// op is one join; the clock stops when every partition is held by
// exactly one member and the newcomer holds three.
//
//	go test -run '^$' -bench Rebalance -benchtime 3x ./gateway
func BenchmarkRebalance(b *testing.B) {
	kip848 := []kgo.Opt{kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.ServerSideBalancer()}
	for _, mode := range []struct {
		name      string
		opts      []kgo.Opt
		heartbeat time.Duration // group.consumer.heartbeat.interval.ms
	}{
		{"classic-eager", []kgo.Opt{kgo.Balancers(kgo.RangeBalancer())}, 0},
		{"classic-cooperative", []kgo.Opt{kgo.Balancers(kgo.CooperativeStickyBalancer())}, 0},
		{"kip848", kip848, 0},
		{"kip848-heartbeat-1s", kip848, time.Second},
	} {
		b.Run(mode.name, func(b *testing.B) {
			c := testenv.InProcess(b, 1, testenv.Options{GroupConsumerHeartbeat: mode.heartbeat})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			adm := kadm.NewClient(newClient(b, c.Addr()))
			var total time.Duration
			for i := range b.N {
				topic := fmt.Sprintf("rb-%s-%d", mode.name, i)
				if r, err := adm.CreateTopic(ctx, 12, 1, nil, topic); err != nil || r.Err != nil {
					b.Fatal(err, r.Err)
				}
				var mu sync.Mutex
				held := map[string]map[int32]bool{}
				start := func(name string) *kgo.Client {
					mu.Lock()
					held[name] = map[int32]bool{}
					mu.Unlock()
					opts := append([]kgo.Opt{kgo.ConsumerGroup(topic), kgo.ConsumeTopics(topic),
						kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
							mu.Lock()
							for _, p := range ps[topic] {
								held[name][p] = true
							}
							mu.Unlock()
						}),
						kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
							mu.Lock()
							for _, p := range ps[topic] {
								delete(held[name], p)
							}
							mu.Unlock()
						})}, mode.opts...)
					cl := newClient(b, c.Addr(), opts...)
					go func() {
						for !cl.PollFetches(ctx).IsClientClosed() && ctx.Err() == nil {
						}
					}()
					return cl
				}
				settled := func(newcomer string) bool {
					mu.Lock()
					defer mu.Unlock()
					n := 0
					for _, ps := range held {
						n += len(ps)
					}
					return n == 12 && (newcomer == "" || len(held[newcomer]) == 3)
				}
				var cls []*kgo.Client
				for j := range 3 {
					cls = append(cls, start(fmt.Sprintf("m%d", j)))
				}
				for !settled("") && ctx.Err() == nil {
					time.Sleep(5 * time.Millisecond)
				}
				t0 := time.Now()
				cls = append(cls, start("m3"))
				for !settled("m3") && ctx.Err() == nil {
					time.Sleep(5 * time.Millisecond)
				}
				total += time.Since(t0)
				for _, cl := range cls {
					cl.Close()
				}
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/join")
		})
	}
}
