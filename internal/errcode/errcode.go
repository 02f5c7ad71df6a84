// Package errcode maps the storage errors of node/log and tier to the
// Kafka error codes a broker sends for them, so that a read answers the
// same whether a node or a gateway served it.
package errcode

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	plog "github.com/strata-io/strata/node/log"
	"github.com/strata-io/strata/tier"
)

// sentinels maps every node/log sentinel, and the tier's, to the Kafka
// error a broker sends for it. A test checks none is missing.
var sentinels = []struct {
	err  error
	code *kerr.Error
}{
	{plog.ErrCorrupt, kerr.CorruptMessage},
	{plog.ErrTooLarge, kerr.MessageTooLarge},
	{plog.ErrInvalidRecord, kerr.InvalidRecord},
	{plog.ErrOffsetOutOfRange, kerr.OffsetOutOfRange},
	{plog.ErrFencedLeaderEpoch, kerr.FencedLeaderEpoch},
	{plog.ErrFailed, kerr.KafkaStorageError},
	{plog.ErrIO, kerr.KafkaStorageError},
	{plog.ErrClosed, kerr.NotLeaderForPartition},
	// A remote read that failed is retried by the client, as Kafka's
	// KAFKA_STORAGE_ERROR is; so is a bad manifest or remote hint.
	{tier.ErrUnavailable, kerr.KafkaStorageError},
	{tier.ErrBadManifest, kerr.KafkaStorageError},
}

// Of returns the Kafka error code for err: a kerr error's own, a
// sentinel's, or UNKNOWN_SERVER_ERROR for anything unexpected (0 for
// nil).
func Of(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	for _, m := range sentinels {
		if errors.Is(err, m.err) {
			return m.code.Code
		}
	}
	return kerr.UnknownServerError.Code
}
