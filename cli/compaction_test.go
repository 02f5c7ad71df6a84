package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
)

// TestTopicCompaction: strata topic compaction shows each replica of a
// compacted topic's partition, leader and followers, with what its
// cleaner reclaimed once it has cleaned; a topic that is not compacted
// is not listed.
func TestTopicCompaction(t *testing.T) {
	c := testenv.InProcess(t, 3, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, admin := "--brokers="+c.Addr(), "--admin-url="+adminAPI(t, c)
	must := func(args ...string) string {
		t.Helper()
		out, errOut, code := strataCmd(t, "", args...)
		if code != 0 {
			t.Fatalf("strata %v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	if out := must("topic", "compaction", admin); !strings.Contains(out, "no compacted partitions") {
		t.Fatalf("with no compacted topic:\n%s", out)
	}
	must("topic", "create", b, "-r", "3", "-c", "cleanup.policy=compact", "-c", "segment.bytes=2048", "-c", "segment.ms=200",
		"-c", "min.cleanable.dirty.ratio=0.01", "users")
	must("topic", "create", b, "plain")
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.DefaultProduceTopic("users"))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for r := range 20 {
		var recs []*kgo.Record
		for k := range 10 {
			recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "user-%d", k), Value: fmt.Appendf(nil, "v%d", r)})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// segment.ms rolls the last updates out of the active segment; the
	// cleaners then take all of it.
	for {
		out := must("topic", "compaction", admin, "users", "plain")
		reclaimed := 0
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) >= 9 && f[0] == "users" && f[6] != "0" { // RECLAIMED is "N unit"
				reclaimed++
			}
		}
		if strings.Count(out, "leader") == 1 && strings.Count(out, "follower") == 2 && reclaimed == 3 && !strings.Contains(out, "plain") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("strata topic compaction never showed three cleaned replicas:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
