package meta

import "testing"

// TestFeatures: a feature never set is at its default; SetFeatures
// changes it and the epoch; an unknown feature or a level out of range is
// refused and changes nothing.
func TestFeatures(t *testing.T) {
	a := &applier{t: t, f: openTestFSM(t, t.TempDir())}
	read := func() Features {
		t.Helper()
		v := a.f.View()
		defer v.Close()
		f, err := v.Features()
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	if f := read(); f.Level(FeatureTransactionVersion) != 2 || f.Epoch != 0 {
		t.Fatalf("defaults: %+v, want transaction.version 2 at epoch 0", f)
	}
	a.wantErr(ErrInvalidRequest, &SetFeatures{Levels: map[string]int16{"no.such.feature": 1}})
	a.wantErr(ErrInvalidRequest, &SetFeatures{Levels: map[string]int16{FeatureTransactionVersion: 3}})
	a.wantErr(ErrInvalidRequest, &SetFeatures{})
	if f := read(); f.Epoch != 0 {
		t.Fatalf("refused changes moved the epoch: %+v", f)
	}
	a.mustApply(&SetFeatures{Levels: map[string]int16{FeatureTransactionVersion: 1}})
	if f := read(); f.Level(FeatureTransactionVersion) != 1 || f.Epoch != 1 {
		t.Fatalf("after a downgrade: %+v", f)
	}
	a.mustApply(&SetFeatures{Levels: map[string]int16{FeatureTransactionVersion: 2}})
	if f := read(); f.Level(FeatureTransactionVersion) != 2 || f.Epoch != 2 {
		t.Fatalf("after an upgrade: %+v", f)
	}
}
