package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/rpc"
	"github.com/strata-io/strata/meta"
	"github.com/strata-io/strata/testenv"
	"github.com/strata-io/strata/tier"
)

// countingStore counts an object store's requests and bytes.
type countingStore struct {
	tier.Store
	gets, puts, deletes, lists atomic.Int64
	got, put                   atomic.Int64
}

func (s *countingStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	s.puts.Add(1)
	s.put.Add(size)
	return s.Store.Put(ctx, key, r, size)
}

func (s *countingStore) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	s.gets.Add(1)
	rc, err := s.Store.Get(ctx, key, offset, length)
	if err != nil {
		return rc, err
	}
	return countingReader{rc, &s.got}, nil
}

func (s *countingStore) Delete(ctx context.Context, keys ...string) error {
	s.deletes.Add(1)
	return s.Store.Delete(ctx, keys...)
}

func (s *countingStore) List(ctx context.Context, prefix string, fn func(tier.Object) error) error {
	s.lists.Add(1)
	return s.Store.List(ctx, prefix, fn)
}

type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n.Add(int64(n))
	return n, err
}

// TestTieredCompaction: a tiered compacted topic gets ten times its local
// retention of random keyed updates and tombstones (plain and gzip, from
// an idempotent producer). The uploaded segments are compacted in the
// bucket: the manifest switches to compacted objects, a reader holding
// a replaced entry still reads it until file.delete.delay.ms has passed,
// then the replaced objects are gone. A consumer from offset 0, which
// reads most of the log from the bucket through the gateway, sees each
// key's latest value; so does one of a fresh cluster that restored the
// topic from the bucket alone.
func TestTieredCompaction(t *testing.T) {
	tierStores(t, func(t *testing.T, store tier.Store) {
		seed := testSeed(t)
		rng := rand.New(rand.NewPCG(seed, 7))
		cs := &countingStore{Store: store}
		c := testenv.InProcess(t, 1, testenv.Options{Tier: cs, GatewayTier: true, MaintainInterval: 50 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cl := newClient(t, c)
		const localRetention = 32 << 10
		const deleteDelay = 4 * time.Second
		createTopic(ctx, t, cl, 1, 1, map[string]*string{"cleanup.policy": kmsg.StringPtr("compact"), "remote.storage.enable": kmsg.StringPtr("true"),
			"segment.bytes": kmsg.StringPtr("16384"), "local.retention.bytes": kmsg.StringPtr(fmt.Sprint(localRetention)),
			"min.cleanable.dirty.ratio": kmsg.StringPtr("0.2"), "delete.retention.ms": kmsg.StringPtr("0"), "segment.ms": kmsg.StringPtr("300"),
			"file.delete.delay.ms": kmsg.StringPtr(fmt.Sprint(deleteDelay.Milliseconds()))}, "table")

		want := map[string]string{}
		written, bytes := 0, 0
		for round := 0; bytes < 10*localRetention; round++ {
			codec := kgo.NoCompression()
			if round%3 == 1 {
				codec = kgo.GzipCompression()
			}
			prod := newClient(t, c, kgo.DefaultProduceTopic("table"), kgo.ProducerBatchCompression(codec), kgo.ProducerLinger(0))
			var recs []*kgo.Record
			for range 20 + rng.IntN(40) {
				key := fmt.Sprintf("k%02d", rng.IntN(60))
				r := &kgo.Record{Key: []byte(key)}
				if rng.IntN(20) == 0 {
					delete(want, key) // a tombstone
				} else {
					r.Value = fmt.Appendf(nil, "%s-r%d-%s", key, round, strings.Repeat("x", rng.IntN(200)))
					want[key] = string(r.Value)
				}
				recs = append(recs, r)
				bytes += len(r.Key) + len(r.Value) + 10
			}
			if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			prod.Close()
			written += len(recs)
		}
		t.Logf("seed %d: %d records, about %d KiB, %d keys alive", seed, written, bytes>>10, len(want))

		// Catch replaced entries (each switch retires the entries it
		// replaced): until file.delete.delay.ms has passed they still
		// read.
		member := c.Nodes[1].Member
		var replaced []meta.RetiredObject
		testenv.WaitFor(ctx, t, 10*time.Millisecond, func() bool {
			v := member.Server().FSM().View()
			retired, err := v.RetiredObjects("table", 0)
			v.Close()
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range retired {
				if time.Since(time.UnixMilli(r.RetiredAtMs)) < deleteDelay-time.Second {
					replaced = append(replaced, r)
				}
			}
			return len(replaced) > 0
		}, func() string {
			st := compactionOf(context.Background(), t, c)
			return fmt.Sprintf("the uploaded segments were never compacted: %+v, bucket %+v; manifest %v", st, st.Remote, manifestOf(t, member))
		})
		for _, r := range replaced {
			for _, key := range tier.SegmentObjects(r.ObjectKey)[:4] { // log, indexes, epochs
				rc, err := store.Get(ctx, key, 0, -1)
				if err != nil {
					t.Fatalf("object %s of an entry replaced %s ago: %v", key, time.Since(time.UnixMilli(r.RetiredAtMs)), err)
				}
				rc.Close()
			}
		}

		// The whole log: compacted, with each key's latest value.
		var n int
		var got map[string]string
		testenv.WaitFor(ctx, t, 200*time.Millisecond, func() bool {
			got, n = consumeTable(ctx, t, c)
			m := manifestOf(t, member)
			return n >= 0 && n < written/3 && maps.Equal(got, want) && compactedManifest(m) && tierEnd(m) == endOffset(ctx, t, cl)
		}, func() string {
			return fmt.Sprintf("%d of %d records left; view %d keys, want %d; %+v", n, written, len(got), len(want), compactionOf(context.Background(), t, c))
		})
		if st, _ := c.Gateway.RemoteReadStats(); st.FetchedBytes == 0 {
			t.Fatal("the consumer read nothing from the bucket")
		}
		// The replaced objects go once the delay has passed.
		for _, s := range replaced {
			testenv.WaitFor(ctx, t, 100*time.Millisecond, func() bool {
				rc, err := store.Get(ctx, s.ObjectKey, 0, 1)
				if err == nil {
					rc.Close()
				}
				return err != nil
			}, func() string { return fmt.Sprintf("replaced object %s never deleted", s.ObjectKey) })
		}
		st := compactionOf(ctx, t, c)
		if st.Remote == nil || st.Remote.Cleans == 0 || st.Remote.BytesReclaimed <= 0 || st.Remote.CleanedTo <= 0 {
			t.Fatalf("compaction status %+v, bucket %+v", st, st.Remote)
		}
		t.Logf("%d records left of %d; bucket: %+v; store requests: %d GET (%d KiB), %d PUT (%d KiB), %d DELETE",
			n, written, *st.Remote, cs.gets.Load(), cs.got.Load()>>10, cs.puts.Load(), cs.put.Load()>>10, cs.deletes.Load())

		// A fresh cluster restores the compacted topic from the bucket.
		topics, err := kadm.NewClient(cl).ListTopics(ctx, "table")
		if err != nil {
			t.Fatal(err)
		}
		mt := meta.Topic{Name: "table", ID: topics["table"].ID, Partitions: 1}
		end := tierEnd(manifestOf(t, member))
		testenv.WaitFor(ctx, t, 20*time.Millisecond, func() bool {
			pm, err := tier.ReadPartitionManifest(ctx, store, mt, 0)
			return err == nil && len(pm.Segments) > 0 && pm.Segments[len(pm.Segments)-1].LastOffset+1 == end
		}, func() string { return fmt.Sprintf("the bucket's manifest never reached offset %d", end) })
		cl.Close()
		c.Close()
		c2 := testenv.InProcess(t, 1, testenv.Options{Tier: store, GatewayTier: true, MaintainInterval: 50 * time.Millisecond})
		resp, err := c2.Conn().Request(rpc.TierSubject("test", "restore"), []byte(`{"topic":"table"}`), 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var reply tier.RestoreReply
		if err := json.Unmarshal(resp.Data, &reply); err != nil || reply.Error != "" || reply.EndOffsets[0] != end {
			t.Fatalf("restore: %s %v, want end %d", resp.Data, err, end)
		}
		got, n2 := consumeTable(ctx, t, c2)
		if !maps.Equal(got, want) || n2 > n {
			t.Fatalf("restored view: %d records, %d keys (want %d); equal %v", n2, len(got), len(want), maps.Equal(got, want))
		}
	})
}

func manifestOf(t *testing.T, m *meta.Member) []meta.TierSegment {
	t.Helper()
	v := m.Server().FSM().View()
	defer v.Close()
	segs, err := v.TierSegments("table", 0)
	if err != nil {
		t.Fatal(err)
	}
	return segs
}

func containsKey(segs []meta.TierSegment, key string) bool {
	for _, s := range segs {
		if s.ObjectKey == key {
			return true
		}
	}
	return false
}

// compactedManifest reports whether every entry but the last few is a
// compacted object.
func compactedManifest(segs []meta.TierSegment) bool {
	n := 0
	for _, s := range segs {
		if compactedKey(s.ObjectKey) {
			n++
		}
	}
	return n > 0
}

func tierEnd(segs []meta.TierSegment) int64 {
	if len(segs) == 0 {
		return 0
	}
	return segs[len(segs)-1].LastOffset + 1
}

func endOffset(ctx context.Context, t *testing.T, cl *kgo.Client) int64 {
	end, _, err := tryListOffset(ctx, cl, "table", 0, -1)
	if err != nil {
		return -1
	}
	return end
}

// compactionOf is table-0's compaction state on its leader.
func compactionOf(ctx context.Context, t *testing.T, c *testenv.Cluster) rpc.PartitionCompaction {
	t.Helper()
	st, err := c.Gateway.CompactionStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range st.Nodes {
		for _, p := range n.Partitions {
			if p.Topic == "table" && p.Leader {
				return p
			}
		}
	}
	t.Fatalf("no compaction status of table-0: %+v", st)
	return rpc.PartitionCompaction{}
}

// testSeed is a randomized test's seed: STRATA_SEED when set (to replay
// one), else the clock's.
func testSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("STRATA_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (STRATA_SEED=%d replays it)", seed, seed)
	return seed
}

// failingCleans is a store whose uploads of compacted segments' logs
// fail, and the node's deletes of what it uploaded, while fail is set:
// a remote clean then leaves orphans behind it (its indexes, epochs and
// producer state uploaded, nothing recorded, nothing deleted).
type failingCleans struct {
	tier.Store
	fail         atomic.Bool
	failedPuts   atomic.Int64
	failedDelete atomic.Int64
}

// compactedKey: the object's name (not its topic's directory, whose id
// may start with c) is a compacted segment's.
func compactedKey(key string) bool { return strings.Contains(path.Base(key), "-c") }

func (s *failingCleans) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if s.fail.Load() && compactedKey(key) && strings.HasSuffix(key, ".log") {
		s.failedPuts.Add(1)
		return fmt.Errorf("test: upload of %s refused", key)
	}
	return s.Store.Put(ctx, key, r, size)
}

func (s *failingCleans) Delete(ctx context.Context, keys ...string) error {
	// The node dropping what it uploaded names a segment's objects, its
	// log first; the reconciler names what it listed.
	if s.fail.Load() && len(keys) > 0 && compactedKey(keys[0]) && strings.HasSuffix(keys[0], ".log") {
		s.failedDelete.Add(1)
		return fmt.Errorf("test: delete of %s refused", keys[0])
	}
	return s.Store.Delete(ctx, keys...)
}

// TestTieredCompactionOrphans: a remote clean that fails halfway through
// its uploads, and cannot delete what it uploaded, leaves orphans that
// the reconciler removes once they pass the grace period; once the store
// works again the clean goes through, and the bucket holds no compacted
// object the manifest does not name (or retired, awaiting deletion).
func TestTieredCompactionOrphans(t *testing.T) {
	dir, err := tier.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := &failingCleans{Store: dir}
	store.fail.Store(true)
	c := testenv.InProcess(t, 1, testenv.Options{Tier: store, MaintainInterval: 50 * time.Millisecond,
		TierOrphanGrace: 2 * time.Second, TierReconcileInterval: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := newClient(t, c)
	createTopic(ctx, t, cl, 1, 1, map[string]*string{"cleanup.policy": kmsg.StringPtr("compact"), "remote.storage.enable": kmsg.StringPtr("true"),
		"segment.bytes": kmsg.StringPtr("16384"), "local.retention.bytes": kmsg.StringPtr("32768"), "min.cleanable.dirty.ratio": kmsg.StringPtr("0.2"),
		"segment.ms": kmsg.StringPtr("300"), "file.delete.delay.ms": kmsg.StringPtr("500")}, "table")
	want := map[string]string{}
	for r := range 40 {
		var recs []*kgo.Record
		for k := range 50 {
			v := fmt.Sprintf("v%d-%s", r, strings.Repeat("x", 100))
			recs = append(recs, &kgo.Record{Topic: "table", Key: fmt.Appendf(nil, "k%d", k), Value: []byte(v)})
			want[fmt.Sprintf("k%d", k)] = v
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	compactedObjects := func() map[string]bool {
		out := map[string]bool{}
		err := store.Store.List(context.Background(), "", func(o tier.Object) error {
			if compactedKey(o.Key) {
				out[o.Key] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// Orphans appear, and go.
	var orphans map[string]bool
	testenv.WaitFor(ctx, t, 50*time.Millisecond, func() bool {
		orphans = compactedObjects()
		return len(orphans) > 0 && store.failedDelete.Load() > 0
	}, func() string {
		st := compactionOf(context.Background(), t, c)
		return fmt.Sprintf("no orphan left by a failing clean: %d uploads refused, %d deletes refused, %d compacted objects; %+v %+v",
			store.failedPuts.Load(), store.failedDelete.Load(), len(orphans), st, st.Remote)
	})
	left := 0
	testenv.WaitFor(ctx, t, 100*time.Millisecond, func() bool {
		now := compactedObjects()
		left = 0
		for k := range orphans {
			if now[k] {
				left++
			}
		}
		return left == 0
	}, func() string {
		return fmt.Sprintf("%d of %d orphans of a failed clean never removed", left, len(orphans))
	})
	// The store works again: the clean goes through, and leaves nothing
	// unnamed.
	store.fail.Store(false)
	member := c.Nodes[1].Member
	var (
		got     map[string]string
		n       int
		unnamed int
	)
	testenv.WaitFor(ctx, t, 200*time.Millisecond, func() bool {
		got, n = consumeTable(ctx, t, c)
		named := map[string]bool{}
		v := member.Server().FSM().View()
		segs, _ := v.TierSegments("table", 0)
		retired, _ := v.RetiredObjects("table", 0)
		v.Close()
		for _, s := range segs {
			for _, k := range tier.SegmentObjects(s.ObjectKey) {
				named[k] = true
			}
		}
		for _, r := range retired {
			for _, k := range tier.SegmentObjects(r.ObjectKey) {
				named[k] = true
			}
		}
		unnamed = 0
		for k := range compactedObjects() {
			if !named[k] {
				unnamed++
			}
		}
		return maps.Equal(got, want) && compactedManifest(segs) && unnamed == 0 && n < 2000/2
	}, func() string {
		return fmt.Sprintf("view of %d keys (want %d, equal %v), %d records, %d compacted objects unnamed", len(got), len(want), maps.Equal(got, want), n, unnamed)
	})
	t.Logf("%d records left of 2000; %d refused uploads, %d refused deletes before the store came back", n, store.failedPuts.Load(), store.failedDelete.Load())
}
