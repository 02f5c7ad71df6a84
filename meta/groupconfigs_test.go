package meta

import (
	"maps"
	"testing"
	"time"
)

// TestGroupConfigs: a group's configs are set and deleted key by key, a
// bad value or unknown key is refused whole, and an emptied set is gone.
func TestGroupConfigs(t *testing.T) {
	a := &applier{t: t, f: openTestFSM(t, t.TempDir())}
	read := func() map[string]string {
		t.Helper()
		v := a.f.View()
		defer v.Close()
		m, err := v.GroupConfigs("q")
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a.mustApply(&AlterGroupConfigs{Group: "q", Set: map[string]string{"share.auto.offset.reset": "earliest", "share.record.lock.duration.ms": "15000"}})
	a.mustApply(&AlterGroupConfigs{Group: "q", Set: map[string]string{"share.delivery.count.limit": "3"}, Delete: []string{"share.record.lock.duration.ms"}})
	want := map[string]string{"share.auto.offset.reset": "earliest", "share.delivery.count.limit": "3"}
	if got := read(); !maps.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, bad := range []map[string]string{
		{"share.delivery.count.limit": "1"},
		{"share.auto.offset.reset": "sometimes"},
		{"share.auto.offset.reset": "by_duration:1h"},
		{"share.isolation.level": "read_everything"},
		{"no.such.key": "1"},
		{"share.delivery.count.limit": "4", "share.record.lock.duration.ms": "10"},
	} {
		a.wantErr(ErrInvalidConfig, &AlterGroupConfigs{Group: "q", Set: bad})
	}
	a.wantErr(ErrInvalidConfig, &AlterGroupConfigs{Group: "q", Delete: []string{"no.such.key"}})
	a.wantErr(ErrInvalidRequest, &AlterGroupConfigs{Set: map[string]string{"share.delivery.count.limit": "4"}})
	if got := read(); !maps.Equal(got, want) {
		t.Fatalf("a refused change applied: %v", got)
	}
	if GroupConfig(read(), "share.isolation.level") != "read_uncommitted" || GroupConfig(read(), "share.delivery.count.limit") != "3" {
		t.Fatal("GroupConfig does not fall back to the default")
	}
	a.mustApply(&AlterGroupConfigs{Group: "q", Delete: []string{"share.auto.offset.reset", "share.delivery.count.limit"}})
	if got := read(); got != nil {
		t.Fatalf("emptied configs still stored: %v", got)
	}
}

func TestParseISODuration(t *testing.T) {
	for s, want := range map[string]time.Duration{
		"PT1H": time.Hour, "P1D": 24 * time.Hour, "P1DT2H30M": 26*time.Hour + 30*time.Minute,
		"PT0.5S": 500 * time.Millisecond, "pt15m": 15 * time.Minute,
	} {
		if got, err := ParseISODuration(s); err != nil || got != want {
			t.Errorf("%s: got %v %v, want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "P", "PT", "1H", "PH", "P1H", "PT1D", "PT-1H", "P1DTT1H", "PT1X"} {
		if _, err := ParseISODuration(s); err == nil {
			t.Errorf("%q parsed", s)
		}
	}
}
