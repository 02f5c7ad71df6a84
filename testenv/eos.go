package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
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
	t                     testing.TB
	in, out, group, txnID string
	seeds                 []string

	src *kgo.Client

	mu       sync.Mutex
	seq      int
	acked    map[string]bool // source values acknowledged
	written  map[string]bool // every source value sent (acknowledged or not)
	commits  int             // pipeline transactions committed (in the test process)
	kills    int             // pipeline processes killed
	child    *exec.Cmd       // the pipeline's process, with EOSOptions.Child
	childLog io.Writer
	endTook  []time.Duration // how long each End took

	cancel   context.CancelFunc
	stopSrc  chan struct{}
	srcDone  chan struct{}
	pipeDone chan struct{}
	stopPipe chan struct{}
}

// EOSOptions shape the pipeline.
type EOSOptions struct {
	// Child runs the pipeline in a process of its own, which
	// KillPipeline kills (SIGKILL) and starts again; its log goes to
	// ChildLog (nil: discarded).
	Child    bool
	ChildLog io.Writer
}

// StartEOS starts the source at perSecond records a second and the
// pipeline, with transactional id txnID in group group. The topics
// must have as many partitions as each other: each record is copied to
// the partition it was read from.
func StartEOS(t testing.TB, seeds []string, in, out, group, txnID string, perSecond int, opts ...EOSOptions) *EOSChecker {
	e := &EOSChecker{t: t, in: in, out: out, group: group, txnID: txnID, seeds: seeds, acked: map[string]bool{}, written: map[string]bool{},
		stopSrc: make(chan struct{}), srcDone: make(chan struct{}), pipeDone: make(chan struct{}), stopPipe: make(chan struct{})}
	var err error
	e.src, err = kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(in), kgo.RecordRetries(1<<30),
		kgo.RetryTimeout(2*time.Minute), kgo.MetadataMinAge(250*time.Millisecond), kgo.MetadataMaxAge(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go e.source(ctx, perSecond)
	if len(opts) > 0 && opts[0].Child {
		e.childLog = opts[0].ChildLog
		if e.childLog == nil {
			e.childLog = io.Discard
		}
		e.mu.Lock()
		e.startChildLocked()
		e.mu.Unlock()
		close(e.pipeDone)
		return e
	}
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

// pipeline copies in to out, a poll's records per transaction, each
// record to the partition of in it came from.
func (e *EOSChecker) pipeline(ctx context.Context) {
	defer close(e.pipeDone)
	err := copyLoop(ctx, pipelineOpts(e.seeds, e.in, e.group, e.txnID), e.out, e.stopPipe, func(took time.Duration, committed bool, err error) {
		e.mu.Lock()
		defer e.mu.Unlock()
		if err == nil {
			e.endTook = append(e.endTook, took)
		}
		switch {
		case err != nil && !errors.Is(err, context.Canceled):
			e.t.Logf("eos pipeline: %v (a new session takes over)", err)
		case committed:
			e.commits++
		}
	})
	if err != nil {
		e.t.Errorf("eos pipeline: %v", err)
	}
}

// copyLoop is the pipeline: poll, begin, produce each record to out at
// its partition, end (commit), until stop or ctx ends. A failed Begin or
// End leaves the session unusable (franz-go's End: "no returned error is
// retryable"), so the loop closes it and starts another with the same
// transactional id, as an application restarts its producer: the new
// one's InitProducerId aborts what the old one left open.
func copyLoop(ctx context.Context, opts []kgo.Opt, out string, stop <-chan struct{}, ended func(time.Duration, bool, error)) error {
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return err
	}
	defer func() { sess.Close() }()
	restart := func(err error) error {
		ended(0, false, err)
		sess.Close()
		sess, err = kgo.NewGroupTransactSession(opts...)
		return err
	}
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		fs := sess.PollFetches(pctx)
		pcancel()
		if ctx.Err() != nil {
			return nil
		}
		if fs.Empty() {
			continue
		}
		if err := sess.Begin(); err != nil {
			if err := restart(fmt.Errorf("begin transaction: %w", err)); err != nil {
				return err
			}
			continue
		}
		fs.EachRecord(func(r *kgo.Record) {
			sess.Produce(ctx, &kgo.Record{Topic: out, Partition: r.Partition, Key: r.Value, Value: r.Value}, nil)
		})
		t0 := time.Now()
		committed, err := sess.End(ctx, kgo.TryCommit)
		if err != nil && ctx.Err() == nil {
			if err := restart(fmt.Errorf("end transaction: %w", err)); err != nil {
				return err
			}
			continue
		}
		ended(time.Since(t0), committed, err)
	}
}

// pipelineOpts are the pipeline's client options.
func pipelineOpts(seeds []string, in, group, txnID string) []kgo.Opt {
	return []kgo.Opt{kgo.SeedBrokers(seeds...), kgo.TransactionalID(txnID), kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(in), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.RequireStableFetchOffsets(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.TransactionTimeout(30 * time.Second),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		// A killed pipeline's member leaves the group only when its
		// session times out: short, so its successor takes over soon.
		kgo.SessionTimeout(3 * time.Second), kgo.HeartbeatInterval(300 * time.Millisecond),
		kgo.RecordRetries(1 << 30), kgo.RetryTimeout(2 * time.Minute), kgo.RequestTimeoutOverhead(5 * time.Second),
		kgo.MetadataMinAge(250 * time.Millisecond), kgo.MetadataMaxAge(time.Second)}
}

// runPipelineChild runs the pipeline in a process of its own (an "eos"
// child) until SIGTERM; the test may kill it instead.
func runPipelineChild(s childSpec, stop <-chan os.Signal, logger *slog.Logger) error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	quit := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		err = copyLoop(ctx, pipelineOpts(s.Seeds, s.In, s.Group, s.Txn), s.Out, quit, func(took time.Duration, committed bool, err error) {
			if err != nil {
				logger.Info("eos pipeline: a new session takes over", "error", err)
			}
		})
	}()
	<-stop
	close(quit)
	<-done
	cancel()
	return err
}

