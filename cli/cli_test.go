package cli

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"hash/crc32"
	"path/filepath"
	"strings"
	"testing"

	plog "github.com/strata-io/strata/node/log"
)

// TestDevRestartServesWhatItAcknowledged runs strata dev, produces with
// franz-go, stops it, starts it again on the same data directory and
// consumes everything back.
func TestDevRestartServesWhatItAcknowledged(t *testing.T) {
	dir := t.TempDir()
	raftAddr := freeAddr(t)
	run := func(fn func(addr string)) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		readyCh := make(chan string, 1)
		go func() {
			done <- runDev(ctx, devConfig{dataDir: dir, kafkaAddr: "127.0.0.1:0", raftAddr: raftAddr,
				logger: slog.New(slog.DiscardHandler)}, func(a string) { readyCh <- a })
		}()
		select {
		case addr := <-readyCh:
			fn(addr)
		case err := <-done:
			t.Fatalf("dev exited before ready: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("dev not ready within 30s")
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("dev did not stop within 5s")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 100
	run(func(addr string) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DisableIdempotentWrite(), kgo.DefaultProduceTopic("events"),
			kgo.AllowAutoTopicCreation())
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		for i := range n {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
				t.Fatalf("produce %d: %v", i, err)
			}
		}
	})
	run(func(addr string) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("events"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		// The client stays open, long-polling, while dev shuts down: the
		// stop must still take under 5s.
		t.Cleanup(cl.Close)
		defer func() { go cl.PollFetches(context.Background()) }()
		for got := 0; got < n; {
			fs := cl.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				t.Fatalf("consume after restart: %v", err)
			}
			fs.EachRecord(func(r *kgo.Record) {
				if string(r.Value) != fmt.Sprint(got) {
					t.Fatalf("record %d is %q", got, r.Value)
				}
				got++
			})
		}
	})
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestLogDump(t *testing.T) {
	dir := t.TempDir()
	l, err := plog.Open(dir, plog.DefaultConfig(), plog.Options{})
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
