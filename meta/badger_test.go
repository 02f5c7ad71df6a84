package meta

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

// TestStoresOpenWithEmptyValueLog: a process killed while Badger creates
// or deletes a value log file can leave it empty (not even its header),
// and Badger then refuses to open ("Open existing file ... Create a new
// file"), so the node could never start again. The fault suite found it
// with kill -9. An empty value log holds nothing, so both stores remove
// it and open.
func TestStoresOpenWithEmptyValueLog(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenRaftStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLog(&raft.Log{Index: 1, Term: 1, Data: []byte("kept")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	vlogs, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if len(vlogs) == 0 {
		t.Fatal("no value log files")
	}
	for _, v := range vlogs { // every one empty: the worst case
		if err := os.Truncate(v, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "000099.vlog"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = OpenRaftStore(dir, nil)
	if err != nil {
		t.Fatalf("raft store with empty value logs: %v", err)
	}
	var l raft.Log
	if err := s.GetLog(1, &l); err != nil || string(l.Data) != "kept" {
		t.Fatalf("entry 1 after reopening: %q, %v", l.Data, err)
	}
	s.Close()

	state := t.TempDir()
	f, err := OpenFSM(state, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	vlogs, _ = filepath.Glob(filepath.Join(state, "*.vlog"))
	for _, v := range vlogs {
		os.Truncate(v, 0)
	}
	f, err = OpenFSM(state, nil, nil)
	if err != nil {
		t.Fatalf("state with an empty value log: %v", err)
	}
	f.Close()
}
