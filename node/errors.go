package node

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	plog "github.com/strata-io/strata/node/log"
	"github.com/strata-io/strata/tier"
)

// logErrors maps every node/log sentinel to the Kafka error a broker
// sends for it. A test checks none is missing.
var logErrors = []struct {
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
	// KAFKA_STORAGE_ERROR is.
	{tier.ErrUnavailable, kerr.KafkaStorageError},
}

// errorCode returns the Kafka error code for an error from the log, or
// UNKNOWN_SERVER_ERROR for anything unexpected.
func errorCode(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	for _, m := range logErrors {
		if errors.Is(err, m.err) {
			return m.code.Code
		}
	}
	return kerr.UnknownServerError.Code
}