// KillPipeline kills the pipeline's process (SIGKILL) mid-work and starts
// another with the same transactional id and group, as a crashed
// stream processor is restarted: the new one fences the old one's
// producer and aborts its open transaction. Only with a child pipeline.
func (e *EOSChecker) KillPipeline() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.child == nil {
		e.t.Fatal("eos: the pipeline runs in the test process")
	}
	e.child.Process.Kill()
	e.child.Wait()
	e.kills++
	e.startChildLocked()
}

func (e *EOSChecker) startChildLocked() {
	bin, err := os.Executable()
	if err != nil {
		e.t.Fatal(err)
	}
	spec, _ := json.Marshal(childSpec{Role: "eos", Seeds: e.seeds, In: e.in, Out: e.out, Group: e.group, Txn: e.txnID})
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	cmd.Stdout, cmd.Stderr = e.childLog, e.childLog
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.child = cmd
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
	e.mu.Lock()
	if e.child != nil {
		e.child.Process.Signal(syscall.SIGTERM)
		e.child.Wait()
	}
	e.mu.Unlock()
	e.cancel()
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

// readTopic reads topic from the start at the isolation level until
// each partition p holds want[p] records (nil: until a few seconds pass
// with nothing more), or nothing more comes for 15 s, and returns each
// partition's values in order.
func (e *EOSChecker) readTopic(ctx context.Context, topic string, level kgo.IsolationLevel, want map[int32]int) (map[int32][]string, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.seeds...), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(level),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	got := map[int32][]string{}
	done := func() bool {
		for p, n := range want {
			if len(got[p]) < n {
				return false
			}
		}
		return want != nil
	}
	quietFor := 3 * time.Second
	if want != nil {
		quietFor = 15 * time.Second
	}
	for last := time.Now(); !done() && time.Since(last) < quietFor; {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return got, fmt.Errorf("eos: read of %s: %w", topic, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			got[r.Partition] = append(got[r.Partition], string(r.Value))
			last = time.Now()
		})
	}
	return got, nil
}

// readIn reads in whole: up to its end offsets (it is written without
// transactions, so every offset below the end is a record).
func (e *EOSChecker) readIn(ctx context.Context) (map[int32][]string, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.seeds...))
	if err != nil {
		return nil, err
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, e.in)
	cl.Close()
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, err
	}
	want := map[int32]int{}
	ends.Each(func(o kadm.ListedOffset) { want[o.Partition] = int(o.Offset) })
	got, err := e.readTopic(ctx, e.in, kgo.ReadUncommitted(), want)
	for p, n := range want {
		if err == nil && len(got[p]) != n {
			err = fmt.Errorf("eos: read %d records of partition %d of %s, which ends at %d", len(got[p]), p, e.in, n)
		}
	}
	return got, err
}

// Verify checks out against in and what the source wrote: each
// partition of out, read_committed, holds exactly the records of the
// same partition of in, in the same order (so every acknowledged record
// once: no loss, no duplicate, no aborted read), and nothing the source
// never wrote.
func (e *EOSChecker) Verify(ctx context.Context) {
	e.t.Helper()
	in, err := e.readIn(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	want := map[int32]int{}
	for p, vs := range in {
		want[p] = len(vs)
	}
	out, err := e.readTopic(ctx, e.out, kgo.ReadCommitted(), want)
	if err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	count := map[string]int{}
	for _, vs := range out {
		for _, v := range vs {
			count[v]++
		}
	}
	var lost, dup, garbage []string
	for v := range e.acked {
		if count[v] == 0 {
			lost = append(lost, v)
		}
	}
	for v, n := range count {
		switch {
		case !e.written[v]:
			garbage = append(garbage, v)
		case n > 1:
			dup = append(dup, fmt.Sprintf("%s×%d", v, n))
		}
	}
	if len(lost)+len(dup)+len(garbage) > 0 {
		e.t.Fatalf("eos: %d acknowledged source records, %d distinct in %s: lost %d %.10v, duplicated %d %.10v, never written %d %.10v",
			len(e.acked), len(count), e.out, len(lost), lost, len(dup), dup, len(garbage), garbage)
	}
	for p, want := range in {
		if got := out[p]; !slices.Equal(got, want) {
			i := 0
			for i < min(len(got), len(want)) && got[i] == want[i] {
				i++
			}
			e.t.Fatalf("eos: partition %d of %s differs from %s's from record %d: %d records against %d", p, e.out, e.in, i, len(got), len(want))
		}
	}
	took := "in a process of its own"
	if len(e.endTook) > 0 {
		slices.Sort(e.endTook)
		took = fmt.Sprintf("ending one took %v at the median, %v at most", e.endTook[len(e.endTook)/2], e.endTook[len(e.endTook)-1])
	}
	e.t.Logf("eos: %d acknowledged source records, each in %s exactly once and in order, %d transactions committed (%s), the pipeline killed %d times",
		len(e.acked), e.out, e.commits, took, e.kills)
}

// Progress is how far the pipeline's group has committed: the sum of its
// committed offsets on in (-1 when they cannot be read now).
func (e *EOSChecker) Progress(ctx context.Context) int64 {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.seeds...))
	if err != nil {
		return -1
	}
	defer cl.Close()
	committed, err := kadm.NewClient(cl).FetchOffsets(ctx, e.group)
	if err != nil || committed.Error() != nil {
		return -1
	}
	var n int64
	committed.Each(func(o kadm.OffsetResponse) { n += o.At })
	return n
}
