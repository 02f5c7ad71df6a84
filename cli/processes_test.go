package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/internal/natstest"
	"github.com/strata-io/strata/testenv"
)

// childArgs, set in a child's environment, makes the test binary run the
// strata command line instead of the tests: servers run as real
// processes.
const childArgs = "STRATA_TEST_CHILD_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(childArgs); args != "" {
		os.Exit(Run(append([]string{"strata"}, strings.Split(args, "\x1f")...)))
	}
	os.Exit(m.Run())
}

// child is a strata command running as a child process.
type child struct {
	cmd    *exec.Cmd
	errOut *syncBuffer
	done   chan error
	killed bool
}

// syncBuffer is a bytes.Buffer a child's stderr may write while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runServer runs a long-lived strata command as a child process until the
// test ends (or kill), then checks SIGTERM stops it cleanly within 5 s.
func runServer(t *testing.T, args ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0]), errOut: &syncBuffer{}, done: make(chan error, 1)}
	c.cmd.Env = append(os.Environ(), childArgs+"="+strings.Join(args, "\x1f"))
	c.cmd.Stderr = c.errOut
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() {
		if c.killed {
			return
		}
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-c.done:
			if err != nil {
				t.Errorf("strata %s: %v: %s", args[0], err, c.errOut.String())
			}
		case <-time.After(5 * time.Second):
			c.cmd.Process.Kill()
			t.Errorf("strata %s did not stop within 5s of SIGTERM", args[0])
		}
	})
	return c
}

// kill stops the child with SIGKILL, as a crash would, and waits for it.
func (c *child) kill() {
	c.killed = true
	c.cmd.Process.Kill()
	<-c.done
}

