package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Checker produces to a topic and remembers every acknowledged record
// (partition, offset, value), then verifies that each is readable exactly
// where it was acknowledged, in order: what fault tests promise producers.
type Checker struct {
	// OnStall, when set, runs before WaitAcked fails for want of
	// progress (to capture the processes' state).
	OnStall func()

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
	// idempotent: the producer is idempotent, so Verify also fails on an
	// acknowledged record written twice.
	idempotent bool
	// deleted and deleting bound each partition's log start after
	// DeleteRecords: at least deleted[p] (acknowledged deletions), at
	// most deleting[p] (every deletion asked for, some perhaps applied
	// without an answer).
	deleted, deleting map[int32]int64
	// failed counts each partition's records given up with an error,
	// lastErr keeps the latest, lastAck when one was last acknowledged:
	// what Report says of a partition that stalls.
	failed  map[int32]int
	lastErr map[int32]error
	lastAck map[int32]time.Time
	// lastFail: when a record of the partition last failed.
	lastFail map[int32]time.Time
	started  time.Time
}

// Deleting records that DeleteRecords was asked to delete partition p's
// records before offset; Deleted that the cluster acknowledged it. Verify
// then expects p's log to start in between, and no acknowledged record
// from there on to be missing.
func (c *Checker) Deleting(p int32, before int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deleting[p] = max(c.deleting[p], before)
}

func (c *Checker) deletingAt(p int32) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deleting[p]
}

func (c *Checker) Deleted(p int32, before int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deleted[p] = max(c.deleted[p], before)
}

// ExpectIdempotent makes Verify fail on an acknowledged record found at
// two offsets: what an idempotent producer's retries must never cause.
func (c *Checker) ExpectIdempotent() { c.idempotent = true }

// StartChecker produces records to topic through cl until Stop, keeping
// at most inflight unacknowledged, at most perSecond a second (0: as
// fast as it goes). cl should retry (as kgo does by default) and use
// acks=all for the promise to hold.
func StartChecker(t testing.TB, cl *kgo.Client, topic string, inflight, perSecond int) *Checker {
	c := &Checker{t: t, topic: topic, acked: map[int32]map[int64][]byte{}, stop: make(chan struct{}), done: make(chan struct{}),
		deleted: map[int32]int64{}, deleting: map[int32]int64{}, failed: map[int32]int{}, lastErr: map[int32]error{}, lastAck: map[int32]time.Time{}, lastFail: map[int32]time.Time{}, started: time.Now()}
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
				c.mu.Lock()
				defer c.mu.Unlock()
				if err != nil {
					c.failed[r.Partition]++
					c.lastErr[r.Partition] = err
					c.lastFail[r.Partition] = time.Now()
					return // not acknowledged: no promise made
				}
				c.lastAck[r.Partition] = time.Now()
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

// Report says, per partition, how many records were acknowledged, when
// the last one was, and how many failed with which last error: where a
// stalled workload is stuck.
func (c *Checker) Report() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []int32
	for p := range c.acked {
		parts = append(parts, p)
	}
	for p := range c.failed {
		if c.acked[p] == nil {
			parts = append(parts, p)
		}
	}
	slices.Sort(parts)
	var b strings.Builder
	for _, p := range parts {
		fmt.Fprintf(&b, "\n  partition %d: %d acknowledged", p, len(c.acked[p]))
		if at, ok := c.lastAck[p]; ok {
			fmt.Fprintf(&b, ", the last %v ago", time.Since(at).Round(time.Millisecond))
		}
		if n := c.failed[p]; n > 0 {
			fmt.Fprintf(&b, "; %d failed, the last with: %v", n, c.lastErr[p])
		}
	}
	return b.String()
}

// stuck is a partition whose records fail while it has acknowledged none
// for over d (the producer's retries gave up on it: faults last seconds),
// or -1.
func (c *Checker) stuck(d time.Duration) int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, failedAt := range c.lastFail {
		ackAt, ok := c.lastAck[p]
		if !ok {
			ackAt = c.started
		}
		if failedAt.After(ackAt) && time.Since(ackAt) > d {
			return p
		}
	}
	return -1
}

