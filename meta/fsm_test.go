package meta

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
)

func openTestFSM(t *testing.T, dir string) *FSM {
	t.Helper()
	f, err := OpenFSM(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// applier feeds commands to an FSM as Raft would, one index each.
type applier struct {
	t     *testing.T
	f     *FSM
	index uint64
}

func (a *applier) apply(cmds ...Command) []*ApplyResult {
	a.t.Helper()
	logs := make([]*raft.Log, len(cmds))
	for i, c := range cmds {
		a.index++
		logs[i] = &raft.Log{Index: a.index, Term: 1, Type: raft.LogCommand, Data: EncodeCommand(c)}
	}
	out := make([]*ApplyResult, len(cmds))
	for i, r := range a.f.ApplyBatch(logs) {
		out[i] = r.(*ApplyResult)
	}
	return out
}

func (a *applier) mustApply(cmds ...Command) {
	a.t.Helper()
	for i, r := range a.apply(cmds...) {
		if r.Err != nil {
			a.t.Fatalf("command %d (%T): %v", i, cmds[i], r.Err)
		}
	}
}

func (a *applier) wantErr(want error, c Command) {
	a.t.Helper()
	if r := a.apply(c)[0]; !errors.Is(r.Err, want) {
		a.t.Fatalf("%T: got %v, want %v", c, r.Err, want)
	}
}

func testTopic(name string, partitions int32, rf int16) *CreateTopic {
	a := make([][]int32, partitions)
	for i := range a {
		for r := range rf {
			a[i] = append(a[i], (int32(i)+int32(r))%3)
		}
	}
	return &CreateTopic{Topic: Topic{Name: name, ID: [16]byte{1, 2, 3}, Partitions: partitions, ReplicationFactor: rf,
		Configs: map[string]string{"retention.ms": "1000"}}, Assignment: a}
}

func allCommands() []Command {
	return []Command{
		&RegisterNode{Node: Node{ID: 1, RaftAddr: "127.0.0.1:7001", Rack: "a"}},
		&RemoveNode{ID: 4},
		testTopic("orders", 3, 2),
		&DeleteTopic{Name: "x"},
		&CreateTopic{Topic: Topic{Name: "back", ID: [16]byte{9}, Partitions: 1, ReplicationFactor: 1}, Assignment: [][]int32{{1}},
			Restore: []RestoredPartition{{LogStartOffset: 10, Segments: []TierSegment{{Topic: "back", BaseOffset: 0, LastOffset: 99,
				LeaderEpoch: 4, ObjectKey: "k", SegmentEpochs: []EpochStart{{3, 0}, {4, 50}}}}}}},
		&CreatePartitions{Topic: "orders", Total: 4, Assignment: [][]int32{{2, 0}}},
		&AlterConfigs{Topic: "orders", Set: map[string]string{"segment.bytes": "1048576"}, Delete: []string{"retention.ms"}},
		&ChangeLeader{Topic: "orders", Partition: 1, Leader: 2, ISR: []int32{2}, PartitionEpoch: 0},
		&AlterISR{Topic: "orders", Partition: 0, Leader: 0, LeaderEpoch: 0, ISR: []int32{0}, PartitionEpoch: 0},
		&CommitOffsets{Offsets: []Offset{{Group: "g", Topic: "orders", Partition: 1, Offset: 42, LeaderEpoch: 3, Metadata: "m", CommitTimeMs: 7}}},
		&DeleteOffsets{Group: "g", Topic: "orders", Partitions: []int32{1}},
		&AddTierSegment{Segment: TierSegment{Topic: "orders", Partition: 0, BaseOffset: 0, LastOffset: 99, SizeBytes: 1 << 20,
			LeaderEpoch: 0, MaxTimestamp: 5, ObjectKey: "k", SegmentEpochs: []EpochStart{{0, 0}}}},
		&DeleteTierSegments{Topic: "orders", Partition: 0, BaseOffsets: []int64{0, 100}, LogStartOffset: 100},
		&AllocateProducerIDs{Count: 1000},
		&ForgetDeletedTopics{IDs: [][16]byte{{1, 2, 3}, {9}}},
		&AlterReassignment{Topic: "orders", Partition: 1, Target: []int32{2, 0}},
		&AlterReassignment{Topic: "orders", Partition: 1},
		&CompleteReassignment{Topic: "orders", Partition: 2, PartitionEpoch: 4},
		&AlterScramCredentials{Upserts: []ScramCredential{{User: "alice", Mechanism: "SCRAM-SHA-256", Iterations: 4096,
			Salt: []byte{1}, StoredKey: []byte{2}, ServerKey: []byte{3}}}, Deletes: []CredentialRef{{User: "bob", Mechanism: "SCRAM-SHA-512"}}, OnlyIfAbsent: true},
		&CreateAcls{ACLs: []ACL{{ResourceType: 2, ResourceName: "orders", PatternType: 3, Principal: "User:alice", Host: "*", Operation: 4, Permission: 3}}},
		&DeleteAcls{ACLs: []ACL{{ResourceType: 3, ResourceName: "g", PatternType: 4, Principal: "User:*", Host: "10.0.0.1", Operation: 2, Permission: 2}}},
		&InitTxn{ID: "tx", TimeoutMs: 60000, ProducerID: -1, Epoch: -1, NowMs: 5},
		&AddTxnPartitions{ID: "tx", ProducerID: 1000, Epoch: 0, Partitions: []TxnPartition{{Topic: "orders", Partition: 1}}, Groups: []string{"g"}, NowMs: 6},
		&EndTxn{ID: "tx", ProducerID: 1000, Epoch: 0, Commit: true, NowMs: 7},
		&EndTxn{ID: "tx", ProducerID: 1000, Epoch: 0, Commit: false, NowMs: 7, V2: true},
		&CompleteTxn{ID: "tx", ProducerID: 1000, Epoch: 0, NowMs: 8},
		&TxnCommitOffsets{ID: "tx", ProducerID: 1000, Epoch: 0, Group: "g", Offsets: []Offset{{Group: "g", Topic: "orders", Partition: 1, Offset: 5, LeaderEpoch: 2, Metadata: "m"}}, NowMs: 9},
		&TxnCommitOffsets{ID: "tx", ProducerID: 1000, Epoch: 0, Group: "g", NowMs: 9, AddGroup: true},
		&ExpireTxn{ID: "tx", ProducerID: 1000, Epoch: 0, NowMs: 10},
		&ForgetTxn{ID: "tx", UpdateMs: 11},
		&SetFeatures{Levels: map[string]int16{FeatureTransactionVersion: 1, "other": 3}},
		&ReplaceTierSegments{OldBases: []int64{0, 100}, OldKeys: []string{"k", "l"}, New: TierSegment{Topic: "orders", Partition: 0,
			BaseOffset: 0, LastOffset: 199, SizeBytes: 1 << 10, ObjectKey: "m", SegmentEpochs: []EpochStart{{0, 0}}}, AtMs: 12},
		&ForgetRetiredObjects{Topic: "orders", Partition: 0, Keys: []string{"k", "l"}},
		&MarkTierCleaned{Topic: "orders", Partition: 0, Offset: 200, AtMs: 13},
		&WriteShareState{State: ShareState{Group: "q", Topic: "orders", Partition: 1, LeaderEpoch: 2, Start: 10,
			Batches: []ShareBatch{{10, 12, 0, 1}, {13, 13, 4, 5}, {14, 20, 2, 1}}, UpdateMs: 14, StateEpoch: 3}},
		&DeleteShareState{Group: "q", Topic: "orders"},
		&ResetShareState{Group: "q", Topic: "orders", Starts: map[int32]int64{0: 5, 1: -1}, NowMs: 15},
		&AlterGroupConfigs{Group: "q", Set: map[string]string{"share.auto.offset.reset": "earliest"}, Delete: []string{"share.delivery.count.limit"}},
		&PutGroupMetadata{Group: "g", Value: []byte{0, 3, 1, 2}, NowMs: 16},
	}
}

// withoutOptionalTail is c as decoded from an entry written before its
// trailing optional fields existed (nil if it has none): what a
// truncation at that boundary may decode to.
func withoutOptionalTail(c Command) Command {
	switch c := c.(type) {
	case *EndTxn:
		o := *c
		o.V2 = false
		return &o
	case *TxnCommitOffsets:
		o := *c
		o.AddGroup = false
		return &o
	case *WriteShareState:
		o := *c
		o.State.StateEpoch = 0
		return &o
	}
	return nil
}

func TestCommandCodec(t *testing.T) {
	for _, c := range allCommands() {
		b := EncodeCommand(c)
		got, err := DecodeCommand(b)
		if err != nil {
			t.Fatalf("%T: %v", c, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("%T round trip:\n got %+v\nwant %+v", c, got, c)
		}
		for i := range len(b) {
			got, err := DecodeCommand(b[:i])
			if err == nil && (i != len(b)-1 || !reflect.DeepEqual(got, withoutOptionalTail(c))) {
				t.Fatalf("%T truncated to %d bytes decoded", c, i)
			}
		}
	}
	b := EncodeCommand(&RemoveNode{ID: 1})
	b[0] = commandVersion + 1
	if _, err := DecodeCommand(b); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("newer version: %v", err)
	}
	b[0], b[1] = commandVersion, 200
	if _, err := DecodeCommand(b); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("unknown type: %v", err)
	}
}

func TestFSMTopics(t *testing.T) {
	f := openTestFSM(t, t.TempDir())
	a := &applier{t: t, f: f}
	a.mustApply(testTopic("orders", 3, 2))
	a.wantErr(ErrTopicExists, testTopic("orders", 1, 1))
	a.wantErr(ErrInvalidRequest, testTopic("bad/name", 1, 1))
	a.wantErr(ErrInvalidRequest, &CreateTopic{Topic: Topic{Name: "t", Partitions: 2, ReplicationFactor: 1}, Assignment: [][]int32{{0}}})
	a.wantErr(ErrInvalidRequest, &CreateTopic{Topic: Topic{Name: "t", Partitions: 1, ReplicationFactor: 2}, Assignment: [][]int32{{0, 0}}})
	bad := testTopic("t", 1, 1)
	bad.Topic.Configs = map[string]string{"retention.ms": "soon"}
	a.wantErr(ErrInvalidConfig, bad)
	// A rejected command writes nothing.
	v := f.View()
	if _, ok, _ := v.Topic("t"); ok {
		t.Fatal("rejected topic was written")
	}
	if ps, _ := v.Partitions("t"); len(ps) != 0 {
		t.Fatal("rejected topic's partitions were written")
	}
	ps, _ := v.Partitions("orders")
	v.Close()
	if len(ps) != 3 || ps[1].Leader != ps[1].Replicas[0] || !reflect.DeepEqual(ps[1].ISR, ps[1].Replicas) {
		t.Fatalf("partitions %+v", ps)
	}

	a.mustApply(&CreatePartitions{Topic: "orders", Assignment: [][]int32{{1, 2}}})
	a.wantErr(ErrInvalidRequest, &CreatePartitions{Topic: "orders", Assignment: [][]int32{{1}}})
	a.wantErr(ErrUnknownTopic, &CreatePartitions{Topic: "nope", Assignment: [][]int32{{1, 2}}})

	a.wantErr(ErrInvalidConfig, &AlterConfigs{Topic: "orders", Set: map[string]string{"no.such.key": "1"}})
	a.wantErr(ErrInvalidConfig, &AlterConfigs{Topic: "orders", Set: map[string]string{"cleanup.policy": "compacted"}})
	a.wantErr(ErrInvalidConfig, &AlterConfigs{Topic: "orders", Set: map[string]string{"min.cleanable.dirty.ratio": "1.5"}})
	a.mustApply(&AlterConfigs{Topic: "orders", Set: map[string]string{"segment.bytes": "1048576"}, Delete: []string{"retention.ms"}})

	a.mustApply(&CommitOffsets{Offsets: []Offset{{Group: "g", Topic: "orders", Partition: 0, Offset: 5}, {Group: "g", Topic: "other", Partition: 0, Offset: 6}}})
	v = f.View()
	topic, _, _ := v.Topic("orders")
	if topic.Partitions != 4 || !reflect.DeepEqual(topic.Configs, map[string]string{"segment.bytes": "1048576"}) {
		t.Fatalf("topic %+v", topic)
	}
	v.Close()

	a.mustApply(&DeleteTopic{Name: "orders"})
	a.wantErr(ErrUnknownTopic, &DeleteTopic{Name: "orders"})
	v = f.View()
	defer v.Close()
	if ps, _ := v.Partitions("orders"); len(ps) != 0 {
		t.Fatal("partitions outlive their topic")
	}
	offs, _ := v.GroupOffsets("g")
	if len(offs) != 1 || offs[0].Topic != "other" {
		t.Fatalf("offsets after delete %+v", offs)
	}
	// The deleted topic is remembered until the tier reconciler forgets it.
	if dts, err := v.DeletedTopics(); err != nil || len(dts) != 1 || dts[0] != (DeletedTopic{ID: topic.ID, Name: "orders"}) {
		t.Fatalf("deleted topics %+v %v", dts, err)
	}
	a.mustApply(&ForgetDeletedTopics{IDs: [][16]byte{topic.ID, {7}}})
	v2 := f.View()
	defer v2.Close()
	if dts, _ := v2.DeletedTopics(); len(dts) != 0 {
		t.Fatalf("deleted topics after forget %+v", dts)
	}
}

func TestFSMFencing(t *testing.T) {
	f := openTestFSM(t, t.TempDir())
	a := &applier{t: t, f: f}
	a.mustApply(testTopic("t", 1, 3)) // replicas 0,1,2; leader 0
	// The controller elects 1 from partition epoch 0.
	r := a.apply(&ChangeLeader{Topic: "t", Partition: 0, Leader: 1, ISR: []int32{1, 2}, PartitionEpoch: 0})[0]
	if r.Err != nil || r.Partition.LeaderEpoch != 1 || r.Partition.PartitionEpoch != 1 {
		t.Fatalf("election: %+v", r)
	}
	// A second election computed from the old epoch is stale.
	a.wantErr(ErrStaleEpoch, &ChangeLeader{Topic: "t", Partition: 0, Leader: 2, ISR: []int32{2}, PartitionEpoch: 0})
	// The old leader's ISR change is fenced; the new leader's goes in.
	a.wantErr(ErrStaleEpoch, &AlterISR{Topic: "t", Partition: 0, Leader: 0, LeaderEpoch: 0, ISR: []int32{0}, PartitionEpoch: 1})
	a.wantErr(ErrStaleEpoch, &AlterISR{Topic: "t", Partition: 0, Leader: 1, LeaderEpoch: 1, ISR: []int32{1}, PartitionEpoch: 0})
	a.wantErr(ErrInvalidRequest, &AlterISR{Topic: "t", Partition: 0, Leader: 1, LeaderEpoch: 1, ISR: []int32{2}, PartitionEpoch: 1})
	a.mustApply(&AlterISR{Topic: "t", Partition: 0, Leader: 1, LeaderEpoch: 1, ISR: []int32{0, 1, 2}, PartitionEpoch: 1})
	// Leader -1: offline, epoch bumped.
	r = a.apply(&ChangeLeader{Topic: "t", Partition: 0, Leader: -1, ISR: []int32{1}, PartitionEpoch: 2})[0]
	if r.Err != nil || r.Partition.Leader != -1 || r.Partition.LeaderEpoch != 2 {
		t.Fatalf("offline: %+v", r)
	}
	// Tier entries are fenced by leader epoch, recorded once.
	seg := TierSegment{Topic: "t", Partition: 0, BaseOffset: 100, LastOffset: 199, LeaderEpoch: 1, ObjectKey: "a"}
	a.wantErr(ErrStaleEpoch, &AddTierSegment{Segment: seg})
	seg.LeaderEpoch = 2
	a.mustApply(&AddTierSegment{Segment: seg}, &AddTierSegment{Segment: seg})
	// Another upload of no more than the entry has changes nothing; a
	// longer segment at the same base (a new leader's replica rolled
	// later) replaces it.
	other := seg
	other.ObjectKey, other.LastOffset = "b", 150
	a.mustApply(&AddTierSegment{Segment: other})
	v := f.View()
	if segs, _ := v.TierSegments("t", 0); len(segs) != 1 || segs[0].ObjectKey != "a" {
		t.Fatalf("manifest %+v", segs)
	}
	v.Close()
	longer := seg
	longer.ObjectKey, longer.LastOffset = "c", 249
	a.mustApply(&AddTierSegment{Segment: longer})
	v = f.View()
	if segs, _ := v.TierSegments("t", 0); len(segs) != 1 || segs[0].ObjectKey != "c" || segs[0].LastOffset != 249 {
		t.Fatalf("manifest %+v after a longer segment at the same base", segs)
	}
	v.Close()
	a.mustApply(&AddTierSegment{Segment: seg}) // the shorter one again: kept out

	// Lookups by offset, and deletion raising the log start offset.
	for _, base := range []int64{200, 300} {
		s := seg
		s.BaseOffset, s.LastOffset, s.ObjectKey = base, base+99, fmt.Sprint(base)
		a.mustApply(&AddTierSegment{Segment: s})
	}
	v = f.View()
	for _, c := range []struct {
		offset, base int64
		ok           bool
	}{{99, 0, false}, {100, 100, true}, {199, 100, true}, {250, 200, true}, {399, 300, true}, {400, 0, false}} {
		s, ok, err := v.TierSegmentAt("t", 0, c.offset)
		if err != nil || ok != c.ok || s.BaseOffset != c.base {
			t.Fatalf("segment at %d: %+v %v %v", c.offset, s, ok, err)
		}
	}
	if first, last, ok, _ := v.TierSpan("t", 0); !ok || first.BaseOffset != 100 || last.BaseOffset != 300 {
		t.Fatalf("span %d..%d %v", first.BaseOffset, last.BaseOffset, ok)
	}
	if _, _, ok, _ := v.TierSpan("t", 1); ok {
		t.Fatal("span of an empty manifest")
	}
	v.Close()
	a.mustApply(&DeleteTierSegments{Topic: "t", Partition: 0, BaseOffsets: []int64{100}, LogStartOffset: 250})
	a.mustApply(&DeleteTierSegments{Topic: "t", Partition: 0, LogStartOffset: 120}) // never lowered
	v = f.View()
	defer v.Close()
	p, _, _ := v.Partition("t", 0)
	first, _, _, _ := v.TierSpan("t", 0)
	if p.LogStartOffset != 250 || first.BaseOffset != 200 || p.Leader != -1 {
		t.Fatalf("after delete: partition %+v, first entry %d", p, first.BaseOffset)
	}
}

func TestFSMReplaySkipsApplied(t *testing.T) {
	dir := t.TempDir()
	f := openTestFSM(t, dir)
	a := &applier{t: t, f: f}
	a.mustApply(testTopic("t", 1, 1))
	entry := &raft.Log{Index: 2, Type: raft.LogCommand, Data: EncodeCommand(&CreatePartitions{Topic: "t", Assignment: [][]int32{{0}}})}
	f.ApplyBatch([]*raft.Log{entry})
	f.Close()
	f = openTestFSM(t, dir)
	if f.Applied() != 2 {
		t.Fatalf("applied %d after reopen", f.Applied())
	}
	// Raft replays entries 1 and 2 after a restart: nothing changes.
	res := f.ApplyBatch([]*raft.Log{{Index: 1, Type: raft.LogCommand, Data: EncodeCommand(testTopic("t", 1, 1))}, entry})
	if res[0] != nil || res[1] != nil {
		t.Fatalf("replay results %v", res)
	}
	v := f.View()
	defer v.Close()
	if topic, _, _ := v.Topic("t"); topic.Partitions != 2 {
		t.Fatalf("partitions %d after replay", topic.Partitions)
	}
}

func TestFSMHugeCommandIsAtomic(t *testing.T) {
	f := openTestFSM(t, t.TempDir())
	a := &applier{t: t, f: f}
	const n = 60_000 // far past one Badger transaction
	offs := make([]Offset, n)
	for i := range offs {
		offs[i] = Offset{Group: "g", Topic: "t", Partition: int32(i), Offset: int64(i), Metadata: "some metadata"}
	}
	before := f.View()
	a.mustApply(&CommitOffsets{Offsets: offs})
	if got, _ := before.GroupOffsets("g"); len(got) != 0 {
		t.Fatalf("a view from before the command sees %d of its offsets", len(got))
	}
	before.Close()
	v := f.View()
	defer v.Close()
	if got, _ := v.GroupOffsets("g"); len(got) != n {
		t.Fatalf("%d offsets, want %d", len(got), n)
	}
}

func TestFSMSnapshotRestore(t *testing.T) {
	f := openTestFSM(t, t.TempDir())
	a := &applier{t: t, f: f}
	for i := range 20 {
		a.mustApply(testTopic(fmt.Sprintf("topic-%d", i), 4, 2))
		a.mustApply(&CommitOffsets{Offsets: []Offset{{Group: "g", Topic: "topic-0", Partition: int32(i % 4), Offset: int64(i)}}})
	}
	a.mustApply(&DeleteTopic{Name: "topic-3"}, &RegisterNode{Node: Node{ID: 2, RaftAddr: "x"}})
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	live := f.View()
	want, err := live.Dump()
	live.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Applies go on while the snapshot persists; it must not see them.
	a.mustApply(testTopic("later", 1, 1), &DeleteTopic{Name: "topic-5"})
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	g := openTestFSM(t, t.TempDir())
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.buf.Bytes()))); err != nil {
		t.Fatal(err)
	}
	gv := g.View()
	got, err := gv.Dump()
	gv.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !maps.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("restored state differs: %d keys, want %d", len(got), len(want))
	}
	if g.Applied() != 42 {
		t.Fatalf("restored version %d", g.Applied())
	}
	// Restoring over existing state replaces it exactly.
	if err := f.Restore(io.NopCloser(bytes.NewReader(sink.buf.Bytes()))); err != nil {
		t.Fatal(err)
	}
	fv := f.View()
	again, _ := fv.Dump()
	fv.Close()
	if !maps.EqualFunc(again, want, bytes.Equal) {
		t.Fatal("restore over live state left extra keys")
	}
}

