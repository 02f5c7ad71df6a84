package log

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

const crashChildEnv = "STRATA_LOG_CRASH_CHILD_DIR"

// TestCrashRecovery kills a child process that appends with an fsync per
// append (flush.messages=1), several times, at random moments. After every
// kill the log must reopen with at least every offset the child reported
// synced, and every record must hold exactly its own offset: nothing else
// corrupt, nothing reordered. STRATA_CRASH_ROUNDS sets the rounds.
func TestCrashRecovery(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	rounds := 6
	if s := os.Getenv("STRATA_CRASH_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	synced := int64(-1)
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashRecovery$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill after a random number of synced appends, so the kill lands
		// anywhere: mid-write, mid-roll, mid-checkpoint.
		killAfter := 20 + rng.IntN(400)
		sc := bufio.NewScanner(out)
		reports := 0
		for sc.Scan() {
			off, err := strconv.ParseInt(sc.Text(), 10, 64)
			if err != nil {
				t.Fatalf("child said %q", sc.Text())
			}
			synced = max(synced, off)
			if reports++; reports == killAfter {
				time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		go func() { // drain so the child never blocks on a full pipe
			for sc.Scan() {
			}
		}()
		cmd.Wait()

		l, err := Open(dir, recoveryConfig(), Options{})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		if l.EndOffset() <= synced {
			t.Fatalf("round %d: log ends at %d, but offset %d was reported synced", round, l.EndOffset(), synced)
		}
		checkOffsetsInValues(t, l)
		t.Logf("round %d: killed after %d synced appends; log [%d, %d), %d segments", round, reports, l.StartOffset(), l.EndOffset(), len(l.Segments()))
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// crashChild appends forever (bounded, in case the parent dies), each
// record's value its own offset, reporting each synced last offset.
func crashChild(dir string) {
	cfg := recoveryConfig()
	cfg.FlushMessages = 1
	cfg.RetentionBytes = 256 << 10
	l, err := Open(dir, cfg, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 2))
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; time.Now().Before(deadline); i++ {
		next := l.EndOffset()
		n := 1 + rng.IntN(5)
		recs := make([]testRecord, n)
		for j := range recs {
			v := binary.BigEndian.AppendUint64(nil, uint64(next+int64(j)))
			recs[j] = testRecord{value: append(v, make([]byte, rng.IntN(600))...)}
		}
		res, err := l.Append(makeBatch(time.Now().UnixMilli(), recs...), 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child append:", err)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stdout, "%d\n", res.LastOffset)
		if i%25 == 0 {
			if _, err := l.Maintain(); err != nil {
				fmt.Fprintln(os.Stderr, "child maintain:", err)
				os.Exit(2)
			}
		}
	}
	os.Exit(0)
}

// checkOffsetsInValues reads the whole log and checks each record's value
// starts with its own offset.
func checkOffsetsInValues(t *testing.T, l *Log) {
	t.Helper()
	data := readAllBytes(t, l)
	want := l.StartOffset()
	first := true
	for len(data) > 0 {
		h := mustHeader(t, data)
		b := data[:h.Size()]
		data = data[h.Size():]
		if _, err := ValidateBatch(b, 0); err != nil {
			t.Fatalf("batch at %d: %v", h.BaseOffset, err)
		}
		for j, v := range recordValues(t, b) {
			off := h.BaseOffset + int64(j)
			if off < l.StartOffset() {
				continue
			}
			if first {
				want, first = off, false
			}
			if off != want || len(v) < 8 || int64(binary.BigEndian.Uint64(v)) != off {
				t.Fatalf("record at offset %d (want %d) holds %x", off, want, v[:min(8, len(v))])
			}
			want++
		}
	}
	if want != l.EndOffset() {
		t.Fatalf("records end at %d, log end %d", want, l.EndOffset())
	}
}

// recordValues decodes the values of an uncompressed batch.
func recordValues(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	rs := b[BatchHeaderBytes:]
	for len(rs) > 0 {
		length, n := binary.Varint(rs)
		rec := rs[n : n+int(length)]
		rs = rs[n+int(length):]
		rec = rec[1:]
		_, n = binary.Varint(rec) // timestamp delta
		rec = rec[n:]
		_, n = binary.Varint(rec) // offset delta
		rec = rec[n:]
		kl, n := binary.Varint(rec)
		rec = rec[n:]
		if kl > 0 {
			rec = rec[kl:]
		}
		vl, n := binary.Varint(rec)
		rec = rec[n:]
		if vl < 0 {
			out = append(out, nil)
			continue
		}
		out = append(out, rec[:vl])
	}
	return out
}
