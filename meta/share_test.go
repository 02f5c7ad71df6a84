package meta

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestShareState: a share-partition's state is written whole, refused
// from an older leader or with batches out of order (leaving the state as
// it was), survives a restart, and goes with its group, its topic, or its
// topic's deletion.
func TestShareState(t *testing.T) {
	dir := t.TempDir()
	f := openTestFSM(t, dir)
	a := &applier{t: t, f: f}
	a.mustApply(testTopic("orders", 2, 1), testTopic("audit", 1, 1))
	st := ShareState{Group: "q", Topic: "orders", Partition: 1, LeaderEpoch: 0, Start: 5,
		Batches: []ShareBatch{{5, 7, 0, 2}, {8, 8, 2, 1}}, UpdateMs: 1}
	a.mustApply(&WriteShareState{State: st})
	read := func() (ShareState, bool) {
		t.Helper()
		v := a.f.View()
		defer v.Close()
		s, ok, err := v.ShareState("q", "orders", 1)
		if err != nil {
			t.Fatal(err)
		}
		return s, ok
	}
	if got, ok := read(); !ok || fmt.Sprint(got) != fmt.Sprint(st) {
		t.Fatalf("read back %+v, wrote %+v", got, st)
	}
	// A new leader: the old one's writes are refused.
	// (Leaderless, then led again: the leader epoch moves twice.)
	a.mustApply(&ChangeLeader{Topic: "orders", Partition: 1, Leader: -1, ISR: []int32{1}})
	a.mustApply(&ChangeLeader{Topic: "orders", Partition: 1, Leader: 1, ISR: []int32{1}, PartitionEpoch: 1})
	old := st
	old.Start = 9
	a.wantErr(ErrStaleEpoch, &WriteShareState{State: old})
	bad := st
	bad.LeaderEpoch, bad.Batches = 2, []ShareBatch{{8, 8, 2, 1}, {5, 7, 0, 2}}
	a.wantErr(ErrInvalidRequest, &WriteShareState{State: bad})
	a.wantErr(ErrUnknownTopic, &WriteShareState{State: ShareState{Group: "q", Topic: "nope", LeaderEpoch: 2}})
	if got, _ := read(); got.Start != 5 {
		t.Fatalf("a refused write changed the state: %+v", got)
	}
	// Survives a restart.
	f.Close()
	a.f = openTestFSM(t, dir)
	if got, ok := read(); !ok || got.Start != 5 {
		t.Fatalf("after a restart: %+v %v", got, ok)
	}
	// Deleted with the topic, by topic, by group.
	for _, s := range []ShareState{{Group: "q", Topic: "orders", Partition: 0}, {Group: "q", Topic: "audit"}, {Group: "r", Topic: "audit"}} {
		if s.Partition == 1 {
			s.LeaderEpoch = 2
		}
		a.mustApply(&WriteShareState{State: s})
	}
	count := func(group string) int {
		v := a.f.View()
		defer v.Close()
		ss, err := v.ShareStates(group)
		if err != nil {
			t.Fatal(err)
		}
		return len(ss)
	}
	if count("q") != 3 || count("r") != 1 {
		t.Fatalf("q has %d states, r %d", count("q"), count("r"))
	}
	a.mustApply(&DeleteTopic{Name: "audit"})
	if count("q") != 2 || count("r") != 0 {
		t.Fatalf("after deleting the topic: q %d, r %d", count("q"), count("r"))
	}
	a.mustApply(&DeleteShareState{Group: "q", Topic: "orders"})
	if count("q") != 0 {
		t.Fatalf("after deleting q's orders state: %d", count("q"))
	}
}

