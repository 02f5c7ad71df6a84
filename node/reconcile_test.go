package node_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
	"github.com/strata-io/strata/tier"
)

// TestReconcileOrphans: the metadata leader removes, after the grace
// period, an object no manifest references and whatever lands under a
// deleted topic, then forgets the deleted topic; recorded segments,
// other clusters' and foreign objects stay.
func TestReconcileOrphans(t *testing.T) {
	tierStores(t, func(t *testing.T, store tier.Store) {
		c := testenv.InProcess(t, 1, testenv.Options{Tier: store, MaintainInterval: 50 * time.Millisecond,
			TierOrphanGrace: time.Second, TierReconcileInterval: 100 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(8<<10))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		adm := kadm.NewClient(cl)
		m := c.Nodes[1].Member
		ids := map[string][16]byte{}
		for _, name := range []string{"keep", "gone"} {
			if r, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{
				"remote.storage.enable": kadm.StringPtr("true"), "segment.bytes": kadm.StringPtr("16384"),
			}, name); err != nil || r.Err != nil {
				t.Fatal(err, r.Err)
			}
			for i := range 300 {
				cl.Produce(ctx, &kgo.Record{Topic: name, Value: []byte(strings.Repeat("v", 200) + string(rune('a'+i%26)))}, nil)
			}
			v := m.Server().FSM().View()
			topic, _, _ := v.Topic(name)
			v.Close()
			ids[name] = topic.ID
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		keepSegs, _ := waitGapFree(ctx, t, m, "keep")
		for len(keepSegs) < 3 {
			time.Sleep(50 * time.Millisecond)
			keepSegs, _ = waitGapFree(ctx, t, m, "keep")
		}
		put := func(key string) {
			t.Helper()
			if err := store.Put(ctx, key, strings.NewReader("orphan"), 6); err != nil {
				t.Fatal(err)
			}
		}
		orphan := tier.SegmentKey("keep", ids["keep"], 0, 1<<40, 3) + ".index" // a killed upload's
		foreign := "notes/readme.txt"
		unknown := tier.SegmentKey("other", [16]byte{9}, 0, 0, 0) + ".log" // another cluster's
		put(orphan)
		put(foreign)
		put(unknown)
		if r, err := adm.DeleteTopics(ctx, "gone"); err != nil || r["gone"].Err != nil {
			t.Fatal(err, r["gone"].Err)
		}
		exists := func(key string) bool {
			found := false
			store.List(ctx, key, func(o tier.Object) error { found = found || o.Key == key; return nil })
			return found
		}
		// Once the deleting leader has removed the topic's objects, an
		// upload that was in flight lands: only the reconciler sees it.
		for exists(tier.TopicPrefix("gone", ids["gone"]) + "topic.json") {
			if ctx.Err() != nil {
				t.Fatal("the deleted topic's objects stay")
			}
			time.Sleep(5 * time.Millisecond)
		}
		late := tier.SegmentKey("gone", ids["gone"], 0, 1<<40, 0) + ".log"
		put(late)
		for {
			v := m.Server().FSM().View()
			deleted, err := v.DeletedTopics()
			v.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !exists(orphan) && !exists(late) && len(deleted) == 0 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("orphan there: %v, late object there: %v, deleted topics %v", exists(orphan), exists(late), deleted)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !exists(foreign) || !exists(unknown) {
			t.Fatalf("reconciler removed objects that are not this cluster's: foreign %v, unknown topic %v", exists(foreign), exists(unknown))
		}
		v := m.Server().FSM().View()
		segs, _ := v.TierSegments("keep", 0)
		v.Close()
		for _, s := range segs {
			for _, suffix := range []string{".log", ".index", ".timeindex", ".epochs"} {
				if key := strings.TrimSuffix(s.ObjectKey, ".log") + suffix; !exists(key) {
					t.Fatalf("recorded object %s removed", key)
				}
			}
		}
	})
}
