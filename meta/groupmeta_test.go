package meta

import (
	"testing"
)

// TestGroupMetadataLog: a group's metadata takes the next offset of its
// __consumer_offsets partition, among the commits; written again, it
// moves to the new offset; deleted, a tombstone stands at the next one,
// until the group is recorded again.
func TestGroupMetadataLog(t *testing.T) {
	a := &applier{t: t, f: openTestFSM(t, t.TempDir())}
	a.mustApply(testTopic("orders", 1, 1))
	part := OffsetsPartition("g")
	type rec struct {
		offset  int64
		group   bool
		deleted bool
		value   string
	}
	read := func() []rec {
		t.Helper()
		v := a.f.View()
		defer v.Close()
		log, _, err := v.OffsetsLog(map[int32]int64{part: 0}, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		var out []rec
		for _, o := range log[part] {
			if o.Group == "g" {
				out = append(out, rec{o.LogOffset, o.IsGroupMetadata(), o.Deleted, string(o.Value)})
			}
		}
		return out
	}
	check := func(want ...rec) {
		t.Helper()
		got := read()
		if len(got) != len(want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		}
	}
	a.mustApply(&CommitOffsets{Offsets: []Offset{{Group: "g", Topic: "orders", Offset: 5}}})
	a.mustApply(&PutGroupMetadata{Group: "g", Value: []byte("gen1")})
	check(rec{0, false, false, ""}, rec{1, true, false, "gen1"})
	a.mustApply(&PutGroupMetadata{Group: "g", Value: []byte("gen2")})
	check(rec{0, false, false, ""}, rec{2, true, false, "gen2"})
	a.mustApply(&PutGroupMetadata{Group: "g"})
	check(rec{0, false, false, ""}, rec{3, true, true, ""})
	a.mustApply(&PutGroupMetadata{Group: "g"}) // nothing left to delete
	check(rec{0, false, false, ""}, rec{3, true, true, ""})
	a.mustApply(&PutGroupMetadata{Group: "g", Value: []byte("gen3\xff\x00")})
	check(rec{0, false, false, ""}, rec{4, true, false, "gen3\xff\x00"})
	v := a.f.View()
	defer v.Close()
	if b, ok, err := v.GroupMetadata("g"); err != nil || !ok || string(b) != "gen3\xff\x00" {
		t.Fatalf("GroupMetadata: %q %v %v", b, ok, err)
	}
	if gs, _ := v.OffsetGroups(); len(gs) != 1 || gs[0] != "g" {
		t.Fatalf("groups with offsets %v: group metadata is not an offset", gs)
	}
	if os, _ := v.GroupOffsets("g"); len(os) != 1 {
		t.Fatalf("group offsets %+v: group metadata is not an offset", os)
	}
}
