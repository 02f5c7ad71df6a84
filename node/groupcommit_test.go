package node_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kadm"
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
