package meta

import (
	"bytes"
	"fmt"
	"maps"
	"testing"
)

// TestReplaceTierSegments: a manifest switch is checked whole (fencing,
// the entries as named and consecutive, no gap, nothing claimed beyond
// them) before it writes; it retires the old objects; the retired records
// and the cleaner checkpoint go with the topic.
func TestReplaceTierSegments(t *testing.T) {
	f := openTestFSM(t, t.TempDir())
	a := &applier{t: t, f: f}
	a.mustApply(&RegisterNode{Node: Node{ID: 0}}, testTopic("t", 1, 1))
	seg := func(base, last int64, key string) TierSegment {
		return TierSegment{Topic: "t", Partition: 0, BaseOffset: base, LastOffset: last, ObjectKey: key}
	}
	for _, s := range []TierSegment{seg(0, 99, "a"), seg(100, 199, "b"), seg(200, 299, "c"), seg(250, 399, "d")} {
		a.mustApply(&AddTierSegment{Segment: s})
	}
	manifest := func() string {
		v := f.View()
		defer v.Close()
		segs, err := v.TierSegments("t", 0)
		if err != nil {
			t.Fatal(err)
		}
		out := ""
		for _, s := range segs {
			out += fmt.Sprintf("[%d,%d]%s ", s.BaseOffset, s.LastOffset, s.ObjectKey)
		}
		return out
	}
	if got := manifest(); got != "[0,99]a [100,199]b [200,299]c [250,399]d " {
		t.Fatalf("manifest %s", got)
	}
	replace := func(bases []int64, keys []string, s TierSegment) *ReplaceTierSegments {
		return &ReplaceTierSegments{OldBases: bases, OldKeys: keys, New: s, AtMs: 1000}
	}
	for _, c := range []struct {
		cmd  *ReplaceTierSegments
		want error
	}{
		{replace([]int64{0, 100}, []string{"a", "b"}, TierSegment{Topic: "t", Partition: 0, LastOffset: 199, ObjectKey: "n", LeaderEpoch: 1}), ErrStaleEpoch},
		{replace([]int64{0, 100}, []string{"a", "x"}, seg(0, 199, "n")), ErrManifestChanged},
		{replace([]int64{0, 200}, []string{"a", "c"}, seg(0, 299, "n")), ErrManifestChanged}, // not consecutive
		{replace([]int64{0, 100}, []string{"a", "b"}, seg(0, 198, "n")), ErrInvalidRequest},  // a gap at the end
		{replace([]int64{0, 100}, []string{"a", "b"}, seg(0, 200, "n")), ErrInvalidRequest},  // more than they held
		{replace([]int64{0, 100}, []string{"a", "b"}, seg(1, 199, "n")), ErrInvalidRequest},  // another start
		{replace([]int64{0, 100}, []string{"a", "b"}, seg(0, 199, "b")), ErrInvalidRequest},  // an old key reused
		{replace([]int64{0}, []string{"a", "b"}, seg(0, 99, "n")), ErrInvalidRequest},        // keys do not match
		{replace(nil, nil, seg(0, 99, "n")), ErrInvalidRequest},                              // nothing replaced
		{replace([]int64{0, 100}, []string{"a", "b"}, TierSegment{Topic: "u", ObjectKey: "n"}), ErrUnknownTopic},
	} {
		before := stateOf(t, f)
		a.wantErr(c.want, c.cmd)
		if after := stateOf(t, f); !maps.EqualFunc(before, after, bytes.Equal) {
			t.Fatalf("a rejected switch %+v changed the state", c.cmd)
		}
	}
	// c overlaps d: replacing c alone may end where d starts.
	a.mustApply(replace([]int64{0, 100}, []string{"a", "b"}, seg(0, 199, "ab")), replace([]int64{200}, []string{"c"}, seg(200, 249, "c2")))
	if got := manifest(); got != "[0,199]ab [200,249]c2 [250,399]d " {
		t.Fatalf("manifest after the switches: %s", got)
	}
	a.mustApply(&MarkTierCleaned{Topic: "t", Partition: 0, Offset: 250, AtMs: 1000}, &MarkTierCleaned{Topic: "t", Partition: 0, Offset: 400, AtMs: 5000})
	v := f.View()
	retired, err := v.RetiredObjects("t", 0)
	st, err2 := v.TierCleaner("t", 0)
	v.Close()
	if err != nil || err2 != nil || fmt.Sprint(retired) != "[{a 1000} {b 1000} {c 1000}]" {
		t.Fatalf("retired %v %v %v", retired, err, err2)
	}
	if st.FirstDirty != 400 || len(st.History) != 2 || st.TombstoneHorizon(6000, 2000) != 250 || st.TombstoneHorizon(7000, 2000) != 400 ||
		st.TombstoneHorizon(2000, 2000) != 0 {
		t.Fatalf("cleaner state %+v", st)
	}
	a.mustApply(&ForgetRetiredObjects{Topic: "t", Partition: 0, Keys: []string{"a", "c"}})
	v = f.View()
	retired, _ = v.RetiredObjects("t", 0)
	v.Close()
	if fmt.Sprint(retired) != "[{b 1000}]" {
		t.Fatalf("retired after forgetting a and c: %v", retired)
	}
	a.mustApply(&DeleteTopic{Name: "t"})
	for k := range stateOf(t, f) {
		if bytes.HasPrefix([]byte(k), []byte(keyRetired)) || bytes.HasPrefix([]byte(k), []byte(keyTierCleaner)) {
			t.Fatalf("%q outlived its topic", k)
		}
	}
}