type memSink struct{ buf bytes.Buffer }

func (s *memSink) Write(p []byte) (int, error) { return s.buf.Write(p) }
func (s *memSink) Close() error                { return nil }
func (s *memSink) ID() string                  { return "mem" }
func (s *memSink) Cancel() error               { return nil }

func TestAllocateProducerIDs(t *testing.T) {
	f := openTestFSM(t, t.TempDir())
	a := &applier{t: t, f: f}
	r := a.apply(&AllocateProducerIDs{Count: 100}, &AllocateProducerIDs{Count: 5}, &AllocateProducerIDs{Count: 0})
	if r[0].Value != 1000 || r[1].Value != 1100 || !errors.Is(r[2].Err, ErrInvalidRequest) {
		t.Fatalf("allocations %+v %+v %+v", r[0], r[1], r[2])
	}
}

// TestFSMReassignment moves a partition from replicas [0 1] to [1 2]:
// while moving its replicas are the target then the leaving ones; it
// completes only once the target is in the ISR, and the leaving leader
// hands over with a new leader epoch. Bad targets and cancels without a
// move are refused without a write.
func TestFSMReassignment(t *testing.T) {
	f := openTestFSM(t, t.TempDir())
	a := &applier{t: t, f: f}
	for id := range int32(3) {
		a.mustApply(&RegisterNode{Node: Node{ID: id, RaftAddr: fmt.Sprint("n", id)}})
	}
	a.mustApply(&CreateTopic{Topic: Topic{Name: "m", Partitions: 1, ReplicationFactor: 2}, Assignment: [][]int32{{0, 1}}})
	part := func() Partition {
		v := f.View()
		defer v.Close()
		p, _, _ := v.Partition("m", 0)
		return p
	}
	a.wantErr(ErrNoReassignment, &AlterReassignment{Topic: "m", Partition: 0})
	a.wantErr(ErrInvalidReplicas, &AlterReassignment{Topic: "m", Partition: 0, Target: []int32{1, 9}})
	a.wantErr(ErrInvalidReplicas, &AlterReassignment{Topic: "m", Partition: 0, Target: []int32{1, 1}})
	a.wantErr(ErrUnknownTopic, &AlterReassignment{Topic: "m", Partition: 1, Target: []int32{1, 2}})
	a.mustApply(&AlterReassignment{Topic: "m", Partition: 0, Target: []int32{1, 2}})
	p := part()
	if !reflect.DeepEqual(p.Replicas, []int32{1, 2, 0}) || p.Leader != 0 {
		t.Fatalf("moving: %+v", p)
	}
	v := f.View()
	moves, _ := v.Reassignments()
	v.Close()
	if len(moves) != 1 || !reflect.DeepEqual(moves[0].Adding(), []int32{2}) || !reflect.DeepEqual(moves[0].Removing(), []int32{0}) {
		t.Fatalf("moves %+v", moves)
	}
	a.wantErr(ErrInvalidRequest, &CompleteReassignment{Topic: "m", Partition: 0, PartitionEpoch: p.PartitionEpoch})
	a.mustApply(&AlterISR{Topic: "m", Partition: 0, Leader: 0, LeaderEpoch: p.LeaderEpoch, ISR: []int32{0, 1, 2}, PartitionEpoch: p.PartitionEpoch})
	p = part()
	a.wantErr(ErrStaleEpoch, &CompleteReassignment{Topic: "m", Partition: 0, PartitionEpoch: p.PartitionEpoch - 1})
	a.mustApply(&CompleteReassignment{Topic: "m", Partition: 0, PartitionEpoch: p.PartitionEpoch})
	done := part()
	if !reflect.DeepEqual(done.Replicas, []int32{1, 2}) || !reflect.DeepEqual(done.ISR, []int32{1, 2}) || done.Leader != 1 || done.LeaderEpoch != p.LeaderEpoch+1 {
		t.Fatalf("completed: %+v (before %+v)", done, p)
	}
	a.wantErr(ErrNoReassignment, &CompleteReassignment{Topic: "m", Partition: 0, PartitionEpoch: done.PartitionEpoch})

	// A move cancelled goes back to the original replicas.
	a.mustApply(&AlterReassignment{Topic: "m", Partition: 0, Target: []int32{2, 0}})
	a.mustApply(&AlterReassignment{Topic: "m", Partition: 0})
	if p := part(); !reflect.DeepEqual(p.Replicas, []int32{1, 2}) || p.Leader != 1 {
		t.Fatalf("cancelled: %+v", p)
	}
	v = f.View()
	moves, _ = v.Reassignments()
	v.Close()
	if len(moves) != 0 {
		t.Fatalf("moves after cancel %+v", moves)
	}
}

