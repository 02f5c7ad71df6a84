package testenv

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EOSChecker runs an exactly-once pipeline and checks it, as Jepsen
// checks transactional systems: a source producer writes numbered
// records to topic in (idempotent, acks=all); a consume-transform-produce
// loop (franz-go's GroupTransactSession: read_committed, the outputs and
// the consumed offsets committed in one transaction) copies each to
// topic out. Verify then reads out with read_committed and fails on a
// record of in acknowledged but missing from out (a lost write), one
// copied twice (a duplicate, or an aborted transaction's output read),
// or one that the source never wrote (garbage).
type EOSChecker struct {
	t              testing.TB
	in, out, group string
	seeds          []string

	src  *kgo.Client
	sess *kgo.GroupTransactSession

	mu      sync.Mutex
	seq     int
	acked   map[string]bool // source values acknowledged
	written map[string]bool // every source value sent (acknowledged or not)
	commits int             // pipeline transactions committed
	endTook []time.Duration // how long each End took

	cancel   context.CancelFunc
	stopSrc  chan struct{}
	srcDone  chan struct{}
	pipeDone chan struct{}
	stopPipe chan struct{}
}

// StartEOS starts the source at perSecond records a second and the
// pipeline, with transactional id txnID in group group.
func StartEOS(t testing.TB, seeds []string, in, out, group, txnID string, perSecond int) *EOSChecker {
	e := &EOSChecker{t: t, in: in, out: out, group: group, seeds: seeds, acked: map[string]bool{}, written: map[string]bool{},
		stopSrc: make(chan struct{}), srcDone: make(chan struct{}), pipeDone: make(chan struct{}), stopPipe: make(chan struct{})}
	var err error
	e.src, err = kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(in), kgo.RecordRetries(1<<30),
		kgo.RetryTimeout(2*time.Minute), kgo.MetadataMinAge(250*time.Millisecond), kgo.MetadataMaxAge(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	e.sess, err = kgo.NewGroupTransactSession(kgo.SeedBrokers(seeds...), kgo.TransactionalID(txnID), kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(in), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.RequireStableFetchOffsets(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.TransactionTimeout(30*time.Second),
		kgo.RecordRetries(1<<30), kgo.RetryTimeout(2*time.Minute), kgo.RequestTimeoutOverhead(5*time.Second),
		kgo.MetadataMinAge(250*time.Millisecond), kgo.MetadataMaxAge(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go e.source(ctx, perSecond)
	go e.pipeline(ctx)
	return e
}

func (e *EOSChecker) source(ctx context.Context, perSecond int) {
	defer close(e.srcDone)
	tick := time.NewTicker(time.Second / time.Duration(perSecond))
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-e.stopSrc:
			return
		case <-tick.C:
		}
		e.mu.Lock()
		e.seq++
		v := fmt.Sprintf("eos-%09d", e.seq)
		e.written[v] = true
		e.mu.Unlock()
		wg.Add(1)
		e.src.Produce(ctx, &kgo.Record{Value: []byte(v)}, func(r *kgo.Record, err error) {
			defer wg.Done()
			if err == nil {
				e.mu.Lock()
				e.acked[string(r.Value)] = true
				e.mu.Unlock()
			}
		})
	}
}

// pipeline copies in to out, a poll's records per transaction.
func (e *EOSChecker) pipeline(ctx context.Context) {
	defer close(e.pipeDone)
	for {
		select {
		case <-e.stopPipe:
			return
		default:
		}
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		fs := e.sess.PollFetches(pctx)
		pcancel()
		if ctx.Err() != nil {
			return
		}
		if fs.Empty() {
			continue
		}
		if err := e.sess.Begin(); err != nil {
			e.t.Errorf("eos pipeline: begin transaction: %v", err)
			return
		}
		fs.EachRecord(func(r *kgo.Record) {
			e.sess.Produce(ctx, &kgo.Record{Topic: e.out, Key: r.Value, Value: r.Value}, nil)
		})
		t0 := time.Now()
		committed, err := e.sess.End(ctx, kgo.TryCommit)
		e.mu.Lock()
		e.endTook = append(e.endTook, time.Since(t0))
		e.mu.Unlock()
		switch {
		case err != nil && !errors.Is(err, context.Canceled):
			e.t.Logf("eos pipeline: end transaction: %v (retried with the next poll)", err)
		case committed:
			e.mu.Lock()
			e.commits++
			e.mu.Unlock()
		}
	}
}

// Stop stops the source, waits until the pipeline's group has committed
// the end of every partition of in (it consumed all the source wrote),
// up to ctx, then stops the pipeline.
func (e *EOSChecker) Stop(ctx context.Context) {
	e.t.Helper()
	close(e.stopSrc)
	select {
	case <-e.srcDone:
	case <-time.After(time.Minute):
		e.t.Errorf("eos: the source producer did not stop within a minute")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.seeds...))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		ends, err := adm.ListEndOffsets(ctx, e.in)
		var committed kadm.OffsetResponses
		if err == nil {
			committed, err = adm.FetchOffsets(ctx, e.group)
		}
		caughtUp := err == nil && ends.Error() == nil
		if caughtUp {
			ends.Each(func(o kadm.ListedOffset) {
				c, ok := committed.Lookup(e.in, o.Partition)
				caughtUp = caughtUp && (o.Offset == 0 || (ok && c.Err == nil && c.At >= o.Offset))
			})
		}
		if caughtUp {
			break
		}
		if ctx.Err() != nil {
			e.t.Fatalf("eos: the pipeline never consumed all of %s: ends %v, committed %v (%v)", e.in, ends, committed, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(e.stopPipe)
	select {
	case <-e.pipeDone:
	case <-time.After(time.Minute):
		e.t.Errorf("eos: the pipeline did not stop within a minute")
	}
	e.cancel()
	e.sess.Close()
	e.src.Close()
}

// Committed counts the pipeline's committed transactions.
func (e *EOSChecker) Committed() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.commits
}

// Acked counts the source records acknowledged.
func (e *EOSChecker) Acked() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.acked)
}

