package testenv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TableChecker writes keyed updates and tombstones to a compacted topic
// and checks its latest-value view: what compaction promises. Each write
// carries its key's next version (the value "v<version>", or a tombstone
// whose version the checker remembers). After Stop, Verify reads the
// whole topic from offset 0 and requires, for every key, that the view
// holds a write at least as new as the last one acknowledged: a value of
// that or a later version, or no value when such a write was a
// tombstone. Nothing acknowledged may be undone by the cleaner, on disk
// or in the bucket, whatever faults hit it.
type TableChecker struct {
	t     testing.TB
	topic string
	cl    *kgo.Client
	mu    sync.Mutex
	// Per key: the versions written (true: a tombstone) and the last
	// acknowledged.
	writes  map[string]map[int]bool
	acked   map[string]int
	next    map[string]int
	written int
	ackedN  int
	stop    chan struct{}
	done    chan struct{}
}

// StartTableChecker writes perSecond updates a second over keys keys
// with cl (acks=all, idempotent: one write per key in flight at a time,
// so acknowledged versions of a key are in order).
func StartTableChecker(t testing.TB, cl *kgo.Client, topic string, keys, perSecond int, seed uint64) *TableChecker {
	c := &TableChecker{t: t, topic: topic, cl: cl, writes: map[string]map[int]bool{}, acked: map[string]int{}, next: map[string]int{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go c.run(keys, perSecond, rand.New(rand.NewPCG(seed, 21)))
	return c
}

func (c *TableChecker) run(keys, perSecond int, rng *rand.Rand) {
	defer close(c.done)
	inflight := map[string]bool{}
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(time.Second / time.Duration(perSecond))
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		key := fmt.Sprintf("key-%03d", rng.IntN(keys))
		c.mu.Lock()
		if inflight[key] {
			c.mu.Unlock()
			continue
		}
		inflight[key] = true
		v := c.next[key] + 1
		c.next[key] = v
		tombstone := rng.IntN(10) == 0
		if c.writes[key] == nil {
			c.writes[key] = map[int]bool{}
		}
		c.writes[key][v] = tombstone
		c.written++
		c.mu.Unlock()
		r := &kgo.Record{Topic: c.topic, Key: []byte(key), Headers: []kgo.RecordHeader{{Key: "v", Value: []byte(strconv.Itoa(v))}}}
		if !tombstone {
			r.Value = fmt.Appendf(nil, "v%d", v)
		}
		wg.Add(1)
		c.cl.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
			defer wg.Done()
			c.mu.Lock()
			defer c.mu.Unlock()
			inflight[key] = false
			if err == nil {
				c.acked[key] = max(c.acked[key], v)
				c.ackedN++
			}
		})
	}
}

// Stop stops writing and waits for the writes in flight.
func (c *TableChecker) Stop() {
	close(c.stop)
	<-c.done
}

// Counts are the writes sent and acknowledged.
func (c *TableChecker) Counts() (written, acked int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.written, c.ackedN
}

// Verify reads the topic from offset 0 (every partition, to its end)
// and checks the view; it returns how many records it read.
func (c *TableChecker) Verify(ctx context.Context, seeds ...string) int {
	c.t.Helper()
	adm := kadm.NewClient(c.cl)
	var ends kadm.ListedOffsets
	for {
		var err error
		if ends, err = adm.ListEndOffsets(ctx, c.topic); err == nil && ends.Error() == nil {
			break
		}
		if ctx.Err() != nil {
			c.t.Fatalf("table: end offsets of %s: %v", c.topic, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(c.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RetryTimeout(time.Minute))
	if err != nil {
		c.t.Fatal(err)
	}
	defer cons.Close()
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	type seen struct {
		version   int
		tombstone bool
	}
	view := map[string]seen{}
	read := 0
	last := map[int32]int64{}
	// Until every partition's end is read, or nothing comes for a while:
	// a log may end in a gap (the cleaner keeps a segment's last batch,
	// but emptied), and a lost tail shows in the view.
	idleSince := time.Now()
	for len(left) > 0 && time.Since(idleSince) < 10*time.Second {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cons.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			c.t.Fatalf("table: reading %s back: %v; partitions left %v", c.topic, ctx.Err(), left)
		}
		fs.EachError(func(topic string, p int32, err error) {
			if err != context.DeadlineExceeded {
				c.t.Logf("table: fetch %s-%d: %v (retried)", topic, p, err)
			}
		})
		if fs.NumRecords() > 0 {
			idleSince = time.Now()
		}
		fs.EachRecord(func(r *kgo.Record) {
			read++
			if o, ok := last[r.Partition]; ok && r.Offset <= o {
				c.t.Errorf("table: %s-%d: offset %d after %d", r.Topic, r.Partition, r.Offset, o)
			}
			last[r.Partition] = r.Offset
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
			v := -1
			for _, h := range r.Headers {
				if h.Key == "v" {
					v, _ = strconv.Atoi(string(h.Value))
				}
			}
			key := string(r.Key)
			c.mu.Lock()
			tombstone, ok := c.writes[key][v]
			c.mu.Unlock()
			if !ok || tombstone != (r.Value == nil) || (r.Value != nil && string(r.Value) != "v"+strconv.Itoa(v)) {
				c.t.Errorf("table: %s-%d offset %d: key %s version %d value %q was never written", r.Topic, r.Partition, r.Offset, key, v, r.Value)
				return
			}
			if old, ok := view[key]; ok && old.version > v {
				c.t.Errorf("table: key %s: version %d after %d", key, v, old.version)
			}
			view[key] = seen{v, r.Value == nil}
		})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var bad []string
	for key, acked := range c.acked {
		got, ok := view[key]
		switch {
		case ok && !got.tombstone && got.version >= acked:
		case ok && got.tombstone && got.version >= acked:
		case !ok && c.hasTombstoneFrom(key, acked): // its tombstone, cleaned away
		default:
			bad = append(bad, fmt.Sprintf("%s: acknowledged version %d (tombstone %v), read %+v (present %v)", key, acked, c.writes[key][acked], got, ok))
		}
	}
	if len(bad) > 0 {
		c.t.Errorf("table: %d keys lost acknowledged writes:\n  %s", len(bad), strings.Join(bad, "\n  "))
	}
	return read
}

// hasTombstoneFrom reports whether key was deleted by a write of version
// from or later (one acknowledged, or one that may have landed).
func (c *TableChecker) hasTombstoneFrom(key string, from int) bool {
	for v, tombstone := range c.writes[key] {
		if tombstone && v >= from {
			return true
		}
	}
	return false
}
