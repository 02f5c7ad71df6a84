package node_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/rpc"
	"github.com/strata-io/strata/testenv"
)

// TestLateOffsetCommitNeverLands: a node that stops hearing NATS holds
// an offset commit sent to it. Its sender gives up at the deadline, and
// the group commits newer offsets through the controller. When the node
// hears again, the old commit must not overwrite the newer one: the
// group's offset never moves back.
func TestLateOffsetCommitNeverLands(t *testing.T) {
	c := testenv.InProcess(t, 3, testenv.Options{Cuttable: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := newClient(t, c)
	createTopic(ctx, t, cl, 1, 1, nil, "done")
	adm := kadm.NewClient(cl)

	ctrl := controller(t, c)
	stalled := int32(1)
	if stalled == ctrl {
		stalled = 2
	}
	c.Stall(stalled)
	defer c.Unstall(stalled)

	// The old commit, as a gateway sends it, to the stalled node.
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation = "readers", -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "done"
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = 0, 5
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	msg := nats.NewMsg(rpc.GroupSubject("test") + "." + strconv.Itoa(int(stalled)))
	msg.Header.Set(rpc.HeaderAPIKey, strconv.Itoa(int(req.Key())))
	msg.Header.Set(rpc.HeaderAPIVersion, strconv.Itoa(int(req.GetVersion())))
	msg.Data = req.AppendTo(nil)
	oldCtx, oldCancel := context.WithTimeout(ctx, time.Second)
	defer oldCancel()
	rpc.SetDeadline(oldCtx, msg)
	if _, err := c.Conn().RequestMsgWithContext(oldCtx, msg); err == nil {
		t.Fatal("a stalled node answered")
	}

	// The newer commit, through the gateway.
	var o kadm.Offsets
	o.AddOffset("done", 0, 9, -1)
	if resp, err := adm.CommitOffsets(ctx, "readers", o); err != nil || resp.Error() != nil {
		t.Fatal(err, resp.Error())
	}
	c.Unstall(stalled)
	// The node now reads what it held; give it time to act on it.
	time.Sleep(2 * time.Second)
	offs, err := adm.FetchOffsets(ctx, "readers")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := offs.Lookup("done", 0); !ok || got.At != 9 {
		t.Fatalf("group offset %+v after the held commit was delivered, want 9", got)
	}
}

// TestCommittedOffsetsSurviveControllerFailover: an offset commit the
// coordinator acknowledged is what OffsetFetch answers afterwards, across
// controller failovers (stopped controllers and controllers cut off
// NATS), never an older value or none.
func TestCommittedOffsetsSurviveControllerFailover(t *testing.T) {
	c := testenv.InProcess(t, 3, testenv.Options{Cuttable: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.RequestTimeoutOverhead(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if r, err := adm.CreateTopic(ctx, 2, 3, nil, "offs"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	var acked int64
	next := int64(1)
	commitSome := func(n int) {
		for range n {
			offs := kadm.Offsets{}
			offs.Add(kadm.Offset{Topic: "offs", Partition: 0, At: next, LeaderEpoch: -1})
			offs.Add(kadm.Offset{Topic: "offs", Partition: 1, At: next, LeaderEpoch: -1})
			cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
			r, err := adm.CommitOffsets(cctx, "g", offs)
			ccancel()
			if err == nil && r.Ok() {
				acked = next
			}
			next++
		}
	}
	check := func(when string) {
		t.Helper()
		for {
			fctx, fcancel := context.WithTimeout(ctx, 2*time.Second)
			got, err := adm.FetchOffsets(fctx, "g")
			fcancel()
			if err == nil {
				for p := int32(0); p < 2; p++ {
					o, ok := got.Lookup("offs", p)
					if !ok || o.Err != nil || o.At < acked {
						t.Fatalf("%s: partition %d committed %+v (%v), last acknowledged commit %d", when, p, o, ok, acked)
					}
				}
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: fetch offsets: %v", when, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	commitSome(20)
	check("before faults")
	for i := range 6 {
		ctrl := controller(t, c)
		if i%2 == 0 {
			c.StopNode(ctrl)
			commitSome(20)
			check(fmt.Sprintf("round %d, controller %d stopped", i, ctrl))
			c.StartNode(ctrl)
		} else {
			c.Disconnect(ctrl)
			commitSome(20)
			check(fmt.Sprintf("round %d, controller %d cut off", i, ctrl))
			c.Reconnect(ctrl)
		}
		commitSome(5)
		check(fmt.Sprintf("round %d, healed", i))
	}
	t.Logf("last acknowledged commit %d of %d", acked, next-1)
}
