// Package node is the `strata node` process: a metadata member (meta) and
// a partition server, plus the consumer-group service (package group) that
// coordinates while this node is the controller. The partition server
// answers Kafka Produce, Fetch, ListOffsets, DeleteRecords,
// OffsetForLeaderEpoch and DescribeLogDirs requests for the partitions it
// hosts on the NATS subject strata.<cluster>.node.<id>.kafka: bodies
// encoded by kmsg, API key and version in headers (internal/rpc).
//
// Each hosted partition is one openLog (partitions.go): its log (node/log)
// in <topic>-<partition> under the node's data directory, its replication role and high
// watermark (replication.go, node/replica), its idempotent producer state
// with snapshots on disk (producers.go, prodsnap.go) and its tier state
// (tier.go: uploads to the store, local deletion only of what the
// manifest covers). A roles loop opens, leads, follows and drops
// partitions as the metadata says, off the request path; a request finds
// its partition open or gets a retriable error at once. Remote reads
// below the local log start come from the store (remote.go).
//
// Every request is answered on its own goroutine (bounded); fetches
// long-poll on a broadcast channel closed at each append. A maintenance
// loop rolls, retains, flushes, uploads and snapshots each open
// partition. Close cancels in-flight requests, waits for opens and drops
// under way, then closes every log cleanly. docs/architecture.md has the
// goroutine map and the lock order.
package node