// TestFSMTopology: the topology version moves with every commit that
// writes a topic or partition record, and only then, so a reader may
// keep what it read of them while the version stands.
func TestFSMTopology(t *testing.T) {
	f := openTestFSM(t, t.TempDir())
	a := &applier{t: t, f: f}
	seg := TierSegment{Topic: "t", Partition: 0, BaseOffset: 0, LastOffset: 9, LeaderEpoch: 1, ObjectKey: "a"}
	for _, c := range []struct {
		cmd   Command
		moves bool
	}{
		{testTopic("t", 2, 3), true},
		{&CommitOffsets{Offsets: []Offset{{Group: "g", Topic: "t", Partition: 0, Offset: 5}}}, false},
		{&ChangeLeader{Topic: "t", Partition: 0, Leader: 1, ISR: []int32{1, 2}, PartitionEpoch: 0}, true},
		{&AlterISR{Topic: "t", Partition: 0, Leader: 1, LeaderEpoch: 1, ISR: []int32{0, 1, 2}, PartitionEpoch: 1}, true},
		{&AlterISR{Topic: "t", Partition: 0, Leader: 1, LeaderEpoch: 0, ISR: []int32{1}, PartitionEpoch: 1}, false}, // fenced: nothing written
		{&AddTierSegment{Segment: seg}, false},
		{&DeleteTierSegments{Topic: "t", Partition: 0, BaseOffsets: []int64{0}, LogStartOffset: 10}, true},
		{&AlterConfigs{Topic: "t", Set: map[string]string{"segment.bytes": "1048576"}}, true},
		{&CreatePartitions{Topic: "t", Assignment: [][]int32{{1, 2, 0}}}, true},
		{&AllocateProducerIDs{Count: 1}, false},
		{&DeleteTopic{Name: "t"}, true},
	} {
		before := f.Topology()
		a.apply(c.cmd)
		if moved := f.Topology() != before; moved != c.moves {
			t.Fatalf("%T: topology moved %v, want %v", c.cmd, moved, c.moves)
		}
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	before := f.Topology()
	if err := f.Restore(io.NopCloser(bytes.NewReader(sink.buf.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if f.Topology() == before {
		t.Fatal("topology did not move on restore")
	}
}

// TestFSMRestoreTwice: restoring a topic that exists with the same id
// changes nothing and succeeds (already restored), so a restore may be
// asked again; another id, or a plain create, is still refused.
func TestFSMRestoreTwice(t *testing.T) {
	f := openTestFSM(t, t.TempDir())
	a := &applier{t: t, f: f}
	restore := func(id byte) *CreateTopic {
		c := testTopic("back", 1, 1)
		c.Topic.ID = [16]byte{id}
		c.Restore = []RestoredPartition{{LogStartOffset: 10, Segments: []TierSegment{{Topic: "back", BaseOffset: 10, LastOffset: 99, LeaderEpoch: 2, ObjectKey: "k"}}}}
		return c
	}
	if r := a.apply(restore(7))[0]; r.Err != nil || r.Value != 0 {
		t.Fatalf("first restore: %+v", r)
	}
	v := f.View()
	before, err := v.Dump()
	v.Close()
	if err != nil {
		t.Fatal(err)
	}
	if r := a.apply(restore(7))[0]; r.Err != nil || r.Value != 1 {
		t.Fatalf("second restore: %+v, want already restored", r)
	}
	a.wantErr(ErrTopicExists, restore(8))
	plain := testTopic("back", 1, 1)
	plain.Topic.ID = [16]byte{7}
	a.wantErr(ErrTopicExists, plain)
	v = f.View()
	after, err := v.Dump()
	v.Close()
	if err != nil {
		t.Fatal(err)
	}
	delete(before, keyApplied)
	delete(after, keyApplied)
	if !maps.EqualFunc(before, after, bytes.Equal) {
		t.Fatal("restoring again changed the state")
	}
}

// TestManifestNeverHoldsAnEntryInsideAnother adds random segments (new
// leaders' replicas roll at different offsets, so uploads overlap, share
// bases and nest) and checks after each that no entry lies inside
// another and that every offset some upload held is found, in an entry
// holding it: an entry inside a longer one once hid the longer one's
// later offsets, and readers answered them out of range.
func TestManifestNeverHoldsAnEntryInsideAnother(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 3))
	for round := range 20 {
		f := openTestFSM(t, t.TempDir())
		a := &applier{t: t, f: f}
		a.mustApply(testTopic("t", 1, 1))
		held := map[int64]bool{}
		for step := range 40 {
			base := rng.Int64N(100)
			seg := TierSegment{Topic: "t", BaseOffset: base, LastOffset: base + rng.Int64N(30), ObjectKey: fmt.Sprint(step)}
			a.mustApply(&AddTierSegment{Segment: seg})
			for o := seg.BaseOffset; o <= seg.LastOffset; o++ {
				held[o] = true
			}
			v := f.View()
			segs, _ := v.TierSegments("t", 0)
			for i, e := range segs {
				for _, o := range segs[i+1:] {
					if o.BaseOffset <= e.LastOffset && o.LastOffset <= e.LastOffset {
						t.Fatalf("round %d step %d: entry %d..%d inside %d..%d", round, step, o.BaseOffset, o.LastOffset, e.BaseOffset, e.LastOffset)
					}
				}
			}
			for o := int64(0); o < 140; o++ {
				s, ok, err := v.TierSegmentAt("t", 0, o)
				if err != nil || ok != held[o] || (ok && (s.BaseOffset > o || s.LastOffset < o)) {
					t.Fatalf("round %d step %d: offset %d held %v, found %+v %v %v", round, step, o, held[o], s, ok, err)
				}
			}
			v.Close()
		}
	}
}
