package meta

import (
	"fmt"
	"maps"
	"slices"
)

// Cluster features, as Kafka's finalized features (KIP-584): a level per
// feature that the whole cluster uses, which clients read in ApiVersions
// and operators change with UpdateFeatures (kafka-features.sh). A feature
// with no level set is at its default.

// FeatureTransactionVersion is transaction.version: 2 turns on
// transactions v2 (KIP-890 part 2: the epoch bumped by every EndTxn,
// partitions and groups added by Produce and TxnOffsetCommit themselves).
const FeatureTransactionVersion = "transaction.version"

// FeatureRange is the levels of a feature this version supports.
type FeatureRange struct{ Min, Max int16 }

// SupportedFeatures are the features this version knows, and the levels
// it can run at.
var SupportedFeatures = map[string]FeatureRange{
	FeatureTransactionVersion: {0, 2},
}

// defaultFeatures are the levels of features never set: the newest.
var defaultFeatures = map[string]int16{
	FeatureTransactionVersion: 2,
}

// Features are the finalized levels and the epoch of their last change
// (0 while every level is its default).
type Features struct {
	Levels map[string]int16 `json:"levels"`
	Epoch  int64            `json:"epoch"`
}

// Level is a feature's finalized level.
func (f Features) Level(name string) int16 { return f.Levels[name] }

// TxnV2 reports whether transactions v2 are on (transaction.version 2).
func (f Features) TxnV2() bool { return f.Level(FeatureTransactionVersion) >= 2 }

// TxnV2 reports whether the view's cluster runs transactions v2.
func (v *View) TxnV2() bool {
	f, err := v.Features()
	return err == nil && f.TxnV2()
}

// SetFeatures sets features' levels (UpdateFeatures): each must be a
// supported feature at a supported level.
type SetFeatures struct{ Levels map[string]int16 }

const TypeSetFeatures CommandType = 27

const keyFeatures = "c/features"

func (SetFeatures) Type() CommandType { return TypeSetFeatures }

func (c *SetFeatures) encode(e *encoder) {
	names := slices.Sorted(maps.Keys(c.Levels))
	e.uvarint(uint64(len(names)))
	for _, n := range names {
		e.string(n)
		e.varint(int64(c.Levels[n]))
	}
}

func (c *SetFeatures) decode(d *decoder) {
	n := d.length()
	c.Levels = make(map[string]int16, n)
	for range n {
		name := d.string()
		c.Levels[name] = int16(d.varint())
	}
}

func (f *Features) encode() []byte {
	e := encoder{}
	e.byte(stateVersion)
	(&SetFeatures{Levels: f.Levels}).encode(&e)
	e.varint(f.Epoch)
	return e.b
}

func decodeFeatures(b []byte) (Features, error) {
	d := decoder{b: b}
	if v := d.byte(); v != stateVersion {
		return Features{}, fmt.Errorf("%w: features record version %d", ErrUnknownCommand, v)
	}
	var s SetFeatures
	s.decode(&d)
	f := Features{Levels: s.Levels, Epoch: d.varint()}
	return f, d.finish("features")
}

// ValidateFeature checks that level is one this version supports for name.
func ValidateFeature(name string, level int16) error {
	r, ok := SupportedFeatures[name]
	switch {
	case !ok:
		return fmt.Errorf("%w: unknown feature %q", ErrInvalidRequest, name)
	case level < r.Min || level > r.Max:
		return fmt.Errorf("%w: %s level %d is outside the supported %d-%d", ErrInvalidRequest, name, level, r.Min, r.Max)
	}
	return nil
}

// features reads the finalized features, defaults filled in.
func readFeatures(get func() (Features, bool, error)) (Features, error) {
	f, _, err := get()
	if err != nil {
		return Features{}, err
	}
	levels := maps.Clone(defaultFeatures)
	maps.Copy(levels, f.Levels)
	f.Levels = levels
	return f, nil
}

func (w *writer) setFeatures(c *SetFeatures) (*ApplyResult, error) {
	if len(c.Levels) == 0 {
		return rejected(fmt.Errorf("%w: no feature to set", ErrInvalidRequest))
	}
	for name, level := range c.Levels {
		if err := ValidateFeature(name, level); err != nil {
			return rejected(err)
		}
	}
	f, err := readFeatures(func() (Features, bool, error) { return getRecord(w.txn, []byte(keyFeatures), decodeFeatures) })
	if err != nil {
		return nil, err
	}
	maps.Copy(f.Levels, c.Levels)
	f.Epoch++
	return &ApplyResult{}, w.set([]byte(keyFeatures), f.encode())
}

// Features reads the cluster's finalized features, defaults filled in.
func (v *View) Features() (Features, error) {
	return readFeatures(func() (Features, bool, error) { return getRecord(v.txn, []byte(keyFeatures), decodeFeatures) })
}
