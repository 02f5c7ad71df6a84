//go:build invariants || race

package invariant

// Enabled turns on expensive self-checks.
const Enabled = true
