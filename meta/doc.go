// Package meta holds cluster metadata and consumer offsets in one Raft group
// (hashicorp/raft) whose log, stable store and state machine live in Badger.
// The Raft leader is the controller: it assigns replicas, elects partition
// leaders from the ISR, applies ISR changes fenced by partition epoch and
// records tier manifest entries fenced by leader epoch.
package meta
