package cli

import (
	"context"
	"fmt"
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
			if code != 0 && strings.Contains(errOut, "no controller elected") && ctx.Err() == nil {
				time.Sleep(100 * time.Millisecond) // the stopped node led: an election is under way
				continue
			}
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

// TestTopicMove: `strata topic alter --replicas` moves a partition and
// `topic describe` shows where it ended; bad specs and a cancel with no
// move are one-line errors.
func TestTopicMove(t *testing.T) {
	c := testenv.InProcess(t, 2, testenv.Options{})
	b := "--brokers=" + c.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, errOut, code := strataCmd(t, "", "topic", "create", b, "-p", "1", "-r", "1", "moving"); code != 0 {
		t.Fatalf("create: %s%s", out, errOut)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	td, err := kadm.NewClient(cl).ListTopics(ctx, "moving")
	if err != nil {
		t.Fatal(err)
	}
	to := 3 - td["moving"].Partitions[0].Replicas[0] // the other of nodes 1 and 2
	out, errOut, code := strataCmd(t, "", "topic", "alter", b, "--replicas", fmt.Sprintf("0:%d", to), "moving")
	if code != 0 || !strings.Contains(out, "Moving moving-0 to nodes") {
		t.Fatalf("alter --replicas: exit %d: %s%s", code, out, errOut)
	}
	for {
		out, errOut, _ := strataCmd(t, "", "topic", "describe", b, "moving")
		out += errOut
		// Replicas and ISR both [to], and no move left.
		if strings.Count(out, fmt.Sprintf("[%d]", to)) == 2 && !strings.Contains(out, "Moving partition") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("describe after the move:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, tc := range []struct {
		want string
		args []string
	}{
		{"want PARTITION:NODE", []string{"--replicas", "0-1", "moving"}},
		{"not a number", []string{"--replicas", "0:x", "moving"}},
		{"INVALID_REPLICA_ASSIGNMENT", []string{"--replicas", "0:7", "moving"}},
		{"NO_REASSIGNMENT_IN_PROGRESS", []string{"--cancel-move", "0", "moving"}},
	} {
		_, errOut, code := strataCmd(t, "", append([]string{"topic", "alter", b}, tc.args...)...)
		if code != 1 || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("topic alter %v: exit %d, %q; want %q", tc.args, code, errOut, tc.want)
		}
	}
}
