//go:build !invariants && !race

package invariant

// Enabled turns on expensive self-checks; see on.go.
const Enabled = false
