package node_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
	"github.com/strata-io/strata/tier"
)

// TestDiskHighWatermark: with the store down, closed segments cannot be
// uploaded and local retention keeps them; once the disk passes its
// high-water mark the node refuses produce with KAFKA_STORAGE_ERROR
// (retriable) and deletes nothing; a producer retrying gets through once
// space is freed, and every record is there from offset 0.
func TestDiskHighWatermark(t *testing.T) {
	dir, err := tier.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := &testenv.FaultStore{Store: dir}
	store.Set(testenv.StoreDown)
	var usedPct atomic.Uint64
	usedPct.Store(50)
	c := testenv.InProcess(t, 1, testenv.Options{Tier: store, MaintainInterval: 20 * time.Millisecond,
		DiskUsage: func() (uint64, uint64, error) { return usedPct.Load(), 100, nil }})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.DefaultProduceTopic("full"), kgo.RecordRetries(1<<30),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(4<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if r, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, map[string]*string{"remote.storage.enable": kadm.StringPtr("true"),
		"segment.bytes": kadm.StringPtr("16384"), "local.retention.bytes": kadm.StringPtr("1")}, "full"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	value := []byte(strings.Repeat("d", 1000))
	for range 100 {
		cl.Produce(ctx, &kgo.Record{Value: value}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	usedPct.Store(96)
	time.Sleep(100 * time.Millisecond) // a few maintenance ticks
	once, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.DefaultProduceTopic("full"), kgo.DisableIdempotentWrite(), kgo.RecordRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer once.Close()
	if err := once.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); !errors.Is(err, kerr.KafkaStorageError) || !kerr.IsRetriable(err) {
		t.Fatalf("produce on a full disk: %v", err)
	}

	// A producer retries until space is freed.
	acked := make(chan error, 1)
	cl.Produce(ctx, &kgo.Record{Value: []byte("after")}, func(_ *kgo.Record, err error) { acked <- err })
	select {
	case err := <-acked:
		t.Fatalf("acknowledged on a full disk: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	usedPct.Store(60)
	if err := <-acked; err != nil {
		t.Fatal(err)
	}

	// Nothing was deleted: the store was down, so no segment was
	// uploaded, and local retention of 1 byte kept them all.
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.ConsumeTopics("full"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for n := 0; n < 101; {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		for _, r := range fs.Records() {
			if r.Offset != int64(n) {
				t.Fatalf("offset %d, want %d", r.Offset, n)
			}
			n++
		}
	}
}
