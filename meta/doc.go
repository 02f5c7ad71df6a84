// Package meta holds cluster metadata and consumer offsets in one Raft group
// (hashicorp/raft) whose log, stable store and state machine live in Badger.
// The Raft leader is the controller: it assigns replicas, elects partition
// leaders from the ISR, applies ISR changes fenced by partition epoch and
// records tier manifest entries fenced by leader epoch.
//
// # Layers
//
//	RaftStore  raft.LogStore + raft.StableStore over one Badger DB (raft/),
//	           every write synced.
//	FSM        typed state in a second Badger DB (state/) in managed mode:
//	           each batch of entries commits at the Raft index of its last
//	           entry, so the index is the state's version. Not synced: it
//	           records its applied index with the state and skips replays.
//	Server     Raft over both, hashicorp's TCP transport, file snapshots
//	           (snapshots/); proposals and linearizable reads.
//	Member     a Server on NATS: heartbeats, bootstrap, the controller loop,
//	           meta.apply / meta.read / meta.events, batched offset commits.
//	Client     meta.apply / meta.read / meta.events from anywhere.
//
// # Encodings
//
// Raft log entry in RaftStore (key "l" + index, 8 bytes big-endian):
//
//	| version 1 | index uvarint | term uvarint | type 1 | appendedAt varint ns |
//	| len uvarint | data | len uvarint | extensions |
//
// Command (the data of a Raft command entry):
//
//	| commandVersion 1 | CommandType 1 | payload: varints, length-prefixed
//	  strings and lists, maps in key order |
//
// An unknown version or type is rejected whole (ErrUnknownCommand).
//
// State keys (values are records led by a version byte):
//
//	n/<id:4>                              Node
//	t/<name>                              Topic
//	p/<topic>\x00<partition:4>            Partition
//	o/<group>\x00<topic>\x00<partition:4> Offset
//	s/<topic>\x00<partition:4><base:8>    TierSegment
//	rt/<topic>\x00<partition:4><key>      retired object (replaced by compaction): retired at, ms
//	tc/<topic>\x00<partition:4>           TierCleanerState (remote cleaner checkpoint)
//	a                                     applied Raft index (8 bytes)
//
// Snapshots are Badger's backup format of the state DB at the snapshot's
// version, streamed while later entries keep applying.
//
// # Goroutines and locks
//
// Member runs a heartbeat loop and a controller loop (acting only while it
// leads), and answers each apply/read request on its own goroutine, at most
// maxConcurrentRequests at once. The offset batcher runs one gathering loop
// and up to four proposals in flight. Lock order: Member.controlMu, then
// Member.mu; FSM.pinMu is a leaf. FSM methods are safe for concurrent use;
// Apply/ApplyBatch/Restore are called by Raft's FSM goroutine only.
package meta
