package node_test

import (
	"os"
	"testing"

	"github.com/strata-io/strata/testenv"
)

// TestMain lets the test binary run as a node or gateway of a
// testenv.Processes cluster, or as a replaying consumer of benchmarks.
func TestMain(m *testing.M) {
	testenv.RunChild()
	runReplayChild()
	runPeerChildren()
	os.Exit(m.Run())
}
