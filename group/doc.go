// Package group is the classic Kafka consumer-group coordinator: JoinGroup,
// SyncGroup, Heartbeat and LeaveGroup with generation fencing, rebalances
// on join, leave and session timeout, and static membership
// (group.instance.id); OffsetCommit and OffsetFetch go through a store
// (the metadata Raft group). The client assigns partitions, so eager and
// cooperative-sticky assignors both work.
//
// Membership is soft state kept by the controller: a new controller starts
// with no groups, and members rejoin (their offsets are in Raft).
//
// Thread-safety: Coordinator methods are safe for concurrent use; one
// mutex guards every group. JoinGroup and SyncGroup block until the
// rebalance step they wait for completes, or their context ends.
package group