// TestNodeAndGatewayCommands runs `strata node` and two `strata gateway`s
// against a NATS server, as separate processes would: both gateways list
// the node as the broker, the node's topic-default flags take effect and
// DescribeConfigs reports them as broker settings.
func TestNodeAndGatewayCommands(t *testing.T) {
	ns := natstest.Start(t)
	url := ns.ClientURL()
	gw0, gw1 := freeAddr(t), freeAddr(t)
	nodeAdmin, gwAdmin, gw1Admin := freeAddr(t), freeAddr(t), freeAddr(t)
	runServer(t, "node", "--id", "1", "--data-dir", t.TempDir(), "--nats", url, "--raft-addr", freeAddr(t),
		"--admin-addr", nodeAdmin, "--log-retention-ms", "3600000", "--message-max-bytes", "2000")
	runServer(t, "gateway", "--id", "0", "--nats", url, "--kafka-addr", gw0, "--admin-addr", gwAdmin)
	runServer(t, "gateway", "--id", "1", "--nats", url, "--kafka-addr", gw1, "--admin-addr", gw1Admin)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(gw0), kgo.DisableIdempotentWrite(), kgo.DefaultProduceTopic("t"),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RecordRetries(3))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	// Both gateways list the node as the one broker, each at a port of a
	// gateway that stands for it.
	for _, gw := range []string{gw0, gw1} {
		cl1, err := kgo.NewClient(kgo.SeedBrokers(gw))
		if err != nil {
			t.Fatal(err)
		}
		var bs kadm.BrokerDetails
		var lerr error
		testenv.WaitFor(ctx, t, 100*time.Millisecond, func() bool {
			bs, lerr = kadm.NewClient(cl1).ListBrokers(ctx)
			return lerr == nil && len(bs) == 1 && bs[0].NodeID == 1
		}, func() string { return fmt.Sprintf("gateway %s does not list node 1 alone: %v %v", gw, bs, lerr) })
		if a := net.JoinHostPort(bs[0].Host, strconv.Itoa(int(bs[0].Port))); a == gw0 || a == gw1 {
			t.Fatalf("node 1 is listed at %s, a gateway's own listener", a)
		}
		cl1.Close()
	}
	for {
		r, err := adm.CreateTopic(ctx, 2, 1, map[string]*string{"segment.bytes": kadm.StringPtr("1048576")}, "t")
		if err == nil && r.Err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("create topic: %v %v", err, r.Err)
		}
		time.Sleep(100 * time.Millisecond) // the node may still be registering
	}
	// The answering gateway's view may not have the new topic yet.
	var rc kadm.ResourceConfig
	for {
		rcs, err := adm.DescribeTopicConfigs(ctx, "t")
		if err == nil {
			rc, err = rcs.On("t", nil)
		}
		if err == nil && rc.Err == nil && len(rc.Configs) > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("describe configs: %v %v", err, rc.Err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got := map[string]string{}
	for _, c := range rc.Configs {
		got[c.Key] = c.MaybeValue() + " " + c.Source.String()
	}
	for k, want := range map[string]string{
		"retention.ms":      "3600000 STATIC_BROKER_CONFIG",
		"max.message.bytes": "2000 STATIC_BROKER_CONFIG",
		"segment.bytes":     "1048576 DYNAMIC_TOPIC_CONFIG",
		"retention.bytes":   "-1 DEFAULT_CONFIG",
	} {
		if got[k] != want {
			t.Errorf("%s: %q, want %q", k, got[k], want)
		}
	}

	// The node's message-max-bytes applies; small records go through
	// either gateway.
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: make([]byte, 3000)}).FirstErr(); !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("3000-byte record with --message-max-bytes 2000: %v", err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("fits")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(gw1), kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	fs := cons.PollFetches(ctx)
	if err := fs.Err0(); err != nil || fs.NumRecords() != 1 {
		t.Fatalf("consume through the second gateway: %v, %d records", err, fs.NumRecords())
	}

	// Each process's admin address answers health checks and serves its
	// Prometheus metrics; the gateways' together saw the produce (either
	// may lead the topic's partitions).
	scrape := func(addr string) string {
		for _, path := range []string{"/healthz", "/readyz"} {
			if resp, err := http.Get("http://" + addr + path); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s%s: %v %v", addr, path, err, resp)
			}
		}
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	for body, want := range map[string][]string{
		scrape(nodeAdmin): {`strata_partitions_leader{node="1"} 2`, `strata_partition_log_end_offset{node="1",partition=`, `strata_meta_raft_state{node="1",state="leader"} 1`, "go_goroutines"},
		scrape(gwAdmin) + scrape(gw1Admin): {`strata_kafka_requests_total{api="Metadata",version=`, `strata_kafka_requests_total{api="Produce",version=`,
			`strata_kafka_bytes_in_total{topic="t"}`, "strata_kafka_connections", "process_cpu_seconds_total"},
	} {
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("/metrics lacks %s", w)
			}
		}
	}
}

func TestNodeRejectsBadTopicDefault(t *testing.T) {
	_, stderr, code := strataCmd(t, "", "node", "--id", "1", "--data-dir", t.TempDir(), "--nats", "nats://127.0.0.1:1",
		"--raft-addr", "127.0.0.1:0", "--log-retention-ms", "soon")
	if code != 1 || !strings.Contains(stderr, "--log-retention-ms") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestNodeRejectsBadStreamAddr(t *testing.T) {
	_, stderr, code := strataCmd(t, "", "node", "--id", "1", "--data-dir", t.TempDir(), "--nats", "nats://127.0.0.1:1",
		"--raft-addr", "127.0.0.1:0", "--stream-addr", "bogus")
	if code != 1 || !strings.Contains(stderr, "--stream-addr") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestNodeRejectsBadTierURL(t *testing.T) {
	_, stderr, code := strataCmd(t, "", "node", "--id", "1", "--data-dir", t.TempDir(), "--nats", "nats://127.0.0.1:1",
		"--raft-addr", "127.0.0.1:0", "--tier-url", "s3://bucket/p?endpoint=127.0.0.1:1&insecure=true")
	if code != 1 || !strings.Contains(stderr, "no credentials") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}
