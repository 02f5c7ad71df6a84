package meta

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

var (
	_ raft.LogStore    = (*RaftStore)(nil)
	_ raft.StableStore = (*RaftStore)(nil)
)

func testRaftStore(t *testing.T, dir string) *RaftStore {
	t.Helper()
	s, err := OpenRaftStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testRaftLog(index uint64, data string) *raft.Log {
	return &raft.Log{Index: index, Term: 3, Type: raft.LogCommand, Data: []byte(data),
		Extensions: []byte("ext"), AppendedAt: time.Unix(1700000000, 42)}
}

func bounds(t *testing.T, s *RaftStore) (uint64, uint64) {
	t.Helper()
	first, err1 := s.FirstIndex()
	last, err2 := s.LastIndex()
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return first, last
}

// The contract hashicorp/raft's own stores are held to (raft-boltdb/v2's
// tests), plus gaps and a reopen.
func TestRaftStoreLogs(t *testing.T) {
	dir := t.TempDir()
	s := testRaftStore(t, dir)
	if f, l := bounds(t, s); f != 0 || l != 0 {
		t.Fatalf("empty store bounds (%d, %d)", f, l)
	}
	if err := s.GetLog(1, new(raft.Log)); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("missing log: %v", err)
	}
	if err := s.StoreLog(testRaftLog(1, "log1")); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs([]*raft.Log{testRaftLog(2, "log2"), testRaftLog(3, "log3")}); err != nil {
		t.Fatal(err)
	}
	// A gap: raft stores after a snapshot install.
	if err := s.StoreLogs([]*raft.Log{testRaftLog(10, "log10")}); err != nil {
		t.Fatal(err)
	}
	if f, l := bounds(t, s); f != 1 || l != 10 {
		t.Fatalf("bounds (%d, %d), want (1, 10)", f, l)
	}
	var got raft.Log
	if err := s.GetLog(2, &got); err != nil {
		t.Fatal(err)
	}
	want := testRaftLog(2, "log2")
	if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type || !bytes.Equal(got.Data, want.Data) ||
		!bytes.Equal(got.Extensions, want.Extensions) || !got.AppendedAt.Equal(want.AppendedAt) {
		t.Fatalf("got %+v, want %+v", got, *want)
	}
	if err := s.GetLog(5, &got); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("log in the gap: %v", err)
	}

	// DeleteRange from the front, as compaction does.
	if err := s.DeleteRange(1, 2); err != nil {
		t.Fatal(err)
	}
	for _, i := range []uint64{1, 2} {
		if err := s.GetLog(i, &got); !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("deleted log %d: %v", i, err)
		}
	}
	if f, l := bounds(t, s); f != 3 || l != 10 {
		t.Fatalf("after front delete (%d, %d)", f, l)
	}
	// And from the back, as a conflicting suffix is removed.
	if err := s.DeleteRange(10, 10); err != nil {
		t.Fatal(err)
	}
	if f, l := bounds(t, s); f != 3 || l != 3 {
		t.Fatalf("after back delete (%d, %d)", f, l)
	}
	s.Close()

	s = testRaftStore(t, dir)
	defer s.Close()
	if f, l := bounds(t, s); f != 3 || l != 3 {
		t.Fatalf("after reopen (%d, %d)", f, l)
	}
	if err := s.GetLog(3, &got); err != nil || string(got.Data) != "log3" {
		t.Fatalf("after reopen: %v %q", err, got.Data)
	}
	if err := s.DeleteRange(3, 3); err != nil {
		t.Fatal(err)
	}
	if f, l := bounds(t, s); f != 0 || l != 0 {
		t.Fatalf("emptied store bounds (%d, %d)", f, l)
	}
}

func TestRaftStoreStable(t *testing.T) {
	s := testRaftStore(t, t.TempDir())
	defer s.Close()
	if _, err := s.Get([]byte("bad")); err == nil || err.Error() != "not found" {
		t.Fatalf("missing key: %v (raft needs the text \"not found\")", err)
	}
	if _, err := s.GetUint64([]byte("bad")); err == nil || err.Error() != "not found" {
		t.Fatalf("missing uint64: %v", err)
	}
	if err := s.Set([]byte("hello"), []byte("world")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("hello")); err != nil || string(v) != "world" {
		t.Fatalf("got %q %v", v, err)
	}
	if err := s.SetUint64([]byte("abc"), 123); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetUint64([]byte("abc")); err != nil || v != 123 {
		t.Fatalf("got %d %v", v, err)
	}
	// Stable keys do not show up as log entries.
	if f, l := bounds(t, s); f != 0 || l != 0 {
		t.Fatalf("bounds (%d, %d)", f, l)
	}
}

func TestRaftLogCodec(t *testing.T) {
	for _, l := range []*raft.Log{
		testRaftLog(1, "x"),
		{Index: 1<<63 + 5, Term: 9, Type: raft.LogConfiguration},
	} {
		var got raft.Log
		if err := decodeRaftLog(encodeRaftLog(nil, l), &got); err != nil {
			t.Fatal(err)
		}
		if got.Index != l.Index || got.Term != l.Term || !bytes.Equal(got.Data, l.Data) || !got.AppendedAt.Equal(l.AppendedAt) {
			t.Fatalf("round trip %+v -> %+v", l, got)
		}
	}
	b := encodeRaftLog(nil, testRaftLog(1, "hello"))
	for i := range len(b) {
		if err := decodeRaftLog(b[:i], new(raft.Log)); err == nil {
			t.Fatalf("truncated at %d decoded", i)
		}
	}
}