// ReadOut reads out with read_committed from the start until a few
// seconds pass with nothing more, and returns how often each value
// appears.
func (e *EOSChecker) ReadOut(ctx context.Context) (map[string]int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.seeds...), kgo.ConsumeTopics(e.out), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	got := map[string]int{}
	for quiet := 0; quiet < 3; {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return got, fmt.Errorf("eos: read of %s: %w", e.out, ctx.Err())
		}
		quiet++
		fs.EachRecord(func(r *kgo.Record) {
			got[string(r.Value)]++
			quiet = 0
		})
	}
	return got, nil
}

// Verify checks out against what the source wrote: every acknowledged
// record exactly once, nothing written twice, nothing never written.
func (e *EOSChecker) Verify(ctx context.Context) {
	e.t.Helper()
	got, err := e.ReadOut(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var lost, dup, garbage []string
	for v := range e.acked {
		if got[v] == 0 {
			lost = append(lost, v)
		}
	}
	for v, n := range got {
		switch {
		case !e.written[v]:
			garbage = append(garbage, v)
		case n > 1:
			dup = append(dup, fmt.Sprintf("%s×%d", v, n))
		}
	}
	if len(lost)+len(dup)+len(garbage) > 0 {
		e.t.Fatalf("eos: %d acknowledged source records, %d distinct in %s: lost %d %.10v, duplicated %d %.10v, never written %d %.10v",
			len(e.acked), len(got), e.out, len(lost), lost, len(dup), dup, len(garbage), garbage)
	}
	slices.Sort(e.endTook)
	e.t.Logf("eos: %d acknowledged source records, each in %s exactly once, in %d committed transactions (ending one took %v at the median, %v at most)",
		len(e.acked), e.out, e.commits, e.endTook[len(e.endTook)/2], e.endTook[len(e.endTook)-1])
}