// WaitAcked waits until n more records than now are acknowledged.
// Two minutes with no acknowledgement at all fail it, and so does a
// partition that acknowledged nothing for two minutes while its records
// failed: faults last seconds, so the cluster is stuck.
func (c *Checker) WaitAcked(ctx context.Context, n int, what string) {
	c.t.Helper()
	want := c.Acked() + n
	last, progress := c.Acked(), time.Now()
	for acked := last; acked < want; acked = c.Acked() {
		if acked > last {
			last, progress = acked, time.Now()
		}
		stuck := c.stuck(2 * time.Minute)
		if ctx.Err() != nil || time.Since(progress) > 2*time.Minute || stuck >= 0 {
			if c.OnStall != nil {
				c.OnStall()
			}
			if stuck >= 0 {
				c.t.Fatalf("%s: partition %d acknowledged nothing for over %v and failed records meanwhile:%s", what, stuck, 2*time.Minute, c.Report())
			}
			c.t.Fatalf("%s: %d of %d records acknowledged, none for %v:%s", what, acked, want, time.Since(progress).Round(time.Second), c.Report())
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
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			// A producer that ignores its cancelled context: report
			// the test's own failure rather than time out the package.
			c.t.Errorf("checker: the producer did not stop within a minute")
		}
	}
	c.cancel()
}

// Verify reads every partition from its start through seeds and checks
// each acknowledged record is at its offset, offsets without a gap. A
// partition starts at 0 or, after DeleteRecords (Deleting, Deleted),
// where a deletion put it.
func (c *Checker) Verify(ctx context.Context, seeds ...string) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, m := range c.acked {
		if err := c.verify(ctx, p, m, seeds); err != nil {
			c.t.Fatalf("partition %d: %v", p, err)
		}
	}
}

// verify reads partition p and checks it holds m, its acknowledged
// records.
func (c *Checker) verify(ctx context.Context, p int32, m map[int64][]byte, seeds []string) error {
	var last int64 = -1
	for o := range m {
		last = max(last, o)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		c.topic: {p: kgo.NewOffset().AtStart()}}))
	if err != nil {
		return err
	}
	defer cl.Close()
	lo, hi := c.deleted[p], c.deleting[p]
	found, start := 0, int64(-1)
	seen := map[string]int64{} // acknowledged value -> the offset it was read at
	for next := int64(-1); next <= last; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("read stopped at offset %d of %d", next, last)
		}
		fs.EachError(func(_ string, _ int32, err error) { c.t.Logf("partition %d: fetch: %v", p, err) })
		for _, r := range fs.Records() {
			if next < 0 { // the log's start
				if r.Offset < lo || r.Offset > hi {
					return fmt.Errorf("the log starts at offset %d; deletions acknowledged up to %d, asked up to %d", r.Offset, lo, hi)
				}
				next, start = r.Offset, r.Offset
			}
			if r.Offset != next {
				return fmt.Errorf("offset %d after %d: a gap", r.Offset, next-1)
			}
			if v, ok := m[r.Offset]; ok {
				if !bytes.Equal(v, r.Value) {
					return fmt.Errorf("offset %d: holds %.20q, acknowledged %.20q", r.Offset, r.Value, v)
				}
				found++
			}
			if at, dup := seen[string(r.Value)]; dup && c.idempotent {
				return fmt.Errorf("%.20q at offsets %d and %d: an idempotent producer's record written twice", r.Value, at, r.Offset)
			}
			seen[string(r.Value)] = r.Offset
			next++
		}
	}
	want := 0
	for o := range m {
		if o >= start {
			want++
		}
	}
	if found != want {
		return fmt.Errorf("%d of %d acknowledged records from offset %d found", found, want, start)
	}
	return nil
}

