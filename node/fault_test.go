package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
	"github.com/strata-io/strata/tier"
)

// TestFaultSuite is the randomized fault suite: a seeded workload and a
// seeded schedule of faults against an in-process cluster of three nodes
// and two gateways, then a checker once everything is healed. A failing
// seed replays the same schedule (STRATA_SEED=N); the workload's timing
// still varies with the machine.
//
// Workload: an idempotent acks=all producer (checked) and an acks=1
// producer (load only: acks=1 promises nothing across a failover) on a
// tiered topic with 64 KiB segments and 1 s local retention; a consumer
// group that commits; topic creation, partition growth and DeleteRecords
// on topics of their own.
//
// Faults, one at a time, each healed before the next: a node stopped and
// started again (the controller among them), a node cut off NATS, a
// one-way partition (a node hears nothing, its heartbeats still go out),
// the object store down and answering 503, every node's disk past its
// high-water mark, the second gateway stopped and started, and the NATS
// server stopped and started.
//
// Checked after healing: every acknowledged record is readable where it
// was acknowledged, in order, exactly once, replayed from offset 0 after
// local retention emptied the disk (so from the bucket); the group's
// committed offsets never moved back; no process panicked (in process, a
// panic ends the test binary).
//
// STRATA_FAULT_SECONDS sets how long faults are injected (unset: the
// suite is skipped); STRATA_FAULT_SEEDS runs that many seeds one after
// another.
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

// faultStore is an object store that can be down (every call fails) or
// answer 503 (S3's SlowDown: every call fails, retriably).
type faultStore struct {
	tier.Store
	mode atomic.Int32 // storeUp, storeDown or store503
}

const (
	storeUp = iota
	storeDown
	store503
)

func (s *faultStore) err() error {
	switch s.mode.Load() {
	case storeDown:
		return errors.New("fault: object store down")
	case store503:
		return errors.New("fault: 503 Slow Down")
	}
	return nil
}

func (s *faultStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.Store.Put(ctx, key, r, size)
}

func (s *faultStore) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.Get(ctx, key, offset, length)
}

func (s *faultStore) Delete(ctx context.Context, keys ...string) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.Store.Delete(ctx, keys...)
}

func (s *faultStore) List(ctx context.Context, prefix string, fn func(tier.Object) error) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.Store.List(ctx, prefix, fn)
}

