// Package rpc is the wire contract between gateways and nodes on NATS: a
// Kafka request or response body encoded by kmsg, with the API key and
// version in headers, on a node's Kafka subject.
package rpc

import "strconv"

// NATS headers of a Kafka message carried over NATS.
const (
	HeaderAPIKey     = "Kafka-Api-Key"
	HeaderAPIVersion = "Kafka-Api-Version"
	// HeaderError carries a request-level failure: the body could not be
	// decoded, or the API is not served there.
	HeaderError = "Strata-Error"
	// HeaderProgress on a request asks for an interim reply, and on a
	// reply marks one: a bodiless message sent before the answer, at the
	// stage the value names. ProgressAppended: every partition of a
	// produce is in the leader's log and only the wait for replicas is
	// left.
	HeaderProgress   = "Strata-Progress"
	ProgressAppended = "appended"
	// HeaderTierRead on a Fetch says the gateway reads uploaded segments
	// from the object store itself: a partition whose fetch offset lies
	// below the node's local log is answered with
	// OFFSET_MOVED_TO_TIERED_STORAGE and a remote hint (tier.
	// EncodeRemoteHint) instead of the records.
	HeaderTierRead = "Strata-Tier-Read"
)

// KafkaSubject is where node id serves Kafka requests for the partitions
// it leads.
func KafkaSubject(cluster string, id int32) string {
	return "strata." + cluster + ".node." + strconv.Itoa(int(id)) + ".kafka"
}

// GroupSubject is where gateways send consumer-group requests; the
// controller's group coordinator answers.
func GroupSubject(cluster string) string { return "strata." + cluster + ".group" }

// HeaderClientID carries the Kafka client id of a forwarded request.
const HeaderClientID = "Kafka-Client-Id"

// TierSubject is where nodes answer tier admin requests (op is ls or
// restore) as JSON messages, to one node of queue group TierQueue.
func TierSubject(cluster, op string) string { return "strata." + cluster + ".tier." + op }

// TierStatusSubject is where node id answers tier status for the
// partitions it leads.
func TierStatusSubject(cluster string, id int32) string {
	return "strata." + cluster + ".tier.status." + strconv.Itoa(int(id))
}

// CompactionStatusSubject is where node id answers the compaction state
// of its compacted partitions (CompactionReply).
func CompactionStatusSubject(cluster string, id int32) string {
	return "strata." + cluster + ".compaction.status." + strconv.Itoa(int(id))
}

// CompactionReply is a node's answer on CompactionStatusSubject: one
// entry per compacted partition it holds a replica of.
type CompactionReply struct {
	Node       int32                 `json:"node"`
	Partitions []PartitionCompaction `json:"partitions"`
}

// PartitionCompaction is one replica's compaction state.
type PartitionCompaction struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Leader    bool   `json:"leader"`
	// DirtyRatio is the part of the cleanable log not cleaned yet;
	// CleanedTo the cleaner checkpoint (below it each key appears once).
	DirtyRatio     float64 `json:"dirty_ratio"`
	CleanedTo      int64   `json:"cleaned_to"`
	BytesReclaimed int64   `json:"bytes_reclaimed"`
	Cleans         int64   `json:"cleans"`
	LastError      string  `json:"last_error,omitempty"`
	// Remote is the compaction of the partition's uploaded segments, on
	// its leader (tiered topics only).
	Remote *RemoteCompaction `json:"remote,omitempty"`
}

// RemoteCompaction is the compaction state of a partition's uploaded
// segments: the same figures over the manifest.
type RemoteCompaction struct {
	DirtyRatio     float64 `json:"dirty_ratio"`
	CleanedTo      int64   `json:"cleaned_to"`
	BytesReclaimed int64   `json:"bytes_reclaimed"`
	Cleans         int64   `json:"cleans"`
	LastError      string  `json:"last_error,omitempty"`
}

// TierQueue is the queue group of the one-node tier subjects.
const TierQueue = "strata-tier"
