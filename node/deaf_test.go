package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
)

// TestDeafLeaderLosesLeadership: the leader of a partition stops hearing
// NATS while its own sends still go out (a one-way partition). Its
// heartbeats alone would keep it "alive" and every produce to it would
// time out; instead it stops counting as alive, leadership moves to
// another in-sync replica and produce goes on. Once it hears again it
// catches up as a follower.
func TestDeafLeaderLosesLeadership(t *testing.T) {
	c := testenv.InProcess(t, 3, testenv.Options{Cuttable: true})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl := newClient(t, c, kgo.RecordRetries(1<<30), kgo.ProducerLinger(2*time.Millisecond),
		kgo.ProduceRequestTimeout(3*time.Second), kgo.RequestTimeoutOverhead(2*time.Second),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	createTopic(ctx, t, cl, 3, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, "rep")
	waitISR(ctx, t, c, "rep", 3)
	check := testenv.StartChecker(t, cl, "rep", 200, 5000)
	defer check.Stop()
	check.WaitAcked(ctx, 1000, "before the fault")

	ctrl := controller(t, c)
	var deaf int32 = -1
	for _, p := range partitions(t, c, "rep") {
		if p.Leader != ctrl {
			deaf = p.Leader
		}
	}
	c.Stall(deaf)
	start := time.Now()
	for {
		led := false
		for _, p := range partitions(t, c, "rep") {
			led = led || p.Leader == deaf
		}
		if !led {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("node %d, deaf to NATS, still leads: %+v", deaf, partitions(t, c, "rep"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("leadership moved off the deaf node after %v", time.Since(start))
	check.WaitAcked(ctx, 2000, "with a leader deaf to NATS")
	// It leaves every ISR and stays out: its fetches still arrive, but it
	// hears no answer, so letting it back in would only see it leave
	// again, over and over.
	waitISR(ctx, t, c, "rep", 2)
	before := partitions(t, c, "rep")
	time.Sleep(5 * time.Second)
	for i, p := range partitions(t, c, "rep") {
		if p.PartitionEpoch != before[i].PartitionEpoch {
			t.Errorf("partition %d's ISR changed while node %d was deaf: %v at epoch %d, then %v at epoch %d",
				p.Partition, deaf, before[i].ISR, before[i].PartitionEpoch, p.ISR, p.PartitionEpoch)
		}
	}
	c.Unstall(deaf)
	waitISR(ctx, t, c, "rep", 3)
	check.WaitAcked(ctx, 1000, "after it hears again")
	check.Stop()
	check.Verify(ctx, c.Addr())
}
