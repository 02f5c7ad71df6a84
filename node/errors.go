package node

import "github.com/strata-io/strata/internal/errcode"

// errorCode returns the Kafka error code for an error from the log or
// the tier (internal/errcode), UNKNOWN_SERVER_ERROR for anything
// unexpected.
func errorCode(err error) int16 { return errcode.Of(err) }
