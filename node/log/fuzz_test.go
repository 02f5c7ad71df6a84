package log

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzValidateBatch: validation never panics, never changes its input, and
// whatever it accepts is one whole batch whose frame and CRC check out,
// and stays valid once offsets and epoch are assigned.
func FuzzValidateBatch(f *testing.F) {
	f.Add(makeBatch(0, testRecord{key: []byte("k"), value: []byte("v")}), 0)
	f.Add(makeBatchN(5, 30, 1700000000000), 1<<20)
	f.Add(makeBatch(9, testRecord{value: nil, headers: [][2][]byte{{[]byte("a"), nil}}}), 100)
	f.Add(frameBatch(CompressionZstd, 0, 0, 4, []byte("compressed")), 0)
	f.Add(makeBatchN(2, 10, 0)[:40], 0)
	f.Fuzz(func(t *testing.T, b []byte, maxBytes int) {
		orig := slices.Clone(b)
		info, err := ValidateBatch(b, maxBytes)
		if !bytes.Equal(b, orig) {
			t.Fatal("ValidateBatch modified its input")
		}
		if err != nil {
			return
		}
		if info.Header.Size() != int64(len(b)) || (maxBytes > 0 && len(b) > maxBytes) {
			t.Fatalf("accepted %d bytes as a batch of %d (max %d)", len(b), info.Header.Size(), maxBytes)
		}
		if info.MaxTimestampDelta < 0 || info.MaxTimestampDelta > info.Header.LastOffsetDelta {
			t.Fatalf("max timestamp delta %d outside [0, %d]", info.MaxTimestampDelta, info.Header.LastOffsetDelta)
		}
		putBatchOffsetAndEpoch(b, 1<<33, 9)
		if _, err := ValidateBatch(b, maxBytes); err != nil {
			t.Fatalf("assigning offsets broke a valid batch: %v", err)
		}
		if _, err := checkStoredBatch(b); err != nil {
			t.Fatalf("stored check rejects a valid batch: %v", err)
		}
	})
}

// FuzzRecovery: append batches, crash, cut or corrupt the log files
// anywhere, reopen. The log must equal a prefix of what was appended, keep
// every batch that lies wholly before the damage, answer every index
// lookup as a full scan does, and take appends again.
func FuzzRecovery(f *testing.F) {
	f.Add(uint64(1), uint8(40), uint32(0), false, byte(0))
	f.Add(uint64(2), uint8(60), uint32(5000), false, byte(0))
	f.Add(uint64(3), uint8(60), uint32(5000), true, byte(0x01))
	f.Add(uint64(4), uint8(10), uint32(61), true, byte(0x80)) // a header field
	f.Add(uint64(5), uint8(90), uint32(20), true, byte(0xff)) // a base offset
	f.Add(uint64(6), uint8(90), uint32(12), true, byte(0x02)) // a leader epoch
	f.Fuzz(func(t *testing.T, seed uint64, batches uint8, at uint32, flip bool, mask byte) {
		dir := t.TempDir()
		cfg := recoveryConfig()
		l, a := openFilled(t, dir, cfg, rand.New(rand.NewPCG(seed, seed)), int(batches))
		crash(l)

		files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		slices.Sort(files)
		var total int64
		for _, p := range files {
			fi, _ := os.Stat(p)
			total += fi.Size()
		}
		damaged := int64(-1) // global byte position of the damage
		if total > 0 {
			pos := int64(at) % (total + 1)
			damaged = pos
			for _, p := range files {
				fi, _ := os.Stat(p)
				if pos > fi.Size() || (pos == fi.Size() && flip) {
					pos -= fi.Size()
					continue
				}
				if flip {
					if mask == 0 {
						mask = 1
					}
					b, _ := os.ReadFile(p)
					b[pos] ^= mask
					os.WriteFile(p, b, 0o644)
				} else {
					os.Truncate(p, pos)
				}
				break
			}
		}

		l, err := Open(dir, cfg, Options{})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer l.Close()
		n := checkPrefix(t, l, a)
		if damaged >= 0 {
			var end int64
			intact := 0
			for _, b := range a.batches {
				end += int64(len(b))
				if end > damaged {
					break
				}
				intact++
			}
			if n < intact {
				t.Fatalf("kept %d batches, but %d lie wholly before the damage at byte %d", n, intact, damaged)
			}
		}
		if _, err := l.Append(makeBatchN(1, 1, 0), 1000); err != nil {
			t.Fatalf("append after recovery: %v", err)
		}
	})
}
