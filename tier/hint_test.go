package tier

import (
	"errors"
	"strings"
	"testing"

	"github.com/strata-io/strata/meta"
)

// TestRemoteHint: a hint decodes to the segments it was made of, and one
// for another partition, for an offset it does not hold, or naming an
// object outside its partition is ErrBadManifest.
func TestRemoteHint(t *testing.T) {
	id := [16]byte{1, 2, 3}
	seg := func(base, last int64) meta.TierSegment {
		return meta.TierSegment{Topic: "t", Partition: 2, BaseOffset: base, LastOffset: last, SizeBytes: 100, LeaderEpoch: 1,
			ObjectKey: SegmentKey("t", id, 2, base, 1) + ".log"}
	}
	b := EncodeRemoteHint("t", id, 2, 5, seg(0, 9), seg(10, 19))
	got, next, err := DecodeRemoteHint(b, "t", 2, 7)
	if err != nil || got.BaseOffset != 0 || got.LastOffset != 9 || got.ObjectKey != seg(0, 9).ObjectKey || next == nil || next.BaseOffset != 10 {
		t.Fatalf("decoded %+v, next %+v, %v", got, next, err)
	}
	if _, next, err := DecodeRemoteHint(EncodeRemoteHint("t", id, 2, 0, seg(0, 9)), "t", 2, 0); err != nil || next != nil {
		t.Fatalf("one segment: next %+v, %v", next, err)
	}
	hostile := seg(0, 9)
	hostile.ObjectKey = "other-topic/0/x.log"
	for name, c := range map[string]struct {
		b      []byte
		topic  string
		p      int32
		offset int64
	}{
		"another partition":   {b, "t", 3, 7},
		"another topic":       {b, "u", 2, 7},
		"below the log start": {b, "t", 2, 4},
		"past the segment":    {b, "t", 2, 10},
		"no segment":          {EncodeRemoteHint("t", id, 2, 0), "t", 2, 0},
		"a foreign object":    {EncodeRemoteHint("t", id, 2, 0, hostile), "t", 2, 0},
		"garbage":             {[]byte("{\"version\":1,"), "t", 2, 0},
		"three segments":      {EncodeRemoteHint("t", id, 2, 0, seg(0, 9), seg(10, 19), seg(20, 29)), "t", 2, 0},
	} {
		if _, _, err := DecodeRemoteHint(c.b, c.topic, c.p, c.offset); !errors.Is(err, ErrBadManifest) {
			t.Errorf("%s: %v, want ErrBadManifest", name, err)
		} else if !strings.Contains(err.Error(), "manifest") && !strings.Contains(err.Error(), "hint") {
			t.Errorf("%s: unclear error %v", name, err)
		}
	}
}
