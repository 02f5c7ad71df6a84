package node_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/testenv"
)

// TestCompactedTopic: a topic with cleanup.policy=compact on three
// replicas, written with many updates of a few keys (gzip and plain
// batches) and tombstones, is cleaned on every replica: a consumer from
// offset 0 reads far fewer records than were written, through the gaps
// without an error, and sees each key's latest value, the deleted keys
// gone. A record without a key is refused with INVALID_RECORD.
func TestCompactedTopic(t *testing.T) {
	c := testenv.InProcess(t, 3, testenv.Options{MaintainInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl := newClient(t, c)
	createTopic(ctx, t, cl, 1, 3, map[string]*string{"cleanup.policy": kmsg.StringPtr("compact"), "segment.bytes": kmsg.StringPtr("4096"),
		"min.cleanable.dirty.ratio": kmsg.StringPtr("0.01"), "delete.retention.ms": kmsg.StringPtr("0"), "segment.ms": kmsg.StringPtr("500")}, "table")
	const keys, rounds = 40, 60
	want := map[string]string{}
	for i, codec := range []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression()} {
		prod := newClient(t, c, kgo.DefaultProduceTopic("table"), kgo.ProducerBatchCompression(codec), kgo.ProducerLinger(0))
		for r := range rounds / 2 {
			var recs []*kgo.Record
			for k := range keys {
				v := fmt.Sprintf("v%d-%d", r, i)
				recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", k), Value: []byte(v)})
				want[fmt.Sprintf("k%d", k)] = v
			}
			if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for k := range 5 { // tombstones
		key := fmt.Sprintf("k%d", k)
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "table", Key: []byte(key)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		delete(want, key)
	}
	err := cl.ProduceSync(ctx, &kgo.Record{Topic: "table", Value: []byte("no key")}).FirstErr()
	if !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("a record without a key on a compacted topic: %v, want INVALID_RECORD", err)
	}
	written := keys*rounds + 5
	// segment.ms rolls the last updates out of the active segment (the
	// nodes' maintenance does, with no new write), so all of it may be
	// cleaned.

	for {
		got, n := consumeTable(ctx, t, c)
		if ctx.Err() != nil {
			t.Fatalf("still %d records of %d after cleaning (view %d keys, want %d)", n, written, len(got), len(want))
		}
		if n < written/4 && maps.Equal(got, want) && cleanedEverywhere(c, 3) {
			t.Logf("%d records written, %d left after cleaning", written, n)
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// consumeTable reads the whole of "table" from offset 0 and returns the
// latest value per key (a tombstone removing the key) and how many
// records it read; -1 when the end offset could not be read.
func consumeTable(ctx context.Context, t *testing.T, c *testenv.Cluster) (map[string]string, int) {
	t.Helper()
	cons := newClient(t, c, kgo.ConsumeTopics("table"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cons.Close()
	end, _, err := tryListOffset(ctx, cons, "table", 0, -1)
	if err != nil {
		return nil, -1 // a leader moving (LEADER_NOT_AVAILABLE): the caller asks again
	}
	view := map[string]string{}
	n := 0
	for next := int64(0); next < end; {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			if ctx.Err() != nil {
				return view, n
			}
			t.Fatalf("consuming a compacted topic: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			next = r.Offset + 1
			if r.Value == nil {
				delete(view, string(r.Key))
			} else {
				view[string(r.Key)] = string(r.Value)
			}
		})
	}
	return view, n
}

// cleanedEverywhere reports whether every replica of table-0 (nodes 1 to
// n) cleaned its own copy: each has a cleaner checkpoint.
func cleanedEverywhere(c *testenv.Cluster, n int32) bool {
	for id := int32(1); id <= n; id++ {
		if _, err := os.Stat(filepath.Join(c.DataDir(id), "partitions", "table-0", "cleaner-offset-checkpoint")); err != nil {
			return false
		}
	}
	return true
}

// TestCompactionLagsAndConfigs: min.compaction.lag.ms keeps a dirty log
// uncleaned while its records are younger; max.compaction.lag.ms has a
// log cleaned although its dirty ratio is below min.cleanable.dirty.ratio;
// a bad compaction config is refused with INVALID_CONFIG and the reason.
func TestCompactionLagsAndConfigs(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{MaintainInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newClient(t, c)
	adm := kadm.NewClient(cl)
	r, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": kmsg.StringPtr("compact"), "min.cleanable.dirty.ratio": kmsg.StringPtr("1.5")}, "bad")
	if err == nil {
		err = r.Err
	}
	if !errors.Is(err, kerr.InvalidConfig) || !strings.Contains(r.ErrMessage, "min.cleanable.dirty.ratio") {
		t.Fatalf("a dirty ratio of 1.5: %v (%q), want INVALID_CONFIG naming it", err, r.ErrMessage)
	}
	base := map[string]*string{"cleanup.policy": kmsg.StringPtr("compact"), "segment.bytes": kmsg.StringPtr("1024"), "segment.ms": kmsg.StringPtr("200")}
	with := func(kv ...string) map[string]*string {
		m := maps.Clone(base)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kmsg.StringPtr(kv[i+1])
		}
		return m
	}
	createTopic(ctx, t, cl, 1, 1, with("min.compaction.lag.ms", "3600000", "min.cleanable.dirty.ratio", "0.01"), "young")
	createTopic(ctx, t, cl, 1, 1, with("max.compaction.lag.ms", "300", "min.cleanable.dirty.ratio", "0.99"), "overdue")
	write := func(topic string, rounds int) {
		t.Helper()
		for r := range rounds {
			var recs []*kgo.Record
			for k := range 5 {
				recs = append(recs, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", k), Value: fmt.Appendf(nil, "v%d", r)})
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	checkpoint := func(topic string) int64 {
		b, err := os.ReadFile(filepath.Join(c.DataDir(1), "partitions", topic+"-0", "cleaner-offset-checkpoint"))
		if err != nil {
			return -1
		}
		lines := strings.Fields(string(b)) // version, count, first dirty offset, ...
		if len(lines) < 3 {
			return -1
		}
		n, _ := strconv.ParseInt(lines[2], 10, 64)
		return n
	}
	write("young", 40) // segment.ms (200 ms) rolls them out of the active segment
	write("overdue", 40)
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			if ctx.Err() != nil {
				t.Fatal(what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// overdue: its whole log dirty (ratio 1), cleaned at once.
	waitFor("the overdue topic was never cleaned", func() bool { return checkpoint("overdue") > 0 })
	first := checkpoint("overdue")
	// A little more: a dirty ratio far below 0.99, cleaned anyway once
	// its records pass max.compaction.lag.ms.
	write("overdue", 3)
	waitFor("max.compaction.lag.ms never had the overdue topic cleaned again", func() bool { return checkpoint("overdue") > first })
	// young: dirty, but every record younger than min.compaction.lag.ms.
	if cp := checkpoint("young"); cp > 0 {
		t.Fatalf("a topic with min.compaction.lag.ms=1h was cleaned (checkpoint %d)", cp)
	}
}
