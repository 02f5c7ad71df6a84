//go:build !invariants && !race

package log

// invariantsEnabled turns on expensive self-checks; see invariants_on.go.
const invariantsEnabled = false
