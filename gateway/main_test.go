package gateway_test

import (
	"os"
	"testing"

	"github.com/strata-io/strata/testenv"
)

// TestMain lets the test binary run as a node or a gateway of
// testenv.Processes (the separate-process benchmarks).
func TestMain(m *testing.M) {
	testenv.RunChild()
	os.Exit(m.Run())
}
