package meta

import "errors"

// Sentinel errors. Commands that fail return one of these wrapped with the
// detail; the gateway maps them to Kafka error codes at its boundary.
var (
	// ErrTopicExists: CreateTopic for a name in use (TOPIC_ALREADY_EXISTS).
	ErrTopicExists = errors.New("meta: topic already exists")
	// ErrUnknownTopic: a command names a topic or partition that does not
	// exist (UNKNOWN_TOPIC_OR_PARTITION).
	ErrUnknownTopic = errors.New("meta: unknown topic or partition")
	// ErrInvalidConfig: an unknown config key or a bad value
	// (INVALID_CONFIG).
	ErrInvalidConfig = errors.New("meta: invalid config")
	// ErrInvalidRequest: a command that is malformed for the state it
	// meets, such as fewer partitions than exist (INVALID_PARTITIONS,
	// INVALID_REPLICATION_FACTOR, INVALID_REQUEST).
	ErrInvalidRequest = errors.New("meta: invalid request")
	// ErrStaleEpoch: an ISR change with an old partition epoch, or a tier
	// manifest entry with an old leader epoch (FENCED_LEADER_EPOCH /
	// INVALID_UPDATE_VERSION). The sender's view is out of date.
	ErrStaleEpoch = errors.New("meta: stale epoch")
	// ErrUnknownCommand: a command of a version or type this node does not
	// know. It is rejected whole; nothing of it is applied.
	ErrUnknownCommand = errors.New("meta: unknown command")
	// ErrNotEnoughNodes: fewer live nodes than the replication factor
	// (INVALID_REPLICATION_FACTOR).
	ErrNotEnoughNodes = errors.New("meta: not enough live nodes")
	// ErrNotLeader: a proposal reached a node that is not the Raft leader
	// and could not be forwarded (NOT_CONTROLLER).
	ErrNotLeader = errors.New("meta: not the controller")
	// ErrInvalidReplicas: a replica list with a duplicate or an unknown
	// node (INVALID_REPLICA_ASSIGNMENT).
	ErrInvalidReplicas = errors.New("meta: invalid replica assignment")
	// ErrNoReassignment: a cancel or completion of a partition that is
	// not moving (NO_REASSIGNMENT_IN_PROGRESS).
	ErrNoReassignment = errors.New("meta: no reassignment in progress")
)
