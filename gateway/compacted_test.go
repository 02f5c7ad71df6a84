package gateway_test

import (
	"context"
	"fmt"
	"maps"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
)

// TestCompactedTopicClients: franz-go, Sarama and librdkafka (kcat -C -e)
// read a cleaned compacted topic from offset 0, through its gaps, to its
// end, without an error, and agree on every key's latest value.
func TestCompactedTopicClients(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl := newClient(t, c.Addr(), kgo.DefaultProduceTopic("table"), kgo.ProducerLinger(0))
	compact := map[string]*string{"cleanup.policy": kadm.StringPtr("compact"), "segment.bytes": kadm.StringPtr("2048"),
		"min.cleanable.dirty.ratio": kadm.StringPtr("0.01"), "segment.ms": kadm.StringPtr("300")}
	if r, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, compact, "table"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	want := map[string]string{}
	const keys, rounds = 20, 30
	for r := range rounds {
		var recs []*kgo.Record
		for k := range keys {
			key, v := fmt.Sprintf("k%02d", k), fmt.Sprintf("v%d", r)
			recs = append(recs, &kgo.Record{Key: []byte(key), Value: []byte(v)})
			want[key] = v
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	written := keys * rounds

	// franz-go, until the cleaner has cleaned everything: segment.ms
	// rolls the last updates out of the active segment (the nodes'
	// maintenance does, with no new write), then each key is left once,
	// and the log ends in a batch emptied by the cleaner.
	var n int
	for {
		var got map[string]string
		got, n = readTable(ctx, t, c.Addr())
		if n == keys && maps.Equal(got, want) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("never cleaned: %d of %d records left", n, written)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Sarama.
	cfg := sarama.NewConfig()
	cons, err := sarama.NewConsumer([]string{c.Addr()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	pc, err := cons.ConsumePartition("table", 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	got, m := map[string]string{}, 0
	for m < n {
		select {
		case msg := <-pc.Messages():
			got[string(msg.Key)] = string(msg.Value)
			m++
		case err := <-pc.Errors():
			t.Fatalf("sarama: %v", err)
		case <-ctx.Done():
			t.Fatalf("sarama read %d of %d records", m, n)
		}
	}
	if !maps.Equal(got, want) {
		t.Fatalf("sarama's view %v, want %v", got, want)
	}

	// librdkafka: kcat stops at the end (-e), so it must get there.
	kcat := kcatPath(t)
	kctx, kcancel := context.WithTimeout(ctx, 30*time.Second)
	defer kcancel()
	out, err := exec.CommandContext(kctx, kcat, "-b", c.Addr(), "-C", "-t", "table", "-o", "beginning", "-e", "-q", "-f", "%k=%s\n").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat -C -e on a compacted topic: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	got = map[string]string{}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, "=")
		got[k] = v
	}
	if len(lines) != n || !maps.Equal(got, want) || strings.Contains(string(out), "ERROR") {
		t.Fatalf("kcat read %d lines (want %d):\n%s", len(lines), n, out)
	}
}

// readTable reads "table" from offset 0 to its end with franz-go: each
// key's latest value and how many records.
func readTable(ctx context.Context, t *testing.T, addr string) (map[string]string, int) {
	t.Helper()
	cons := newClient(t, addr, kgo.ConsumeTopics("table"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cons.Close()
	ends, err := kadm.NewClient(cons).ListEndOffsets(ctx, "table")
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup("table", 0)
	view, n := map[string]string{}, 0
	for next := int64(0); next < end.Offset; {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("franz-go on a compacted topic: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			view[string(r.Key)] = string(r.Value)
			next = r.Offset + 1
			n++
		})
	}
	return view, n
}
