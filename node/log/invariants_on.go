//go:build invariants || race

package log

// invariantsEnabled turns on expensive self-checks (every batch read back
// is CRC-checked). Build with -tags invariants, or -race, to enable.
const invariantsEnabled = true
