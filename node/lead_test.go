package node

import (
	"log/slog"
	"testing"
	"time"

	"github.com/strata-io/strata/meta"
	plog "github.com/strata-io/strata/node/log"
)

// TestLeadTakesHighWatermarkAboveFollowers: a follower whose log was
// emptied and restarted at the old leader's log start (126), while the
// high watermark it had heard was older (113), is made leader. Its high
// watermark is at once the log start, though no append or fetch moves
// it: before, waiters kept the follower's 113, and a producer retrying
// a batch written below 126 waited for ever (the fault suite's stalls).
func TestLeadTakesHighWatermarkAboveFollowers(t *testing.T) {
	l, err := plog.Open(t.TempDir(), plog.DefaultConfig(), plog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.TruncateFullyAndStartAt(126); err != nil {
		t.Fatal(err)
	}
	ol := &openLog{Log: l}
	ol.repl.init()
	ol.repl.hw.Store(113) // heard from the old leader before the log was emptied
	n := &Node{cfg: Config{ID: 3, ReplicaLagMax: time.Second}, logger: slog.New(slog.DiscardHandler)}
	n.lead(ol, meta.Partition{Topic: "t", Partition: 0, Leader: 3, LeaderEpoch: 4, PartitionEpoch: 9,
		Replicas: []int32{3, 1, 2}, ISR: []int32{3, 1, 2}})
	if hw := ol.repl.hw.Load(); hw != 126 {
		t.Fatalf("high watermark %d after taking over a log that starts at 126", hw)
	}
	if hw := ol.highWatermark(); hw != 126 {
		t.Fatalf("readers see the high watermark at %d", hw)
	}
}
