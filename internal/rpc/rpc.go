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

// TierQueue is the queue group of the one-node tier subjects.
const TierQueue = "strata-tier"