// GroupChecker consumes a topic in a consumer group while faults happen,
// committing what it read, and checks the group's progress: within a
// partition, records arrive in offset order with no offset skipped but
// those DeleteRecords removed, and a partition assigned again resumes no
// earlier than the last commit acknowledged before it was assigned (the
// group has one member). Records read again after that are fine: the
// client may hand over, and the checker commit, records it fetched before
// the group was joined again, after the offsets it resumes from were
// read.
type GroupChecker struct {
	t       testing.TB
	group   string
	cl      *kgo.Client
	mu      sync.Mutex
	next    map[int32]int64 // the offset after the last one read
	commit  map[int32]int64 // the highest offset committed
	last    map[int32]int64 // the offset of the last commit acknowledged
	floor   map[int32]int64 // last, when the partition was last assigned
	trimmed *Checker        // what DeleteRecords removed, when set
	errs    []string
	cancel  context.CancelFunc
	done    chan struct{}
}

// StartGroupChecker joins group on topic through seeds and consumes
// until Stop.
func StartGroupChecker(t testing.TB, topic, group string, seeds ...string) *GroupChecker {
	g := &GroupChecker{t: t, group: group, next: map[int32]int64{}, commit: map[int32]int64{}, last: map[int32]int64{},
		floor: map[int32]int64{}, done: make(chan struct{})}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.WithLogger(resetLogger{t}), kgo.OnPartitionsAssigned(g.assigned),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMinAge(250*time.Millisecond), kgo.MetadataMaxAge(time.Second), // partitions added meanwhile are consumed too
		kgo.RequestTimeoutOverhead(5*time.Second), kgo.RetryTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	g.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go g.run(ctx)
	return g
}

// assigned notes, for each partition assigned, the last commit
// acknowledged (not the highest: after going back, the consumer commits
// lower offsets again): the client reads the offsets to resume from after
// this.
func (g *GroupChecker) assigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, ps := range assigned {
		for _, p := range ps {
			g.floor[p] = g.last[p]
		}
	}
}

// TrimmedBy lets records that c's DeleteRecords removed be skipped.
func (g *GroupChecker) TrimmedBy(c *Checker) {
	g.mu.Lock()
	g.trimmed = c
	g.mu.Unlock()
}

// resetLogger passes on what the group consumer's client says about
// moving its position (offset resets, truncation, data loss): what
// explains a consumer going back or skipping.
type resetLogger struct{ t testing.TB }

func (l resetLogger) Level() kgo.LogLevel { return kgo.LogLevelInfo }

func (l resetLogger) Log(level kgo.LogLevel, msg string, kv ...any) {
	m := strings.ToLower(msg)
	if strings.Contains(m, "out_of_range") || strings.Contains(m, "reset") || strings.Contains(m, "truncat") || strings.Contains(m, "lost") {
		l.t.Logf("%s group consumer client: %s %v", time.Now().Format("15:04:05.000"), msg, kv)
	}
}

func (g *GroupChecker) fail(format string, args ...any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.errs) < 20 {
		g.errs = append(g.errs, fmt.Sprintf(format, args...))
	}
}

func (g *GroupChecker) run(ctx context.Context) {
	defer close(g.done)
	// pending is, per partition, the last record read whose commit has
	// not gone through: it is committed again until it does, even once
	// no more records come (a commit that failed during a fault, after
	// the producer stopped, would otherwise never land).
	pending := map[int32]*kgo.Record{}
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := g.cl.PollFetches(pctx)
		cancel()
		recs := fs.Records()
		fs.EachError(func(_ string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) { // a poll with nothing new
				g.t.Logf("group consumer, partition %d: %v", p, err)
			}
		})
		g.mu.Lock()
		for _, r := range recs {
			next, ok := g.next[r.Partition]
			now := time.Now().Format("15:04:05.000")
			switch {
			case ok && r.Offset > next && g.trimmed != nil && r.Offset <= g.trimmed.deletingAt(r.Partition):
				g.t.Logf("%s group consumer, partition %d: from %d on to offset %d, past records DeleteRecords removed",
					now, r.Partition, next-1, r.Offset)
			case ok && r.Offset > next:
				g.errs = append(g.errs, fmt.Sprintf("%s partition %d: read offset %d (leader epoch %d) after %d: offsets skipped (committed %d)",
					now, r.Partition, r.Offset, r.LeaderEpoch, next-1, g.commit[r.Partition]))
			case ok && r.Offset < next && r.Offset < g.floor[r.Partition]:
				// The group's only member resumes where it last
				// committed: it went back further because the client
				// reset its position (an unknown leader epoch, an offset
				// out of range), or a commit was lost.
				g.errs = append(g.errs, fmt.Sprintf("%s partition %d: back from %d to offset %d (leader epoch %d), below %d, committed before the partition was assigned",
					now, r.Partition, next, r.Offset, r.LeaderEpoch, g.floor[r.Partition]))
			case ok && r.Offset < next:
				// Read again after a rebalance or failover: allowed, and
				// logged.
				g.t.Logf("%s group consumer, partition %d: back from %d to offset %d (leader epoch %d; committed %d, %d when assigned)",
					now, r.Partition, next, r.Offset, r.LeaderEpoch, g.commit[r.Partition], g.floor[r.Partition])
			}
			g.next[r.Partition] = r.Offset + 1
			pending[r.Partition] = r
		}
		g.mu.Unlock()
		if len(pending) == 0 {
			continue
		}
		commit := make([]*kgo.Record, 0, len(pending))
		for _, r := range pending {
			commit = append(commit, r)
		}
		if err := g.cl.CommitRecords(ctx, commit...); err != nil {
			continue // the group may be rebalancing: try again
		}
		g.mu.Lock()
		for _, r := range commit {
			if c := g.commit[r.Partition]; r.Offset+1 > c {
				g.commit[r.Partition] = r.Offset + 1
			}
			g.last[r.Partition] = r.Offset + 1
			if pending[r.Partition] == r {
				delete(pending, r.Partition)
			}
		}
		g.mu.Unlock()
	}
}

