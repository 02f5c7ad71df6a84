package meta

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A commit whose caller gives up while its batch is still gathering is
// never applied, and a newer commit sent after it stays the group's
// offset: a client that timed out and committed again must not see its
// old offset come back.
func TestOffsetBatcherDropsCommitsOfCallersThatGaveUp(t *testing.T) {
	g := startGroup(t, 1, nil)
	s := g.leader()
	b := newOffsetBatcher(s, 300*time.Millisecond, 1000)
	t.Cleanup(b.close)
	at := func(offset int64) []Offset {
		return []Offset{{Group: "g", Topic: "t", Partition: 0, Offset: offset}}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.commit(ctx, at(5)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("commit past its deadline: %v, want %v", err, context.DeadlineExceeded)
	}
	offsets := func() []Offset {
		t.Helper()
		v := g.consistentView(context.Background())
		defer v.Close()
		offs, err := v.GroupOffsets("g")
		if err != nil {
			t.Fatal(err)
		}
		return offs
	}
	// Anything the commit could still have become would be applied by now.
	time.Sleep(500 * time.Millisecond)
	if offs := offsets(); len(offs) != 0 {
		t.Fatalf("a commit whose caller gave up was applied: %+v", offs)
	}

	if err := b.commit(context.Background(), at(9)); err != nil {
		t.Fatal(err)
	}
	offs := offsets()
	if len(offs) != 1 || offs[0].Offset != 9 {
		t.Fatalf("group offsets %+v, want only offset 9", offs)
	}
}
