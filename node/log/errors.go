package log

import "errors"

// Sentinel errors. Callers test them with errors.Is; every error this
// package returns for a bad batch or a bad request wraps exactly one of
// them, with the detail in the message. The gateway maps each to a Kafka
// error code at the protocol boundary.
var (
	// ErrCorrupt is returned by Append and ValidateBatch when a batch fails
	// its length, magic or CRC-32C check (Kafka: CORRUPT_MESSAGE), and by
	// Read when stored bytes no longer parse (the log then reports itself
	// failed).
	ErrCorrupt = errors.New("log: corrupt record batch")

	// ErrTooLarge is returned by Append when a batch is larger than
	// max.message.bytes or than segment.bytes (Kafka: MESSAGE_TOO_LARGE).
	ErrTooLarge = errors.New("log: record batch too large")

	// ErrInvalidRecord is returned by Append when the batch header is
	// intact but its records are not: a record count that disagrees with
	// the offset range, or record framing that does not add up (Kafka:
	// INVALID_RECORD).
	ErrInvalidRecord = errors.New("log: invalid record")

	// ErrOffsetOutOfRange is returned by Read, DeleteRecordsBefore and
	// AppendReplicated for an offset outside [log start, log end]
	// (Kafka: OFFSET_OUT_OF_RANGE).
	ErrOffsetOutOfRange = errors.New("log: offset out of range")

	// ErrFailed is returned by every method once an I/O error or on-disk
	// corruption has made the log's state uncertain. The partition must be
	// reopened (which recovers it) before it serves again (Kafka:
	// KAFKA_STORAGE_ERROR).
	ErrFailed = errors.New("log: partition failed")

	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("log: closed")

	// ErrFencedLeaderEpoch is returned by Append when the caller's leader
	// epoch is older than one the log already holds: a stale leader
	// (Kafka: FENCED_LEADER_EPOCH).
	ErrFencedLeaderEpoch = errors.New("log: fenced leader epoch")

	// ErrIO is returned by Append, DeleteRecordsBefore and rolls when an
	// I/O error (a full disk, say) stopped the operation but the log could
	// be left exactly as it was; it keeps serving and the call may be
	// retried (Kafka: KAFKA_STORAGE_ERROR, retriable).
	ErrIO = errors.New("log: I/O error")
)