// Committed is the group's committed offset of each partition: the last
// commit the checker made and saw acknowledged.
func (g *GroupChecker) Committed() map[int32]int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[int32]int64{}
	for p, c := range g.last {
		out[p] = c
	}
	return out
}

// WaitCaughtUp waits until the group has committed ends (the end offset
// of each partition).
func (g *GroupChecker) WaitCaughtUp(ctx context.Context, ends map[int32]int64) {
	g.t.Helper()
	for {
		done := true
		committed := g.Committed()
		for p, end := range ends {
			done = done && committed[p] >= end
		}
		if done {
			return
		}
		if ctx.Err() != nil {
			g.t.Fatalf("group committed %v, partitions end at %v", committed, ends)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// VerifyCommitted checks, through seeds, that the cluster holds every
// commit the group had acknowledged: none lost, none moved back.
func (g *GroupChecker) VerifyCommitted(ctx context.Context, seeds ...string) {
	g.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		g.t.Fatal(err)
	}
	defer cl.Close()
	// Right after healing, a gateway just started may not be in every
	// other gateway's list yet: one can name it coordinator while the
	// metadata from another lacks it. Ask again for a while.
	var offs kadm.OffsetResponses
	for deadline := time.Now().Add(30 * time.Second); ; {
		if offs, err = kadm.NewClient(cl).FetchOffsets(ctx, g.group); err == nil || !time.Now().Before(deadline) || ctx.Err() != nil {
			break
		}
		g.t.Logf("fetch the group's offsets: %v (asking again)", err)
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		g.t.Fatalf("fetch the group's offsets: %v", err)
	}
	for p, want := range g.Committed() {
		for _, o := range offs {
			for _, po := range o {
				if po.Partition == p && po.At != want {
					g.t.Errorf("partition %d: the cluster has offset %d committed, the group committed %d last", p, po.At, want)
				}
			}
		}
	}
}

// Stop leaves the group and reports what the checks found.
func (g *GroupChecker) Stop() {
	g.cancel()
	<-g.done
	g.cl.Close()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, e := range g.errs {
		g.t.Error(e)
	}
}

// Ends is each partition's next offset as the checker's producer saw it
// (one past the highest acknowledged offset).
func (c *Checker) Ends() map[int32]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[int32]int64{}
	for p, m := range c.acked {
		for o := range m {
			out[p] = max(out[p], o+1)
		}
	}
	return out
}

// Seed is a randomized test's seed: STRATA_SEED when set (to replay a
// failure), else the clock. It is logged either way.
func Seed(t testing.TB) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("STRATA_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("STRATA_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (STRATA_SEED=%d replays it)", seed, seed)
	return seed
}
