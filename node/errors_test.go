package node

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	plog "github.com/strata-io/strata/node/log"
	"github.com/strata-io/strata/tier"
)

// TestEveryLogSentinelMapped checks each node/log sentinel (and the tier's), wrapped as
// the log wraps it, maps to its Kafka error and never to
// UNKNOWN_SERVER_ERROR.
func TestEveryLogSentinelMapped(t *testing.T) {
	sentinels := []error{plog.ErrCorrupt, plog.ErrTooLarge, plog.ErrInvalidRecord, plog.ErrOffsetOutOfRange,
		plog.ErrFencedLeaderEpoch, plog.ErrFailed, plog.ErrIO, plog.ErrClosed, tier.ErrUnavailable}
	for _, s := range sentinels {
		code := errorCode(fmt.Errorf("%w: detail", s))
		if code == kerr.UnknownServerError.Code || code == 0 {
			t.Errorf("%v maps to %v", s, kerr.ErrorForCode(code))
		}
	}
	if len(logErrors) != len(sentinels) {
		t.Errorf("mapping has %d entries for %d sentinels", len(logErrors), len(sentinels))
	}
	if errorCode(kerr.NotLeaderForPartition) != kerr.NotLeaderForPartition.Code {
		t.Error("a kerr error must map to itself")
	}
}
