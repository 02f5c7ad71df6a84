package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
)

// TestLateOffsetCommitNeverLands: a node that stops hearing NATS holds
// the offset commits the group queue handed it. Their clients time out and
// commit newer offsets through another node. When the node hears again,
// the old commits must not overwrite the newer ones: the group's offset
// never moves back.
func TestLateOffsetCommitNeverLands(t *testing.T) {
	c := testenv.InProcess(t, 3, testenv.Options{Cuttable: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl := newClient(t, c, kgo.RetryTimeout(2*time.Minute))
	createTopic(ctx, t, cl, 1, 1, nil, "done")
	adm := kadm.NewClient(cl)

	ctrl := controller(t, c)
	stalled := int32(1)
	if stalled == ctrl {
		stalled = 2
	}
	c.Stall(stalled)
	defer c.Unstall(stalled)
	commit := func(offset int64) time.Duration {
		t.Helper()
		start := time.Now()
		var o kadm.Offsets
		o.AddOffset("done", 0, offset, -1)
		resp, err := adm.CommitOffsets(ctx, "readers", o)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatalf("commit %d: %v", offset, err)
		}
		return time.Since(start)
	}
	// Commit until one of them waited out a timeout: the stalled node
	// held it (the queue picks a member at random).
	var last int64
	for i := int64(1); last == 0; i++ {
		if i > 30 {
			t.Fatal("thirty commits and none went to the stalled node")
		}
		if took := commit(i); took > 5*time.Second {
			t.Logf("commit %d took %v: one attempt was held by node %d", i, took, stalled)
			last = i + 1
			commit(last)
		}
	}
	c.Unstall(stalled)
	// The node now reads what it held; give it time to act on it.
	time.Sleep(3 * time.Second)
	offs, err := adm.FetchOffsets(ctx, "readers")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := offs.Lookup("done", 0); !ok || got.At != last {
		t.Fatalf("group offset %+v after the held commit was delivered, want %d", got, last)
	}
}
