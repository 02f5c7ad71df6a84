// Package node is the `strata node` process: a metadata member (meta) and
// a partition server, plus the consumer-group service (package group) that
// coordinates while this node is the controller. The partition server
// answers Kafka Produce, Fetch, ListOffsets, DeleteRecords and
// OffsetForLeaderEpoch requests for the partitions this node leads on the
// NATS subject strata.<cluster>.node.<id>.kafka: bodies encoded by kmsg,
// API key and version in headers (internal/rpc). It opens a partition's log
// (node/log) under <data-dir>/partitions/<topic>-<partition> on first use,
// once its local copy of the metadata says it leads the partition, and
// runs each log's periodic maintenance.
//
// Every request is answered on its own goroutine (bounded); fetches
// long-poll on a broadcast channel closed at each append. Close cancels
// in-flight requests, then closes every log cleanly.
//
// Not built yet: replication (node/replica), tier upload and remote reads,
// idempotent-producer sequence checks.
package node
