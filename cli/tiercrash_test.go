package cli

import (
	"bytes"
	"context"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/internal/natstest"
	"github.com/strata-io/strata/meta"
	"github.com/strata-io/strata/tier"
)

// TestNodeKilledMidUpload kills a `strata node` process with SIGKILL
// while it is writing a segment to the tier, three times, under an
// acks=all producer. After each restart the node uploads the segment
// again; in the end the manifest holds every closed segment exactly once
// (contiguous, no overlap), every acknowledged record reads back at its
// offset, and the reconciler has removed what the killed uploads left.
func TestNodeKilledMidUpload(t *testing.T) {
	ns := natstest.Start(t)
	tierDir, dataDir, raftAddr := t.TempDir(), t.TempDir(), freeAddr(t)
	nodeArgs := []string{"node", "--id", "1", "--data-dir", dataDir, "--nats", ns.ClientURL(), "--raft-addr", raftAddr,
		"--admin-addr", "", "--tier-url", "file://" + tierDir, "--tier-orphan-grace", "2s", "--tier-reconcile-interval", "200ms"}
	node := runServer(t, nodeArgs...)
	nc := ns.Connect(t)
	gw, err := gateway.Start(gateway.Config{Cluster: "strata", Conn: nc, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(gw.Addr()), kgo.DefaultProduceTopic("crash"), kgo.RecordRetries(1<<30),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(512<<10), kgo.MaxBufferedRecords(2000),
		// A request in flight to the killed node gets no answer: give up on
		// it after 3 s rather than kgo's 20 s default.
		kgo.ProduceRequestTimeout(2*time.Second), kgo.RequestTimeoutOverhead(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for {
		r, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, map[string]*string{
			"remote.storage.enable": kadm.StringPtr("true"), "segment.bytes": kadm.StringPtr("2097152"),
		}, "crash")
		if err == nil && r.Err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("create topic: %v %v", err, r.Err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The producer runs throughout; acked maps each acknowledged offset to
	// its value.
	var mu sync.Mutex
	acked := map[int64][]byte{}
	ackedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	stop := make(chan struct{})
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := make([]byte, 1024)
			for j := range v {
				v[j] = byte(rng.Uint32())
			}
			cl.Produce(ctx, &kgo.Record{Value: v}, func(r *kgo.Record, err error) {
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("record %d: %v", i, err)
					}
					return
				}
				mu.Lock()
				acked[r.Offset] = r.Value
				mu.Unlock()
			})
		}
	}()

	t0 := time.Now()
	partial := 0
	for round := range 3 {
		// Wait for a Put in progress (the store's temporary file), then
		// kill the node at once.
		deadline := time.Now().Add(30 * time.Second)
		for !segmentPut(tmpFiles(t, tierDir)) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: no upload started within 30s (%d records acked)", round, ackedCount())
			}
			time.Sleep(time.Millisecond)
		}
		t.Logf("round %d: upload seen at %s, %d acked", round, time.Since(t0), ackedCount())
		node.kill()
		if segmentPut(tmpFiles(t, tierDir)) {
			partial++
		}
		before := ackedCount()
		time.Sleep(300 * time.Millisecond) // the producer retries meanwhile
		node = runServer(t, nodeArgs...)
		for ackedCount() < before+500 {
			if ctx.Err() != nil {
				t.Fatalf("round %d: produce did not resume after the restart: %s", round, node.errOut.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	close(stop)
	<-produced
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if partial == 0 {
		t.Fatal("no kill caught an upload in progress: the test proved nothing")
	}

	// Every closed segment ends up recorded once, and the reconciler
	// leaves only what the manifest references.
	mc := meta.NewClient(nc, "strata")
	var segs []meta.TierSegment
	for {
		r, err := mc.Read(ctx, meta.ReadRequest{Kind: "tier", Topic: "crash", Partition: 0})
		if err == nil {
			segs = r.Tier
		}
		stray := strayObjects(t, tierDir, segs)
		st, serr := gw.TierStatus(ctx)
		if err == nil && serr == nil && len(segs) > 0 && len(stray) == 0 && len(tmpFiles(t, tierDir)) == 0 && uploaded(st) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("tier did not settle: %d segments, stray %v, temporary %v, err %v", len(segs), stray, tmpFiles(t, tierDir), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	next := int64(0)
	for _, s := range segs {
		if s.BaseOffset != next || s.LastOffset < s.BaseOffset {
			t.Fatalf("manifest not contiguous at offset %d: segment %d-%d", next, s.BaseOffset, s.LastOffset)
		}
		next = s.LastOffset + 1
	}

	// Every acknowledged record reads back at its offset.
	cons, err := kgo.NewClient(kgo.SeedBrokers(gw.Addr()), kgo.ConsumeTopics("crash"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	want := ackedCount()
	seen := 0
	for expect := int64(0); seen < want; {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume after %d records: %v", seen, err)
		}
		for _, r := range fs.Records() {
			if r.Offset != expect {
				t.Fatalf("offset %d after %d: a gap or a duplicate", r.Offset, expect-1)
			}
			expect++
			mu.Lock()
			v, ok := acked[r.Offset]
			mu.Unlock()
			if ok {
				if !bytes.Equal(v, r.Value) {
					t.Fatalf("offset %d holds other bytes than were acknowledged", r.Offset)
				}
				seen++
			}
		}
	}
	t.Logf("%d records acknowledged and read back; %d segments recorded once; %d kills caught a segment upload, whose remains were reclaimed",
		want, len(segs), partial)
}

// uploaded reports that the node has no closed segment left to upload.
func uploaded(st gateway.TierStatus) bool {
	for _, n := range st.Nodes {
		for _, p := range n.Partitions {
			if p.LagBytes > 0 {
				return false
			}
		}
		if len(n.Partitions) == 0 {
			return false
		}
	}
	return len(st.Nodes) > 0
}

// segmentPut reports a temporary file of a segment's object (not of a
// manifest) among files.
func segmentPut(files []string) bool {
	for _, f := range files {
		name := filepath.Base(f)
		for _, s := range []string{".log.", ".index.", ".timeindex.", ".epochs."} {
			if strings.Contains(name, s) {
				return true
			}
		}
	}
	return false
}

// tmpFiles are the tier directory's unfinished Puts.
func tmpFiles(t *testing.T, dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() && strings.HasSuffix(p, ".strata-tmp") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// strayObjects are segment objects of the tier directory no manifest
// entry references.
func strayObjects(t *testing.T, dir string, segs []meta.TierSegment) []string {
	refs := map[string]bool{}
	for _, s := range segs {
		refs[s.ObjectKey] = true
	}
	store, err := tier.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	store.List(context.Background(), "", func(o tier.Object) error {
		if _, logKey, ok := tier.ParseObjectKey(o.Key); ok && !refs[logKey] {
			out = append(out, o.Key)
		}
		return nil
	})
	return out
}
