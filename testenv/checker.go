package testenv

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Checker produces to a topic and remembers every acknowledged record
// (partition, offset, value), then verifies that each is readable exactly
// where it was acknowledged, in order: what fault tests promise producers.
type Checker struct {
	t     testing.TB
	topic string
	mu    sync.Mutex
	acked map[int32]map[int64][]byte
	seq   int
	stop  chan struct{}
	done  chan struct{}
	// cancel gives up on records still unacknowledged when Stop's grace
	// has passed: a client that retries forever would wait forever.
	ctx    context.Context
	cancel context.CancelFunc
}

// StartChecker produces records to topic through cl until Stop, keeping
// at most inflight unacknowledged, at most perSecond a second (0: as
// fast as it goes). cl should retry (as kgo does by default) and use
// acks=all for the promise to hold.
func StartChecker(t testing.TB, cl *kgo.Client, topic string, inflight, perSecond int) *Checker {
	c := &Checker{t: t, topic: topic, acked: map[int32]map[int64][]byte{}, stop: make(chan struct{}), done: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	sem := make(chan struct{}, inflight)
	var pace <-chan time.Time
	if perSecond > 0 {
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		pace = tick.C
		defer func() { go func() { <-c.done; tick.Stop() }() }()
	}
	go func() {
		defer close(c.done)
		var wg sync.WaitGroup
		defer wg.Wait()
		for {
			if pace != nil {
				select {
				case <-c.stop:
					return
				case <-pace:
				}
			}
			select {
			case <-c.stop:
				return
			case sem <- struct{}{}:
			}
			c.mu.Lock()
			c.seq++
			v := fmt.Appendf(nil, "record-%09d-%s", c.seq, bytes.Repeat([]byte{'x'}, 64))
			c.mu.Unlock()
			wg.Add(1)
			cl.Produce(c.ctx, &kgo.Record{Topic: topic, Value: v}, func(r *kgo.Record, err error) {
				defer wg.Done()
				defer func() { <-sem }()
				if err != nil {
					return // not acknowledged: no promise made
				}
				c.mu.Lock()
				defer c.mu.Unlock()
				m := c.acked[r.Partition]
				if m == nil {
					m = map[int64][]byte{}
					c.acked[r.Partition] = m
				}
				if old, dup := m[r.Offset]; dup && !bytes.Equal(old, r.Value) {
					c.t.Errorf("offset %d of partition %d acknowledged twice, for two records", r.Offset, r.Partition)
				}
				m[r.Offset] = r.Value
			})
		}
	}()
	return c
}

// Acked is how many records were acknowledged so far.
func (c *Checker) Acked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.acked {
		n += len(m)
	}
	return n
}

// WaitAcked waits until n more records than now are acknowledged.
func (c *Checker) WaitAcked(ctx context.Context, n int, what string) {
	c.t.Helper()
	want := c.Acked() + n
	for c.Acked() < want {
		if ctx.Err() != nil {
			c.t.Fatalf("%s: %d of %d records acknowledged", what, c.Acked(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends producing and waits up to 30 s for the records in flight;
// those still unacknowledged then are given up (no promise was made).
func (c *Checker) Stop() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.cancel()
		<-c.done
	}
	c.cancel()
}

// Verify reads every partition from its start through seeds and checks
// each acknowledged record is at its offset, offsets without a gap.
func (c *Checker) Verify(ctx context.Context, seeds ...string) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, m := range c.acked {
		var last int64 = -1
		for o := range m {
			last = max(last, o)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			c.topic: {p: kgo.NewOffset().AtStart()}}))
		if err != nil {
			c.t.Fatal(err)
		}
		found := 0
		for next := int64(0); next <= last; {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				cl.Close()
				c.t.Fatalf("partition %d: read stopped at offset %d of %d", p, next, last)
			}
			fs.EachError(func(_ string, _ int32, err error) { c.t.Logf("partition %d: fetch: %v", p, err) })
			for _, r := range fs.Records() {
				if r.Offset != next {
					cl.Close()
					c.t.Fatalf("partition %d: offset %d after %d: a gap", p, r.Offset, next-1)
				}
				if v, ok := m[r.Offset]; ok {
					if !bytes.Equal(v, r.Value) {
						cl.Close()
						c.t.Fatalf("partition %d offset %d: holds %.20q, acknowledged %.20q", p, r.Offset, r.Value, v)
					}
					found++
				}
				next++
			}
		}
		cl.Close()
		if found != len(m) {
			c.t.Fatalf("partition %d: %d of %d acknowledged records found", p, found, len(m))
		}
	}
}
