package meta

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestOffsetsPartition checks the group → partition mapping against
// values from Java's String.hashCode (UTF-16, surrogate pairs included)
// with Kafka's Utils.abs, modulo 50.
func TestOffsetsPartition(t *testing.T) {
	for _, c := range []struct {
		group string
		want  int32
	}{
		{"my-group", 12},              // hashCode -1906497762
		{"console-consumer-12345", 6}, // 158455506
		{"grüße", 23},                 // 98768023
		{"😀emoji", 27},                // -1233692477: a surrogate pair
		{"", 0},
		{"Aa", 2112 % 50}, {"BB", 2112 % 50}, // Java's classic collision
	} {
		if got := OffsetsPartition(c.group); got != c.want {
			t.Errorf("OffsetsPartition(%q) = %d, want %d", c.group, got, c.want)
		}
	}
}

// TestOffsetsLog applies random commits, deletions and restarts to
// commits recorded before the view (as an upgraded cluster has them),
// and checks every partition of the view against a model after each step:
// the latest commit of each key, each at a distinct offset below the
// partition's end, later commits at higher offsets, and offsets that
// never change while their commit stands.
func TestOffsetsLog(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	dir := t.TempDir()
	f, err := OpenFSM(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &applier{t: t, f: f}
	a.mustApply(testTopic("orders", 4, 1))

	type key struct {
		group string
		part  int32
	}
	groups := []string{"g1", "g2", "billing", "grüße", "😀", "Aa", "BB"}
	latest := map[key]int64{}    // the committed offset value per key
	deleted := map[key]bool{}    // keys deleted and not committed since: a tombstone each
	placed := map[key]int64{}    // the log offset the view last showed it at
	lastEnd := map[int32]int64{} // each partition's end, never going back

	// Commits recorded before the view: written as the old format was.
	legacy := func() {
		txn := f.db.NewTransactionAt(a.index, true)
		for range 1 + rng.IntN(5) {
			k := key{groups[rng.IntN(len(groups))], rng.Int32N(4)}
			o := Offset{Group: k.group, Topic: "orders", Partition: k.part, Offset: rng.Int64N(1000)}
			e := o.encode()
			e = e[:len(e)-1] // LogOffset -1 is one varint byte: drop it
			if err := txn.Set(offsetKey(k.group, "orders", k.part), e); err != nil {
				t.Fatal(err)
			}
			latest[k] = o.Offset
			delete(placed, k)
		}
		if err := txn.CommitAt(a.index, nil); err != nil {
			t.Fatal(err)
		}
	}
	legacy()

	check := func(step int) {
		t.Helper()
		v := f.View()
		defer v.Close()
		from := map[int32]int64{}
		for p := range int32(OffsetsTopicPartitions) {
			from[p] = 0
		}
		log, ends, err := v.OffsetsLog(from, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[key]bool{}
		tombs := map[key]bool{}
		for p, os := range log {
			for i, o := range os {
				k := key{o.Group, o.Partition}
				if OffsetsPartition(o.Group) != p {
					t.Fatalf("step %d: group %s in partition %d", step, o.Group, p)
				}
				if i > 0 && o.LogOffset <= os[i-1].LogOffset {
					t.Fatalf("step %d: partition %d offsets out of order: %v", step, p, os)
				}
				if o.Deleted {
					if !deleted[k] || tombs[k] || o.LogOffset >= ends[p] {
						t.Fatalf("step %d: tombstone of %v at %d (deleted %v, twice %v, end %d)", step, k, o.LogOffset, deleted[k], tombs[k], ends[p])
					}
					tombs[k] = true
					continue
				}
				if o.Offset != latest[k] {
					t.Fatalf("step %d: %v shows %d, committed %d", step, k, o.Offset, latest[k])
				}
				if i > 0 && o.LogOffset <= os[i-1].LogOffset {
					t.Fatalf("step %d: partition %d offsets out of order: %v", step, p, os)
				}
				if o.LogOffset >= ends[p] {
					t.Fatalf("step %d: partition %d offset %d at or past its end %d", step, p, o.LogOffset, ends[p])
				}
				if at, ok := placed[k]; ok && at != o.LogOffset {
					t.Fatalf("step %d: %v moved from offset %d to %d without a commit", step, k, at, o.LogOffset)
				}
				placed[k] = o.LogOffset
				seen[k] = true
			}
			// Reading from a later offset gives the tail.
			if len(os) > 1 {
				mid := os[len(os)/2].LogOffset
				tail, _, err := v.OffsetsLog(map[int32]int64{p: mid}, 1<<20)
				if err != nil || !slices.EqualFunc(tail[p], os[len(os)/2:], func(a, b Offset) bool { return a.LogOffset == b.LogOffset }) {
					t.Fatalf("step %d: partition %d from %d: %v, %v", step, p, mid, tail[p], err)
				}
			}
		}
		for k := range latest {
			if !seen[k] {
				t.Fatalf("step %d: %v is missing from the view", step, k)
			}
		}
		for k := range deleted {
			if !tombs[k] {
				t.Fatalf("step %d: %v was deleted but the view has no tombstone for it", step, k)
			}
		}
		for p, end := range ends {
			if end < lastEnd[p] {
				t.Fatalf("step %d: partition %d end went back from %d to %d", step, p, lastEnd[p], end)
			}
			lastEnd[p] = end
		}
	}
	check(0)
	for step := 1; step <= 300; step++ {
		switch r := rng.IntN(20); {
		case r < 12:
			var offs []Offset
			for range 1 + rng.IntN(4) {
				k := key{groups[rng.IntN(len(groups))], rng.Int32N(4)}
				o := Offset{Group: k.group, Topic: "orders", Partition: k.part, Offset: rng.Int64N(1000)}
				offs = slices.DeleteFunc(offs, func(x Offset) bool { return x.Group == o.Group && x.Partition == o.Partition })
				offs = append(offs, o)
			}
			a.mustApply(&CommitOffsets{Offsets: offs})
			for _, o := range offs {
				k := key{o.Group, o.Partition}
				latest[k] = o.Offset
				delete(deleted, k) // its tombstone goes
				delete(placed, k)  // a new commit takes a new offset
			}
		case r < 14:
			g := groups[rng.IntN(len(groups))]
			a.mustApply(&DeleteOffsets{Group: g})
			for k := range latest {
				if k.group == g {
					delete(latest, k)
					delete(placed, k)
					deleted[k] = true
				}
			}
		case r < 15:
			f.Close()
			if f, err = OpenFSM(dir, nil, nil); err != nil {
				t.Fatal(err)
			}
			a.f = f
		default:
			// A commit's log offset is past every other in its partition.
			k := key{groups[rng.IntN(len(groups))], rng.Int32N(4)}
			a.mustApply(&CommitOffsets{Offsets: []Offset{{Group: k.group, Topic: "orders", Partition: k.part, Offset: 1}}})
			latest[k] = 1
			delete(placed, k)
			delete(deleted, k)
			v := f.View()
			log, _, err := v.OffsetsLog(map[int32]int64{OffsetsPartition(k.group): 0}, 1<<20)
			v.Close()
			if err != nil {
				t.Fatal(err)
			}
			os := log[OffsetsPartition(k.group)]
			if last := os[len(os)-1]; last.Group != k.group || last.Partition != k.part || last.Deleted {
				t.Fatalf("step %d: newest commit %v is not last in its partition: %+v", step, k, last)
			}
		}
		check(step)
	}
}

// TestOffsetsTombstonesBounded: a partition keeps its newest
// maxTombstones tombstones; a key committed again loses its tombstone.
func TestOffsetsTombstonesBounded(t *testing.T) {
	defer func(n int64) { maxTombstones = n }(maxTombstones)
	maxTombstones = 3
	a := &applier{t: t, f: openTestFSM(t, t.TempDir())}
	a.mustApply(testTopic("orders", 8, 1))
	for p := range int32(8) {
		a.mustApply(&CommitOffsets{Offsets: []Offset{{Group: "g", Topic: "orders", Partition: p, Offset: 1}}})
	}
	for p := range int32(6) {
		a.mustApply(&DeleteOffsets{Group: "g", Topic: "orders", Partitions: []int32{p}})
	}
	a.mustApply(&CommitOffsets{Offsets: []Offset{{Group: "g", Topic: "orders", Partition: 5, Offset: 2}}})
	v := a.f.View()
	defer v.Close()
	part := OffsetsPartition("g")
	log, _, err := v.OffsetsLog(map[int32]int64{part: 0}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var tombs, live []int32
	for _, o := range log[part] {
		if o.Deleted {
			tombs = append(tombs, o.Partition)
		} else {
			live = append(live, o.Partition)
		}
	}
	if !slices.Equal(tombs, []int32{3, 4}) || !slices.Equal(live, []int32{6, 7, 5}) {
		t.Fatalf("tombstones of partitions %v (want the newest three less the one committed again: 3, 4), live %v", tombs, live)
	}
}
