package node_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/meta"
	"github.com/strata-io/strata/testenv"
)

// TestFaultSuite is the randomized fault suite: a seeded workload and a
// seeded schedule of faults against a cluster of three nodes and two
// gateways, each a process of its own (testenv.Processes), then a checker
// once everything is healed. A failing seed replays the same schedule
// (STRATA_SEED=N); the workload's timing still varies with the machine.
//
// Gateway 0 reads uploaded segments from the store itself, gateway 1
// leaves that to the nodes.
//
// Workload: an idempotent acks=all producer (checked) and an acks=1
// producer (load only: acks=1 promises nothing across a failover) on a
// tiered topic with 64 KiB segments and 1 s local retention; a consumer
// group that commits; DeleteRecords and partition growth on the checked
// topic; topic creation, partition growth and DeleteRecords on topics of
// their own.
//
// Faults, one at a time, each healed before the next: SIGKILL of a node,
// of the controller and of a gateway (each started again after the
// hold); a node frozen with SIGSTOP; a node cut off NATS; a one-way
// partition (a node hears nothing, its heartbeats still go out); the
// object store down and answering 503; one node's disk past its
// high-water mark; the NATS server stopped and started.
//
// Also an exactly-once pipeline (testenv.EOSChecker): a source topic
// copied to another by a consume-transform-produce loop in transactions
// (franz-go's GroupTransactSession), both tiered.
// And a compacted tiered topic (testenv.TableChecker) taking keyed
// updates and tombstones, which the cleaners compact on disk and in the
// bucket while the faults go on.
//
// Checked after healing: every acknowledged record is readable where it
// was acknowledged, in order, exactly once, replayed from the log's start
// after local retention emptied the disk (so from the bucket); the log
// starts where DeleteRecords put it; the group's committed offsets never
// moved back; the pipeline's output, read_committed, holds every
// acknowledged source record exactly once and nothing else; the
// compacted topic's latest-value view holds every key's last
// acknowledged write (or a later one); no process's
// log shows a panic or a data race, and every process stops cleanly at
// the end.
//
// STRATA_FAULT_SECONDS sets how long faults are injected (unset: the
// suite is skipped); STRATA_FAULT_SEEDS runs that many seeds one after
// another; STRATA_FAULTS limits the kinds of fault (allFaults names
// them); STRATA_FAULT_LOG=DIR keeps the processes' logs in DIR/SEED.
func TestFaultSuite(t *testing.T) {
	s := os.Getenv("STRATA_FAULT_SECONDS")
	if s == "" {
		t.Skip("the fault suite runs on its own, when STRATA_FAULT_SECONDS is set: make test runs one seed, make test-long ten")
	}
	seconds, err := strconv.Atoi(s)
	if err != nil || seconds <= 0 {
		t.Fatalf("STRATA_FAULT_SECONDS=%q: want a number of seconds", s)
	}
	seeds := 1
	if s := os.Getenv("STRATA_FAULT_SEEDS"); s != "" {
		seeds, _ = strconv.Atoi(s)
	}
	seed := testenv.Seed(t)
	for i := range seeds {
		s := seed + uint64(i)
		t.Run(fmt.Sprintf("seed=%d", s), func(t *testing.T) { runFaultSuite(t, s, time.Duration(seconds)*time.Second) })
	}
}

// allFaults are the fault suite's kinds of fault, as STRATA_FAULTS names
// them.
var allFaults = []string{"kill-node", "kill-controller", "kill-gateway", "sigstop", "cut", "stall", "store-down", "store-503",
	"disk-full", "nats-restart", "kill-node-gateway"}

// faultKinds are the kinds STRATA_FAULTS (comma-separated) names, or all.
func faultKinds(t *testing.T) []string {
	env := os.Getenv("STRATA_FAULTS")
	if env == "" {
		return allFaults
	}
	var out []string
	for _, k := range strings.Split(env, ",") {
		if !slices.Contains(allFaults, k) {
			t.Fatalf("STRATA_FAULTS: unknown fault %q; known: %s", k, strings.Join(allFaults, ","))
		}
		out = append(out, k)
	}
	return out
}

// The checked topic's partitions: it starts with faultPartitions and
// grows to at most maxFaultPartitions.
const faultPartitions, maxFaultPartitions = 3, 5

