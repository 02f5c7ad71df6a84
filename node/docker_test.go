package node_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/testenv"
)

// TestDockerFaults runs three `strata node` containers, a gateway, NATS
// and MinIO (scratch images the Makefile builds) and, under an acks=all
// producer to a tiered topic that keeps little on local disk, in turn:
// SIGKILLs a partition leader's container and starts it again, pauses a
// node, cuts a node off the network and reconnects it, and restarts
// NATS. The checker then finds every acknowledged record where it was
// acknowledged, the oldest read back from MinIO.
func TestDockerFaults(t *testing.T) {
	c := testenv.Docker(t).Cluster(3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr), kgo.RecordRetries(1<<30),
		kgo.ProduceRequestTimeout(5*time.Second), kgo.RequestTimeoutOverhead(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	start := time.Now()
	stage := func(what string) { t.Logf("%6.1fs %s", time.Since(start).Seconds(), what) }
	healthy := waitHealthy(t, ctx, c, "at start")
	for {
		r, err := kadm.NewClient(cl).CreateTopic(ctx, 3, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2"),
			"remote.storage.enable": kadm.StringPtr("true"), "segment.bytes": kadm.StringPtr("16384"),
			"local.retention.bytes": kadm.StringPtr("32768")}, "dock")
		if err == nil && r.Err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("create topic: %v %v", err, r.Err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	healthy = waitHealthy(t, ctx, c, "topic created")
	check := testenv.StartChecker(t, cl, "dock", 200, 2000)
	defer check.Stop()
	group := testenv.StartGroupChecker(t, "dock", "readers", c.Addr)
	check.WaitAcked(ctx, 1000, "before faults")
	stage("before faults")

	leader := healthy.Nodes[slices.IndexFunc(healthy.Nodes, func(n gateway.NodeStatus) bool { return n.Leads > 0 })].ID
	other := leader%3 + 1
	c.Kill(leader)
	check.WaitAcked(ctx, 1000, "with a leader killed")
	stage("with a leader killed")
	c.Start(leader)
	waitHealthy(t, ctx, c, "after the killed node restarted")
	check.WaitAcked(ctx, 500, "after the killed node restarted")
	stage("after the killed node restarted")

	c.Pause(other)
	check.WaitAcked(ctx, 1000, "with a node paused")
	stage("with a node paused")
	c.Unpause(other)
	waitHealthy(t, ctx, c, "after the pause")
	stage("after the pause")

	c.Disconnect(leader)
	check.WaitAcked(ctx, 1000, "with a node off the network")
	stage("with a node off the network")
	c.Reconnect(leader)
	waitHealthy(t, ctx, c, "after reconnecting")
	stage("after reconnecting")

	c.RestartNATS()
	waitHealthy(t, ctx, c, "after NATS restarted")
	stage("healthy after NATS restarted")
	check.WaitAcked(ctx, 1000, "after NATS restarted")
	stage("after NATS restarted")
	// Every partition's local log must start past offset 0, so that the
	// oldest records are read back from MinIO only. The producer spreads
	// records unevenly (it avoids a slow node), so it runs until then.
	for p := range int32(3) {
		waitLocalStart(t, ctx, c, cl, p)
	}
	stage("local logs start past 0")
	check.Stop()
	stage("producer stopped")
	t.Logf("%d records acknowledged", check.Acked())
	check.Verify(ctx, c.Addr)
	stage("verified")
	group.WaitCaughtUp(ctx, check.Ends())
	group.Stop()
	group.VerifyCommitted(ctx, c.Addr)
}

// waitLocalStart waits until a partition of "dock" keeps its oldest
// records in the store only: its local log starts past offset 0.
func waitLocalStart(t *testing.T, ctx context.Context, c *testenv.DockerCluster, cl *kgo.Client, p int32) {
	t.Helper()
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		local, code, err := tryListOffset(cctx, cl, "dock", p, -4)
		cancel()
		if err == nil && code == 0 && local > 0 {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("partition %d's local log still starts at %d (error %d, %v); tier status: %s", p, local, code, err, adminGet(c, "/v1/tier/status"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// adminGet returns the body of a GET on the gateway's admin API, or the
// error.
func adminGet(c *testenv.DockerCluster, path string) string {
	resp, err := http.Get(c.AdminURL + path)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitHealthy waits until the gateway's admin API shows every node live
// and no partition under-replicated or offline.
func waitHealthy(t *testing.T, ctx context.Context, c *testenv.DockerCluster, what string) gateway.ClusterStatus {
	t.Helper()
	var st gateway.ClusterStatus
	for {
		st = gateway.ClusterStatus{}
		resp, err := http.Get(c.AdminURL + "/v1/cluster/status")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		live := 0
		for _, n := range st.Nodes {
			if n.Live {
				live++
			}
		}
		if err == nil && live == 3 && len(st.UnderReplicated) == 0 && len(st.Offline) == 0 {
			return st
		}
		if ctx.Err() != nil {
			t.Fatalf("%s: cluster not healthy: %+v (%v)", what, st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