func runFaultSuite(t *testing.T, seed uint64, faultTime time.Duration) {
	t.Logf("seed %d (STRATA_SEED=%d replays the schedule), faults for %v", seed, seed, faultTime)
	rng := rand.New(rand.NewPCG(seed, 11))
	dir, err := tier.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := &faultStore{Store: dir}
	var diskFull atomic.Bool
	var logger *slog.Logger
	if path := os.Getenv("STRATA_FAULT_LOG"); path != "" { // the nodes' logs, to read after a failure
		f, err := os.Create(fmt.Sprintf("%s.%d", path, seed))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		logger = slog.New(slog.NewTextHandler(f, nil))
	}
	c := testenv.InProcess(t, 3, testenv.Options{Tier: store, Cuttable: true, MaintainInterval: 100 * time.Millisecond, Logger: logger,
		DiskUsage: func() (uint64, uint64, error) {
			if diskFull.Load() {
				return 99, 100, nil
			}
			return 10, 100, nil
		}})
	second := c.StartGateway(1)
	ctx, cancel := context.WithTimeout(context.Background(), faultTime+2*time.Minute)
	defer cancel()
	seeds := []string{c.Addr(), second.Addr()}
	admin := newSeedsClient(t, seeds)
	adm := kadm.NewClient(admin)
	tiered := map[string]*string{"remote.storage.enable": kadm.StringPtr("true"), "segment.bytes": kadm.StringPtr("65536"),
		"local.retention.ms": kadm.StringPtr("1000"), "min.insync.replicas": kadm.StringPtr("2")}
	if r, err := adm.CreateTopic(ctx, 3, 3, tiered, "faults"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	if r, err := adm.CreateTopic(ctx, 2, 2, nil, "loose"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	waitISR(ctx, t, c, "faults", 3)

	// The workload.
	prod := newSeedsClient(t, seeds, kgo.RecordRetries(1<<30), kgo.ProduceRequestTimeout(5*time.Second),
		kgo.RequestTimeoutOverhead(2*time.Second), kgo.RetryTimeout(2*time.Minute))
	check := testenv.StartChecker(t, prod, "faults", 100, 1500)
	check.ExpectIdempotent()
	loose := newSeedsClient(t, seeds, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.DefaultProduceTopic("loose"))
	group := testenv.StartGroupChecker(t, "faults", "fault-readers", seeds...)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(2)
	go func() { // acks=1 load
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			loose.Produce(ctx, &kgo.Record{Value: []byte("loose")}, nil)
		}
	}()
	go func() { // metadata churn: topics, partitions, DeleteRecords
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
			op, cctx := i%3, context.Background()
			cctx, ccancel := context.WithTimeout(cctx, 5*time.Second)
			switch op {
			case 0:
				adm.CreateTopic(cctx, 1, 2, nil, fmt.Sprintf("churn-%d", i))
			case 1:
				adm.CreatePartitions(cctx, 1, fmt.Sprintf("churn-%d", i-1))
			case 2:
				if offs, err := adm.ListEndOffsets(cctx, "loose"); err == nil {
					deletes := kadm.Offsets{}
					offs.Each(func(o kadm.ListedOffset) {
						if o.Err == nil && o.Offset > 10 {
							deletes.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset - 10})
						}
					})
					adm.DeleteRecords(cctx, deletes)
				}
			}
			ccancel()
		}
	}()

	// The faults, one at a time.
	var schedule []string
	deadline := time.Now().Add(faultTime)
	for time.Now().Before(deadline) {
		check.WaitAcked(ctx, 50, "before a fault") // progress between faults
		hold := time.Duration(300+rng.IntN(1700)) * time.Millisecond
		node := int32(1 + rng.IntN(3))
		var fault string
		// Each fault is injected, held, then healed.
		var inject, heal func()
		switch k := rng.IntN(9); k {
		case 0:
			fault = fmt.Sprintf("stop node %d for %v", node, hold)
			inject, heal = func() { c.StopNode(node) }, func() { c.StartNode(node) }
		case 1:
			node = controller(t, c)
			fault = fmt.Sprintf("stop the controller (node %d) for %v", node, hold)
			inject, heal = func() { c.StopNode(node) }, func() { c.StartNode(node) }
		case 2:
			fault = fmt.Sprintf("cut node %d off NATS for %v", node, hold)
			inject, heal = func() { c.Disconnect(node) }, func() { c.Reconnect(node) }
		case 3:
			fault = fmt.Sprintf("one-way partition of node %d for %v", node, hold)
			inject, heal = func() { c.Stall(node) }, func() { c.Unstall(node) }
		case 4:
			fault = fmt.Sprintf("object store down for %v", hold)
			inject, heal = func() { store.mode.Store(storeDown) }, func() { store.mode.Store(storeUp) }
		case 5:
			fault = fmt.Sprintf("object store answers 503 for %v", hold)
			inject, heal = func() { store.mode.Store(store503) }, func() { store.mode.Store(storeUp) }
		case 6:
			fault = fmt.Sprintf("disks full for %v", hold)
			inject, heal = func() { diskFull.Store(true) }, func() { diskFull.Store(false) }
		case 7:
			fault = fmt.Sprintf("second gateway stopped for %v", hold)
			inject, heal = func() { second.Close() }, func() { second = c.StartGateway(1) }
		case 8:
			fault = fmt.Sprintf("NATS server down for %v", hold)
			inject, heal = func() {}, func() { c.RestartNATS(hold) } // RestartNATS holds it down itself
			hold = 0
		}
		inject()
		time.Sleep(hold)
		heal()
		schedule = append(schedule, fault)
		t.Logf("fault %d: %s", len(schedule), fault)
	}

	// Healed: let the workload run on, then stop it and check.
	check.WaitAcked(ctx, 200, "after healing")
	close(stop)
	wg.Wait()
	check.Stop()
	ends := check.Ends()
	group.WaitCaughtUp(ctx, ends)
	group.Stop()
	seeds = []string{c.Addr(), second.Addr()} // the second gateway may have restarted on another port
	group.VerifyCommitted(ctx, seeds...)
	// Local retention empties the disks of what was uploaded: the replay
	// from offset 0 comes from the bucket.
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
	check.Verify(ctx, seeds...)
	t.Logf("%d faults: %s; %d records acknowledged and read back", len(schedule), strings.Join(schedule, "; "), check.Acked())
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
