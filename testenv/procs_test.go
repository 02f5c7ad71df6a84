package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLogProblems: the lines a Go process writes when it panics, hits a
// fatal runtime error or races are found; log lines that only mention
// such words are not.
func TestLogProblems(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.log")
	log := `time=1 level=INFO msg="recovered from a panic in a handler? no: just words"
time=2 level=WARN msg="panic: not at the start of the line"
panic: runtime error: index out of range [3] with length 3
fatal error: concurrent map writes
==================
WARNING: DATA RACE
Write at 0x00c000123 by goroutine 7:
`
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	got := logProblems("node 1", path)
	if len(got) != 3 {
		t.Fatalf("found %d problems, want 3: %q", len(got), got)
	}
	if got := logProblems("node 2", filepath.Join(t.TempDir(), "missing.log")); got != nil {
		t.Fatalf("a missing log: %q", got)
	}
}