func runFaultSuite(t *testing.T, seed uint64, faultTime time.Duration) {
	t.Logf("seed %d (STRATA_SEED=%d replays the schedule), faults for %v", seed, seed, faultTime)
	rng := rand.New(rand.NewPCG(seed, 11))
	var logDir string
	if dir := os.Getenv("STRATA_FAULT_LOG"); dir != "" { // the processes' logs, to read after a failure
		logDir = filepath.Join(dir, strconv.FormatUint(seed, 10))
	}
	// Gateway 0 reads uploaded segments itself, gateway 1 leaves it to
	// the nodes: both read paths meet the faults.
	// What the suite was doing and what the checked producer saw, said
	// again after the processes' logs (a cleanup registered before
	// theirs runs after them) so that a failure's cause ends the output.
	var (
		where     = "starting the cluster"
		check     *testenv.Checker
		looseSeen atomic.Int64
		looseErrs atomic.Int64
	)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		report := ""
		if check != nil {
			report = check.Report()
		}
		t.Logf("seed %d failed while %s; acks=1 load: %d acknowledged, %d failed; the checked producer:%s",
			seed, where, looseSeen.Load(), looseErrs.Load(), report)
	})
	c := testenv.Processes(t, 3, testenv.ProcsOptions{Gateways: 2, TierGateways: 1, LogDir: logDir})
	// After the faults: up to 6 minutes to finish the workload, let the
	// group catch up and read everything back (under the race detector,
	// on 2 cores, a group far behind reads slowly).
	ctx, cancel := context.WithTimeout(context.Background(), faultTime+6*time.Minute)
	defer cancel()
	seeds := c.Addrs()
	admin := newSeedsClient(t, seeds)
	adm := kadm.NewClient(admin)
	tiered := map[string]*string{"remote.storage.enable": kadm.StringPtr("true"), "segment.bytes": kadm.StringPtr("65536"),
		"local.retention.ms": kadm.StringPtr("1000"), "min.insync.replicas": kadm.StringPtr("2")}
	if r, err := adm.CreateTopic(ctx, faultPartitions, 3, tiered, "faults"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	if r, err := adm.CreateTopic(ctx, 2, 2, nil, "loose"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	for _, topic := range []string{"eos-in", "eos-out"} {
		if r, err := adm.CreateTopic(ctx, 3, 3, tiered, topic); err != nil || r.Err != nil {
			t.Fatal(err, r.Err)
		}
	}
	compactedTiered := map[string]*string{"cleanup.policy": kadm.StringPtr("compact"), "remote.storage.enable": kadm.StringPtr("true"),
		"segment.bytes": kadm.StringPtr("16384"), "segment.ms": kadm.StringPtr("1000"), "local.retention.ms": kadm.StringPtr("1000"),
		"min.cleanable.dirty.ratio": kadm.StringPtr("0.1"), "delete.retention.ms": kadm.StringPtr("0"),
		"file.delete.delay.ms": kadm.StringPtr("2000"), "min.insync.replicas": kadm.StringPtr("2")}
	if r, err := adm.CreateTopic(ctx, 2, 3, compactedTiered, "table"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	waitFullISR(ctx, t, c, "faults", 3)

	// The workload.
	prodOpts := []kgo.Opt{kgo.RecordRetries(1 << 30), kgo.ProduceRequestTimeout(5 * time.Second),
		kgo.RequestTimeoutOverhead(2 * time.Second), kgo.RetryTimeout(2 * time.Minute), kgo.MetadataMinAge(250 * time.Millisecond), kgo.MetadataMaxAge(time.Second)}
	if logDir != "" { // what the producer's client saw, to read after a failure
		f, err := os.OpenFile(filepath.Join(logDir, "logs", "producer.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		level := kgo.LogLevelInfo
		if os.Getenv(testenv.ChildLogLevelEnv) == "debug" {
			level = kgo.LogLevelDebug // every request and each partition's error
		}
		prodOpts = append(prodOpts, kgo.WithLogger(kgo.BasicLogger(f, level, func() string { return time.Now().Format("15:04:05.000 ") })))
	}
	prod := newSeedsClient(t, seeds, prodOpts...)
	check = testenv.StartChecker(t, prod, "faults", 100, 1500)
	check.OnStall = c.DumpStacks // a stall is a bug: where every goroutine waits says which
	check.ExpectIdempotent()
	loose := newSeedsClient(t, seeds, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.DefaultProduceTopic("loose"))
	eos := testenv.StartEOS(t, seeds, "eos-in", "eos-out", "eos", "eos-pipe", 200)
	table := testenv.StartTableChecker(t, newSeedsClient(t, seeds, prodOpts...), "table", 200, 100, seed)
	group := testenv.StartGroupChecker(t, "faults", "fault-readers", seeds...)
	group.TrimmedBy(check)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	// The acks=1 load stops with the rest: Produce blocks while the
	// client's buffer is full, so it gets a context that stop cancels.
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	wg.Add(2)
	go func() { // acks=1 load
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			loose.Produce(loadCtx, &kgo.Record{Value: []byte("loose")}, func(_ *kgo.Record, err error) {
				if err != nil {
					looseErrs.Add(1)
				} else {
					looseSeen.Add(1)
				}
			})
		}
	}()
	churnRng := rand.New(rand.NewPCG(seed, 12))
	var churned churnCounts
	go func() { // metadata churn: topics, partitions, DeleteRecords
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			churned.step(cctx, adm, check, group, churnRng, i)
			ccancel()
		}
	}()

	// The faults, one at a time, of the kinds STRATA_FAULTS names.
	allowed := faultKinds(t)
	var schedule []string
	deadline := time.Now().Add(faultTime)
	for time.Now().Before(deadline) {
		where = fmt.Sprintf("waiting for progress before fault %d", len(schedule)+1)
		check.WaitAcked(ctx, 50, "before a fault") // progress between faults
		hold := time.Duration(300+rng.IntN(1700)) * time.Millisecond
		node := int32(1 + rng.IntN(3))
		var fault string
		// Each fault is injected, held, then healed.
		var inject, heal func()
		switch allowed[rng.IntN(len(allowed))] {
		case "kill-node":
			fault = fmt.Sprintf("kill -9 node %d, start it after %v", node, hold)
			inject, heal = func() { c.Kill(node) }, func() { c.Start(node) }
		case "kill-controller":
			id, err := c.Controller(ctx)
			if err != nil {
				t.Fatalf("no controller: %v", err)
			}
			node = id
			fault = fmt.Sprintf("kill -9 the controller (node %d), start it after %v", node, hold)
			inject, heal = func() { c.Kill(node) }, func() { c.Start(node) }
		case "kill-gateway":
			gw := rng.IntN(2)
			fault = fmt.Sprintf("kill -9 gateway %d, start it after %v", gw, hold)
			inject, heal = func() { c.KillGateway(gw) }, func() { c.StartGateway(gw) }
		case "sigstop":
			fault = fmt.Sprintf("SIGSTOP node %d for %v", node, hold)
			inject, heal = func() { c.Pause(node) }, func() { c.Resume(node) }
		case "cut":
			fault = fmt.Sprintf("cut node %d off NATS for %v", node, hold)
			inject, heal = func() { c.Disconnect(node) }, func() { c.Reconnect(node) }
		case "stall":
			fault = fmt.Sprintf("one-way partition of node %d for %v", node, hold)
			inject, heal = func() { c.Stall(node) }, func() { c.Unstall(node) }
		case "store-down":
			fault = fmt.Sprintf("object store down for %v", hold)
			inject, heal = func() { c.SetStore(testenv.StoreDown) }, func() { c.SetStore(testenv.StoreUp) }
		case "store-503":
			fault = fmt.Sprintf("object store answers 503 for %v", hold)
			inject, heal = func() { c.SetStore(testenv.Store503) }, func() { c.SetStore(testenv.StoreUp) }
		case "disk-full":
			fault = fmt.Sprintf("node %d's disk full for %v", node, hold)
			inject, heal = func() { c.DiskFull(node, true) }, func() { c.DiskFull(node, false) }
		case "nats-restart":
			fault = fmt.Sprintf("NATS server down for %v", hold)
			inject, heal = func() {}, func() { c.RestartNATS(hold) } // RestartNATS holds it down itself
			hold = 0
		case "kill-node-gateway":
			fault = fmt.Sprintf("kill -9 node %d and gateway 0 together, start them after %v", node, hold)
			inject = func() { c.Kill(node); c.KillGateway(0) }
			heal = func() { c.Start(node); c.StartGateway(0) }
		}
		where = "injecting " + fault
		inject()
		time.Sleep(hold)
		heal()
		schedule = append(schedule, fault)
		t.Logf("fault %d: %s", len(schedule), fault)
	}

	// Healed: let the workload run on, then stop it and check.
	healed := time.Now()
	stage := func(what string) { t.Logf("%6.1fs after healing: %s", time.Since(healed).Seconds(), what) }
	where = "waiting for progress after healing"
	check.WaitAcked(ctx, 200, "after healing")
	where = "stopping the acks=1 load and the churn"
	close(stop)
	stopLoad()
	wg.Wait()
	where = "stopping the checked producer"
	check.Stop()
	stage("producers stopped")
	ends := check.Ends()
	where = "waiting for the group to catch up"
	group.WaitCaughtUp(ctx, ends)
	group.Stop()
	group.VerifyCommitted(ctx, seeds...)
	stage("the group caught up")
	where = "checking the exactly-once pipeline"
	eos.Stop(ctx)
	eos.Verify(ctx)
	stage("the exactly-once pipeline checked")
	where = "checking the compacted topic"
	table.Stop()
	tableRead := table.Verify(ctx, seeds...)
	tableWritten, tableAcked := table.Counts()
	stage("the compacted topic checked")
	where = "waiting for local retention to empty the disks"
	// Local retention empties the disks of what was uploaded: the replay
	// from the log's start comes from the bucket.
	for p := range ends {
		for {
			start, _, err1 := tryListOffset(ctx, admin, "faults", p, -4)
			end, _, err2 := tryListOffset(ctx, admin, "faults", p, -1)
			if err1 == nil && err2 == nil && start == end {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("partition %d: local log start %d, end %d (%v, %v): local retention did not empty the disk", p, start, end, err1, err2)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	stage("local retention emptied the disks")
	where = "reading every acknowledged record back"
	check.Verify(ctx, seeds...)
	stage("every acknowledged record read back")
	t.Logf("%d faults: %s; %d records acknowledged and read back from %d partitions; the checked topic grown %d times, trimmed by DeleteRecords %d times; the exactly-once pipeline copied %d records in %d transactions; the compacted topic took %d writes (%d acknowledged) and reads back as %d records",
		len(schedule), strings.Join(schedule, "; "), check.Acked(), len(ends), churned.grown, churned.trimmed, eos.Acked(), eos.Committed(),
		tableWritten, tableAcked, tableRead)
}

// churnCounts counts what the fault suite's churn did to the checked
// topic.
type churnCounts struct{ grown, trimmed int }

// step is one step of the fault suite's metadata churn: a topic created,
// grown or trimmed, or the checked topic grown or trimmed below what the
// group has committed (so the group never finds its position deleted).
func (n *churnCounts) step(ctx context.Context, adm *kadm.Client, check *testenv.Checker, group *testenv.GroupChecker, rng *rand.Rand, i int) {
	switch rng.IntN(5) {
	case 0:
		adm.CreateTopic(ctx, 1, 2, nil, fmt.Sprintf("churn-%d", i))
	case 1:
		adm.CreatePartitions(ctx, 1, fmt.Sprintf("churn-%d", i-1))
	case 2:
		if offs, err := adm.ListEndOffsets(ctx, "loose"); err == nil {
			deletes := kadm.Offsets{}
			offs.Each(func(o kadm.ListedOffset) {
				if o.Err == nil && o.Offset > 10 {
					deletes.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset - 10})
				}
			})
			adm.DeleteRecords(ctx, deletes)
		}
	case 3:
		if td, err := adm.ListTopics(ctx, "faults"); err == nil && len(td["faults"].Partitions) < maxFaultPartitions {
			if r, err := adm.CreatePartitions(ctx, 1, "faults"); err == nil && r.Error() == nil {
				n.grown++
			}
		}
	case 4:
		// Delete part of what the group committed and the producer saw
		// acknowledged, so that an acknowledged record stays above it.
		ends, committed := check.Ends(), group.Committed()
		p := int32(rng.IntN(faultPartitions))
		at := min(committed[p], ends[p]-1)
		if at <= 0 {
			return
		}
		at -= int64(rng.IntN(int(at/2) + 1))
		check.Deleting(p, at)
		r, err := adm.DeleteRecords(ctx, kadm.Offsets{"faults": {p: {Topic: "faults", Partition: p, At: at}}})
		if err == nil && r.Error() == nil {
			check.Deleted(p, at)
			n.trimmed++
		}
	}
}

// waitFullISR waits until every partition of topic has n replicas in
// sync and a leader, as the controller sees it.
func waitFullISR(ctx context.Context, t *testing.T, c *testenv.Procs, topic string, n int) {
	t.Helper()
	for {
		r, err := c.Meta.Read(ctx, meta.ReadRequest{Kind: "topics", Topic: topic})
		ok := err == nil && len(r.Partitions) > 0
		for _, p := range r.Partitions {
			ok = ok && len(p.ISR) == n && p.Leader >= 0
		}
		if ok {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("ISR of %d not reached: %+v (%v)", n, r.Partitions, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newSeedsClient is a client of the given gateways, closed when the test
// ends.
func newSeedsClient(t *testing.T, seeds []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
