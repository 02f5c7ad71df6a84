package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
)

// TestClusterStatus: `strata cluster status` lists the nodes, the
// controller and the gateway; with a node stopped it shows the node down
// and its partitions under-replicated.
func TestClusterStatus(t *testing.T) {
	c := testenv.InProcess(t, 3, testenv.Options{})
	admin := "--admin-url=" + adminAPI(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if r, err := kadm.NewClient(cl).CreateTopic(ctx, 3, 3, nil, "replicated"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	status := func(want ...string) string {
		t.Helper()
		for {
			out, errOut, code := strataCmd(t, "", "cluster", "status", admin)
			if code != 0 {
				t.Fatalf("cluster status: exit %d: %s", code, errOut)
			}
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(out, w)
			}
			if ok {
				return out
			}
			if ctx.Err() != nil {
				t.Fatalf("cluster status lacks %q:\n%s", want, out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	out := status("under-replicated: 0, offline: 0", "Partitions: 3")
	for _, want := range []string{"Controller: node", "NODE", "GATEWAY", "Tier upload lag"} {
		if !strings.Contains(out, want) || strings.Count(out, " live ") != 3 {
			t.Fatalf("cluster status lacks %q or three live nodes:\n%s", want, out)
		}
	}
	c.StopNode(3)
	out = status("DOWN", "under-replicated: 3", "UNDER-REPLICATED")
	if strings.Count(out, " live ") != 2 {
		t.Fatalf("two live nodes expected:\n%s", out)
	}
	if _, errOut, code := strataCmd(t, "", "cluster", "status", "--admin-url=127.0.0.1:1"); code != 1 || !strings.Contains(errOut, "cannot reach") {
		t.Fatalf("no gateway: exit %d: %s", code, errOut)
	}
}
