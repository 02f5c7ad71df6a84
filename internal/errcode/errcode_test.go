package errcode

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	plog "github.com/strata-io/strata/node/log"
	"github.com/strata-io/strata/tier"
)

// TestEverySentinelMapped checks each node/log and tier sentinel, wrapped
// as they wrap it, maps to a Kafka error and never to
// UNKNOWN_SERVER_ERROR.
func TestEverySentinelMapped(t *testing.T) {
	all := []error{plog.ErrCorrupt, plog.ErrTooLarge, plog.ErrInvalidRecord, plog.ErrOffsetOutOfRange,
		plog.ErrFencedLeaderEpoch, plog.ErrFailed, plog.ErrIO, plog.ErrClosed, tier.ErrUnavailable, tier.ErrBadManifest}
	for _, s := range all {
		code := Of(fmt.Errorf("%w: detail", s))
		if code == kerr.UnknownServerError.Code || code == 0 {
			t.Errorf("%v maps to %v", s, kerr.ErrorForCode(code))
		}
	}
	if len(sentinels) != len(all) {
		t.Errorf("mapping has %d entries for %d sentinels", len(sentinels), len(all))
	}
	if Of(kerr.NotLeaderForPartition) != kerr.NotLeaderForPartition.Code {
		t.Error("a kerr error must map to itself")
	}
	if Of(nil) != 0 || Of(fmt.Errorf("other")) != kerr.UnknownServerError.Code {
		t.Error("nil must map to 0, an unknown error to UNKNOWN_SERVER_ERROR")
	}
}
