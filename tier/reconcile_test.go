package tier

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseObjectKey(t *testing.T) {
	id := [16]byte{0xab, 1}
	seg := SegmentKey("my-topic", id, 3, 120, 2)
	for _, suffix := range []string{".log", ".index", ".timeindex", ".epochs"} {
		got, logKey, ok := ParseObjectKey(seg + suffix)
		if !ok || got != id || logKey != seg+".log" {
			t.Errorf("%s: %x %q %v", seg+suffix, got, logKey, ok)
		}
	}
	for _, key := range []string{
		TopicPrefix("my-topic", id) + "topic.json", TopicPrefix("my-topic", id) + "3/manifest.json",
		"readme.txt", "other/x.log", "t-abc/0/1.log", seg + ".bak",
	} {
		if _, _, ok := ParseObjectKey(key); ok {
			t.Errorf("%s parsed as a segment object", key)
		}
	}
}

// TestReconcile: orphans of live and deleted topics older than the grace
// go; recorded segments, manifests, young orphans, unknown topics' and
// foreign objects stay; a killed Put's temporary file is swept.
func TestReconcile(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	d, err := OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	live, gone, unknown := [16]byte{1}, [16]byte{2}, [16]byte{3}
	old := time.Now().Add(-2 * time.Hour)
	put := func(key string, aged bool) {
		t.Helper()
		if err := d.Put(ctx, key, strings.NewReader("data"), 4); err != nil {
			t.Fatal(err)
		}
		if aged {
			if err := os.Chtimes(filepath.Join(root, key), old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	recorded := SegmentKey("a", live, 0, 0, 1)
	orphan := SegmentKey("a", live, 0, 100, 1)   // killed before recording
	reupload := SegmentKey("a", live, 0, 0, 0)   // an earlier leader's attempt at the same segment
	young := SegmentKey("a", live, 0, 200, 1)    // still on its way to the manifest
	deletedOld := SegmentKey("b", gone, 1, 0, 0) // a deleted topic's leftovers
	var keep, remove []string
	for _, s := range segmentSuffixes {
		put(recorded+s, true)
		put(orphan+s, true)
		put(reupload+s, true)
		put(young+s, false)
		put(deletedOld+s, true)
		put(SegmentKey("c", unknown, 0, 0, 0)+s, true)
		keep = append(keep, recorded+s, young+s, SegmentKey("c", unknown, 0, 0, 0)+s)
		remove = append(remove, orphan+s, reupload+s, deletedOld+s)
	}
	for _, k := range []string{TopicPrefix("a", live) + "topic.json", TopicPrefix("a", live) + "0/manifest.json", "readme.txt"} {
		put(k, true)
		keep = append(keep, k)
	}
	put(TopicPrefix("b", gone)+"topic.json", true)
	remove = append(remove, TopicPrefix("b", gone)+"topic.json")
	tmp := filepath.Join(root, "a-01000000000000000000000000000000", "0", "x.log.123"+tmpSuffix)
	if err := os.WriteFile(tmp, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(tmp, old, old)

	state := ReconcileState{Live: map[[16]byte]bool{live: true}, Referenced: map[string]bool{recorded + ".log": true},
		Deleted: map[[16]byte]bool{gone: true}}
	res, err := Reconcile(ctx, d, state, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed != len(remove) || res.Young != len(segmentSuffixes) || res.Partial != 1 || len(res.DeletedEmpty) != 1 || res.DeletedEmpty[0] != gone {
		t.Fatalf("result %+v; want %d removed, %d young, 1 partial, topic 2 empty", res, len(remove), len(segmentSuffixes))
	}
	var left []string
	d.List(ctx, "", func(o Object) error { left = append(left, o.Key); return nil })
	slices.Sort(left)
	slices.Sort(keep)
	if !slices.Equal(left, keep) {
		t.Fatalf("left %v\nwant %v", left, keep)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("temporary file of a killed Put not swept: %v", err)
	}

	// A deleted topic with a young object is not yet empty.
	put(deletedOld+".log", false)
	res, err = Reconcile(ctx, d, state, time.Now().Add(-time.Hour))
	if err != nil || res.Removed != 0 || len(res.DeletedEmpty) != 0 {
		t.Fatalf("second pass %+v %v", res, err)
	}
}
