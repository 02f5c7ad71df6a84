// Package invariant switches on expensive self-checks for the packages
// above node/log (which keeps its own switch: it imports nothing of
// Strata). Build with -tags invariants, or -race, to enable them; a
// failed check is a bug and panics.
package invariant
