package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
	"github.com/strata-io/strata/tier"
)

// adminAPI serves a gateway's admin API as `strata gateway --admin-addr`
// does, and returns its URL.
func adminAPI(t *testing.T, c *testenv.Cluster) string {
	mux := http.NewServeMux()
	c.Gateway.RegisterAdmin(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestTierCommands: `strata tier status`, `ls` and `restore` against a
// cluster whose topic has uploaded segments, then a restore into a
// second cluster that shares only the bucket.
func TestTierCommands(t *testing.T) {
	store, err := tier.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := testenv.InProcess(t, 1, testenv.Options{Tier: store, MaintainInterval: 50 * time.Millisecond})
	admin := "--admin-url=" + adminAPI(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The manual partitioner: the records name their partitions, and
	// both must get some (kgo's default is free to put all in one).
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.DefaultProduceTopic("history"), kgo.ProducerBatchMaxBytes(8<<10),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if r, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, map[string]*string{
		"remote.storage.enable": kadm.StringPtr("true"), "segment.bytes": kadm.StringPtr("16384"),
	}, "history"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	for i := range 400 {
		cl.Produce(ctx, &kgo.Record{Partition: int32(i % 2), Value: []byte(strings.Repeat("x", 200))}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	// Status shows both partitions once segments are uploaded.
	var status string
	for {
		out, errOut, code := strataCmd(t, "", "tier", "status", admin)
		if code != 0 {
			t.Fatalf("tier status: exit %d: %s", code, errOut)
		}
		status = out
		if strings.Count(out, "history") == 2 && !strings.Contains(out, "never") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no uploads shown:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []string{"TOPIC", "LAG", "LAST-UPLOAD", "node 1: store file://"} {
		if !strings.Contains(status, want) {
			t.Fatalf("tier status lacks %q:\n%s", want, status)
		}
	}

	// An open transaction shows where it holds partition 0 back.
	txp, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.DefaultProduceTopic("history"), kgo.TransactionalID("held"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer txp.Close()
	if err := txp.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txp.ProduceSync(ctx, &kgo.Record{Partition: 0, Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := strataCmd(t, "", "tier", "status", admin); code != 0 || !strings.Contains(out, "OPEN-TXN-AT") ||
		!regexp.MustCompile(`history\s+0\s.*\s200\s+-\n`).MatchString(out) {
		t.Fatalf("tier status with a transaction open at offset 200 of partition 0: exit %d:\n%s%s", code, out, errOut)
	}
	if err := txp.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}

	ls, errOut, code := strataCmd(t, "", "tier", "ls", admin, "--topic", "history")
	if code != 0 || !strings.Contains(ls, "BASE-OFFSET") || !strings.Contains(ls, "partition 0:") || !strings.Contains(ls, "partition 1:") {
		t.Fatalf("tier ls: exit %d: %s%s", code, ls, errOut)
	}
	if _, errOut, code := strataCmd(t, "", "tier", "ls", admin, "--topic", "nope"); code != 1 || !strings.Contains(errOut, `unknown topic "nope"`) {
		t.Fatalf("tier ls of an unknown topic: exit %d: %s", code, errOut)
	}
	if _, errOut, code := strataCmd(t, "", "tier", "ls", admin); code != 1 || !strings.Contains(errOut, "topic") {
		t.Fatalf("tier ls without --topic: exit %d: %s", code, errOut)
	}
	if _, errOut, code := strataCmd(t, "", "tier", "status", "--admin-url=http://127.0.0.1:1"); code != 1 || !strings.Contains(errOut, "cannot reach") {
		t.Fatalf("tier status with no gateway: exit %d: %s", code, errOut)
	}

	// A second cluster with the same bucket restores the topic.
	c2 := testenv.InProcess(t, 1, testenv.Options{Tier: store, MaintainInterval: 50 * time.Millisecond})
	admin2 := "--admin-url=" + adminAPI(t, c2)
	out, errOut, code := strataCmd(t, "", "tier", "restore", admin2, "--topic", "history")
	if code != 0 || !strings.Contains(out, "Restored topic history: 2 partitions") {
		t.Fatalf("tier restore: exit %d: %s%s", code, out, errOut)
	}
	// Asking again (a retry after a timeout, say) changes nothing.
	if out, errOut, code := strataCmd(t, "", "tier", "restore", admin2, "--topic", "history"); code != 0 || !strings.Contains(out, "Topic history is already restored") {
		t.Fatalf("second restore: exit %d: %s%s", code, out, errOut)
	}
	ls2, _, _ := strataCmd(t, "", "tier", "ls", admin2, "--topic", "history")
	if segs := func(s string) int { return strings.Count(s, "history-") }; segs(ls2) == 0 {
		t.Fatalf("restored manifest:\n%s\noriginal:\n%s", ls2, ls)
	}
}
