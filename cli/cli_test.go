package cli

import (
	"bytes"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	slog "github.com/strata-io/strata/node/log"
)

func TestDevSaysNotBuilt(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"strata", "dev"}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d", code)
	}
	if got := errOut.String(); !strings.Contains(got, "not built yet") || strings.Count(got, "\n") != 1 {
		t.Fatalf("stderr %q", got)
	}
}

func TestLogDump(t *testing.T) {
	dir := t.TempDir()
	l, err := slog.Open(dir, slog.DefaultConfig(), slog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := l.Append(testBatch(), 2); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"strata", "log", "dump", dir}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if got := out.String(); !strings.Contains(got, "baseOffset: 2 lastOffset: 2") || !strings.Contains(got, "3 batches, 3 records, offsets [0, 2]") {
		t.Fatalf("output:\n%s", got)
	}
	// A torn tail is reported and fails the command.
	seg := filepath.Join(dir, "00000000000000000000.log")
	f, _ := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 1, 0})
	f.Close()
	out.Reset()
	errOut.Reset()
	if code := run([]string{"strata", "log", "dump", "--summary", dir}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out.String(), "12 bytes would be cut") {
		t.Fatalf("output:\n%s", out.String())
	}
}

// testBatch is a one-record uncompressed RecordBatch (value "hi").
func testBatch() []byte {
	rec := []byte{0, 0, 0, 1, 4, 'h', 'i', 0} // attrs, tsDelta, offDelta, key null, value "hi", 0 headers
	body := append([]byte{byte(len(rec) << 1)}, rec...)
	b := make([]byte, 61, 61+len(body))
	put32 := func(off int, v uint32) {
		b[off], b[off+1], b[off+2], b[off+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	}
	put32(8, uint32(49+len(body)))
	b[16] = 2
	put32(57, 1)
	b = append(b, body...)
	put32(17, crc32c(b[21:]))
	return b
}
func crc32c(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }
