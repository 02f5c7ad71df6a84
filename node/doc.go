// Package node is the `strata node` process: it opens the partition logs it
// hosts (node/log), replicates them (node/replica), uploads closed segments
// and serves remote reads (tier), takes part in the metadata Raft group
// (meta), and answers Kafka requests for its partitions on the NATS subject
// strata.<cluster>.node.<id>.kafka.
package node