// TestResetShareState: a reset from outside the leader sets the start,
// drops what was in flight and moves the state epoch, so the leader's
// next write, carrying the epoch it loaded, is refused.
func TestResetShareState(t *testing.T) {
	a := &applier{t: t, f: openTestFSM(t, t.TempDir())}
	a.mustApply(testTopic("orders", 2, 1))
	st := ShareState{Group: "q", Topic: "orders", Partition: 0, Start: 5, Batches: []ShareBatch{{5, 7, 0, 2}}}
	a.mustApply(&WriteShareState{State: st})
	a.mustApply(&ResetShareState{Group: "q", Topic: "orders", Starts: map[int32]int64{0: 100, 1: Uninitialized}})
	v := a.f.View()
	got, _, _ := v.ShareState("q", "orders", 0)
	other, ok, _ := v.ShareState("q", "orders", 1)
	v.Close()
	if got.Start != 100 || got.Batches != nil || got.StateEpoch != 1 {
		t.Fatalf("after the reset: %+v", got)
	}
	if !ok || other.Start != Uninitialized || other.StateEpoch != 1 {
		t.Fatalf("partition 1 after the reset: %+v %v", other, ok)
	}
	a.wantErr(ErrStaleEpoch, &WriteShareState{State: st}) // the leader's old state
	st.StateEpoch, st.Start, st.Batches = 1, 100, nil
	a.mustApply(&WriteShareState{State: st})
	a.wantErr(ErrUnknownTopic, &ResetShareState{Group: "q", Topic: "orders", Starts: map[int32]int64{7: 1}})
	a.wantErr(ErrInvalidRequest, &ResetShareState{Group: "q", Topic: "orders", Starts: map[int32]int64{0: -5}})
}

// BenchmarkShareStateWrites measures what durable share state costs: each
// op is one share-partition's state written through Raft on three voters
// (as a leader does after an acknowledgement batch), by 16 partition
// leaders at once, with 1, 20 and 200 batches in the state; beside it, in
// the same run, a one-offset commit, the baseline.
//
//	go test -run '^$' -bench ShareStateWrites ./meta
func BenchmarkShareStateWrites(b *testing.B) {
	c := startCluster(b, 3, 3)
	ctrl := c.controller()
	ctx := context.Background()
	if res, err := ctrl.Propose(ctx, testTopic("t", 16, 1)); err != nil || res.Err != nil {
		b.Fatal(err, res)
	}
	for _, batches := range []int{0, 1, 20, 200} {
		name := fmt.Sprintf("batches=%d", batches)
		if batches == 0 {
			name = "offset-commit"
		}
		b.Run(name, func(b *testing.B) {
			// Written as each partition's leader: in its leader epoch,
			// read again should an election move it.
			var epochs [16]atomic.Int32
			readEpoch := func(p int) {
				v := ctrl.Server().FSM().View()
				defer v.Close()
				part, _, err := v.Partition("t", int32(p))
				if err != nil {
					b.Error(err)
				}
				epochs[p].Store(part.LeaderEpoch)
			}
			for p := range epochs {
				readEpoch(p)
			}
			var next atomic.Int64
			var lat latencies
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						var cmd Command = &CommitOffsets{Offsets: []Offset{{Group: "g", Topic: "t", Partition: int32(w), Offset: i}}}
						if batches > 0 {
							s := ShareState{Group: "q", Topic: "t", Partition: int32(w), LeaderEpoch: epochs[w].Load(), Start: i * 1000, UpdateMs: i}
							for k := range int64(batches) {
								s.Batches = append(s.Batches, ShareBatch{First: i*1000 + 2*k, Last: i*1000 + 2*k + 1, State: int8(k % 3), Deliveries: 1})
							}
							cmd = &WriteShareState{State: s}
						}
						t0 := time.Now()
						res, err := ctrl.Propose(ctx, cmd)
						if err == nil {
							err = res.Err
						}
						if errors.Is(err, ErrStaleEpoch) {
							readEpoch(w) // an election: written again in the new epoch
							next.Add(-1)
							continue
						}
						if err != nil && !errors.Is(err, context.Canceled) {
							b.Error(err)
							return
						}
						lat.add(time.Since(t0))
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
			lat.report(b)
		})
	}
}
