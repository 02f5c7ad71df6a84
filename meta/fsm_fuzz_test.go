package meta

import (
	"bytes"
	"errors"
	"maps"
	"testing"
)

// TestFSMRejectedRestoreWritesNothing: a restore whose manifest names a
// segment of another partition was once rejected only after the topic
// record was written; the batch committed it, the topic stood half
// created, and a corrected retry answered "already restored". Every
// command is checked whole before its first write.
func TestFSMRejectedRestoreWritesNothing(t *testing.T) {
	f := openTestFSM(t, t.TempDir())
	a := &applier{t: t, f: f}
	restore := func(segs ...TierSegment) *CreateTopic {
		c := testTopic("back", 2, 1)
		c.Restore = []RestoredPartition{{Segments: segs[:1]}, {Segments: segs[1:]}}
		return c
	}
	good := []TierSegment{{Topic: "back", Partition: 0, LastOffset: 9, ObjectKey: "a"}, {Topic: "back", Partition: 1, LastOffset: 9, ObjectKey: "b"}}
	for _, bad := range [][]TierSegment{
		{good[0], {Topic: "back", Partition: 0, LastOffset: 9, ObjectKey: "b"}}, // partition 0's segment in partition 1
		{good[0], {Topic: "other", Partition: 1, LastOffset: 9, ObjectKey: "b"}},
		{good[0], {Topic: "back", Partition: 1, BaseOffset: 10, LastOffset: 9, ObjectKey: "b"}},
		{good[0], {Topic: "back", Partition: 1, LastOffset: 9, LeaderEpoch: -3, ObjectKey: "b"}},
		{good[0], {Topic: "back", Partition: 1, LastOffset: 9}},
	} {
		before := stateOf(t, f)
		a.wantErr(ErrInvalidRequest, restore(bad...))
		if after := stateOf(t, f); !maps.EqualFunc(before, after, bytes.Equal) {
			t.Fatalf("a rejected restore %+v changed the state", bad)
		}
	}
	if r := a.apply(restore(good...))[0]; r.Err != nil || r.Value != 0 {
		t.Fatalf("corrected restore: %+v, want a fresh restore", r)
	}
}

// FuzzApply decodes the input as a command and applies it to a state
// that has a topic, offsets and tier segments. Invariants: decoding and
// applying never panic, and a rejected command (or one that does not
// decode) leaves the state exactly as it was.
func FuzzApply(f *testing.F) {
	for _, c := range allCommands() {
		f.Add(EncodeCommand(c))
	}
	bad := testTopic("back", 1, 1)
	bad.Restore = []RestoredPartition{{Segments: []TierSegment{{Topic: "back", Partition: 3, LastOffset: 9, ObjectKey: "k"}}}}
	f.Add(EncodeCommand(bad))
	dir := f.TempDir()
	var fsm *FSM
	var a *applier
	f.Fuzz(func(t *testing.T, in []byte) {
		if fsm == nil { // one state DB per fuzz worker: opening one per input is too slow
			var err error
			if fsm, err = OpenFSM(dir, nil, nil); err != nil {
				t.Fatal(err)
			}
			a = &applier{f: fsm}
			a.t = t
			a.mustApply(testTopic("orders", 3, 2), &CommitOffsets{Offsets: []Offset{{Group: "g", Topic: "orders", Offset: 4}}},
				&AddTierSegment{Segment: TierSegment{Topic: "orders", LastOffset: 9, ObjectKey: "k"}})
		}
		a.t = t
		cmd, err := DecodeCommand(in)
		if err != nil {
			if !errors.Is(err, ErrUnknownCommand) && !errors.Is(err, errShort) {
				t.Fatalf("decode error %v wraps no sentinel", err)
			}
			return
		}
		before := stateOf(t, fsm)
		r := a.apply(cmd)[0]
		if r.Err == nil {
			return
		}
		if after := stateOf(t, fsm); !maps.EqualFunc(before, after, bytes.Equal) {
			t.Fatalf("rejected %T (%v) changed the state", cmd, r.Err)
		}
	})
}

// stateOf is the state without the applied index.
func stateOf(t *testing.T, f *FSM) map[string][]byte {
	t.Helper()
	d := dump(t, f)
	delete(d, keyApplied)
	return d
}
