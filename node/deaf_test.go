package node_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/meta"
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

// TestCutControllerTakesNoLeadership: the controller is cut off NATS
// (its Raft connections stay, so it stays controller for a while). The
// other nodes' heartbeats stop reaching it, one after another: it must
// not judge the first to fall silent dead while the next is still
// "heard", and move that one's partitions onto itself, where no client
// can reach them. Several rounds, since the order of the silences is
// chance.
func TestCutControllerTakesNoLeadership(t *testing.T) {
	c := testenv.InProcess(t, 3, testenv.Options{Cuttable: true})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cl := newClient(t, c)
	createTopic(ctx, t, cl, 12, 2, nil, "cut")
	waitISR(ctx, t, c, "cut", 2)
	for round := range 4 {
		ctrl := controller(t, c)
		before := map[int32]bool{}
		for _, p := range partitions(t, c, "cut") {
			before[p.Partition] = p.Leader == ctrl
		}
		c.Disconnect(ctrl)
		// Raft still runs on the controller's own connections: any
		// node's metadata shows what it decides, until it hands over.
		for deadline := time.Now().Add(2500 * time.Millisecond); time.Now().Before(deadline); {
			for _, p := range nodePartitions(t, c.Nodes[ctrl].Member, "cut") {
				if p.Leader == ctrl && !before[p.Partition] {
					t.Fatalf("round %d: controller %d, cut off NATS, made itself leader of partition %d (isr %v)",
						round, ctrl, p.Partition, p.ISR)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		c.Reconnect(ctrl)
		waitISR(ctx, t, c, "cut", 2)
	}
}

// TestCutLeaderKeepsISR: a leader cut off NATS (its Raft connections
// stay) sees its followers fall silent, but the silence is its own: it
// must not shrink its ISRs to itself. The controller did once, being
// the one node that can still change the metadata when cut off NATS: its
// followers' lag ran out before it stopped remembering the others'
// heartbeats; the new controller then moved leadership off it and found
// no other in-sync replica, so the partition went offline until it came
// back. A replica lag shorter than the session timeout makes that order
// certain.
func TestCutLeaderKeepsISR(t *testing.T) {
	c := testenv.InProcess(t, 3, testenv.Options{Cuttable: true, ReplicaLagMax: 500 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newClient(t, c)
	createTopic(ctx, t, cl, 3, 3, nil, "rep")
	waitISR(ctx, t, c, "rep", 3)
	cut := controller(t, c)
	if !slices.ContainsFunc(partitions(t, c, "rep"), func(p meta.Partition) bool { return p.Leader == cut }) {
		t.Skipf("the controller, node %d, leads no partition: %+v", cut, partitions(t, c, "rep"))
	}
	c.Disconnect(cut)
	defer c.Reconnect(cut)
	moved := false
	for deadline := time.Now().Add(8 * time.Second); time.Now().Before(deadline); {
		moved = true
		for _, p := range partitions(t, c, "rep") {
			if p.Leader < 0 || (len(p.ISR) == 1 && p.ISR[0] == cut) {
				t.Fatalf("partition %d went offline with node %d cut off NATS: %+v", p.Partition, cut, p)
			}
			moved = moved && p.Leader != cut
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !moved {
		t.Fatalf("node %d, cut off NATS, still leads: %+v", cut, partitions(t, c, "rep"))
	}
}
