package meta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"

	"github.com/strata-io/strata/internal/invariant"
)

// FSM is the metadata state machine: typed state in a Badger DB opened in
// managed mode, where every batch of Raft entries commits at the Raft
// index of its last entry. The Raft index is therefore the state's
// version: a View reads the state as of one index, and a snapshot streams
// Badger's backup of exactly the state at its index while later entries go
// on applying.
//
// The DB is not synced: it records the index it has applied, atomically
// with the state, and entries at or below it are skipped when Raft replays
// them. If a crash lost unsynced writes and left the state behind the
// newest Raft snapshot, Node restores that snapshot before starting Raft.
type FSM struct {
	db      *badger.DB
	logger  *slog.Logger
	onApply func(version uint64, applied []Command)

	// applied is the Raft index the state reflects (its version).
	applied atomic.Uint64
	// topology counts the commits that wrote a topic or partition record,
	// and restores: what a reader read of those holds while it is
	// unchanged.
	topology atomic.Uint64
	// shareResets counts the commits that reset or deleted share state
	// from outside its leaders, and restores (ShareResets).
	shareResets atomic.Uint64

	// pinMu guards pins: versions open views and snapshots read at.
	// Badger may drop a key's versions at or below the discard timestamp
	// except the newest, so it must stay at or below every pinned version.
	pinMu sync.Mutex
	pins  map[uint64]int
	// discardTs is the last discard timestamp given to Badger, which
	// requires it never to go down (a restore to an older snapshot keeps
	// the old one). Guarded by pinMu.
	discardTs uint64

	metrics *fsmMetrics
}

// ApplyResult is what applying a command returned: Err is nil or wraps a
// sentinel; Partition is the resulting record for partition commands.
type ApplyResult struct {
	Err       error
	Partition Partition
	// Value is a command's number: the first producer id allocated.
	Value int64
	// Txn is a transaction command's state after it (also with some
	// errors: an InitTxn that aborts an ongoing transaction).
	Txn *Transaction
}

// OpenFSM opens (creating) the state DB in dir. onApply, if set, is called
// after each batch with the new version and the commands that succeeded;
// after a restore, with no commands.
func OpenFSM(dir string, logger *slog.Logger, onApply func(uint64, []Command)) (*FSM, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := removeEmptyValueLogs(dir, logger); err != nil {
		return nil, err
	}
	db, err := badger.OpenManaged(badgerOptions(dir, logger))
	if err != nil {
		return nil, fmt.Errorf("meta: open state %s: %w", dir, err)
	}
	f := &FSM{db: db, logger: logger, onApply: onApply, pins: map[uint64]int{}, metrics: newFSMMetrics()}
	applied, err := f.readApplied()
	if err != nil {
		db.Close()
		return nil, err
	}
	f.applied.Store(applied)
	return f, nil
}

func (f *FSM) readApplied() (uint64, error) {
	txn := f.db.NewTransactionAt(math.MaxUint64, false)
	defer txn.Discard()
	item, err := txn.Get([]byte(keyApplied))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var applied uint64
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("meta: applied index of %d bytes", len(v))
		}
		applied = binary.BigEndian.Uint64(v)
		return nil
	})
	return applied, err
}

// Close closes the state DB.
func (f *FSM) Close() error { return f.db.Close() }

// Applied is the Raft index the state reflects: its version.
func (f *FSM) Applied() uint64 { return f.applied.Load() }

// Topology changes after every commit that wrote a topic or partition
// record. Read it before opening a View: what the view says of topics
// and partitions stays current for as long as Topology returns the same.
func (f *FSM) Topology() uint64 { return f.topology.Load() }

// ShareResets changes after every commit that reset or deleted share
// state other than by its leader's writes: a leader's copy of a
// share-partition stays current for as long as it returns the same.
func (f *FSM) ShareResets() uint64 { return f.shareResets.Load() }

// Apply applies one entry (raft.FSM).
func (f *FSM) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies entries in one commit at the last entry's index
// (raft.BatchingFSM). Each command is applied whole or not at all; a
// failing command returns its error and the others go on.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	results := make([]any, len(logs))
	applied := f.applied.Load()
	end := logs[len(logs)-1].Index
	if end <= applied {
		return results // replayed entries the state already holds
	}
	start := time.Now()
	w := &writer{db: f.db, commitTs: end, txn: f.db.NewTransactionAt(applied, true)}
	var done []Command
	for i, l := range logs {
		if l.Index <= applied || l.Type != raft.LogCommand {
			continue
		}
		cmd, err := DecodeCommand(l.Data)
		if err != nil {
			f.logger.Warn("rejected raft entry", "index", l.Index, "error", err)
			results[i] = &ApplyResult{Err: err}
			continue
		}
		res, err := f.apply(w, cmd)
		if err != nil {
			w.txn.Discard()
			// The state DB cannot take a write: the state would diverge
			// from every other node's. Stop; a restart replays from Raft.
			panic(fmt.Sprintf("meta: state write failed at index %d: %v", l.Index, err))
		}
		results[i] = res
		if res.Err == nil {
			done = append(done, cmd)
		}
	}
	if err := w.set([]byte(keyApplied), binary.BigEndian.AppendUint64(nil, end)); err != nil {
		panic(fmt.Sprintf("meta: state write failed at index %d: %v", end, err))
	}
	if err := w.commit(); err != nil {
		panic(fmt.Sprintf("meta: state commit failed at index %d: %v", end, err))
	}
	f.applied.Store(end)
	if w.topology {
		f.topology.Add(1) // after applied: a view opened once this is seen reads the write
	}
	if w.shareReset {
		f.shareResets.Add(1)
	}
	f.metrics.apply.Observe(time.Since(start).Seconds())
	f.metrics.applyEntries.Observe(float64(len(logs)))
	f.updateDiscardTs()
	if f.onApply != nil && len(done) > 0 {
		f.onApply(end, done)
	}
	return results
}

// apply checks a command against the state and, if it passes, writes its
// effect. A rejected command returns its error in the result and writes
// nothing: every check comes before the first write. Badger transactions
// have no savepoints and a batch's commands share one, so a write before
// a rejection would commit half a command; that is a bug, and under the
// invariants build tag it panics. The error return is for the state DB
// failing.
func (f *FSM) apply(w *writer, cmd Command) (*ApplyResult, error) {
	writes := w.writes
	res, err := w.applyCmd(cmd)
	var r rejection
	if errors.As(err, &r) {
		if w.writes != writes {
			if invariant.Enabled {
				panic(fmt.Sprintf("meta: %T rejected after %d writes: %v", cmd, w.writes-writes, r.err))
			}
			f.logger.Error("meta: a command was rejected after writing; its writes stay", "command", fmt.Sprintf("%T", cmd), "error", r.err)
		}
		return &ApplyResult{Err: r.err}, nil
	}
	return res, err
}

// rejection is a check's failure returned as an error: apply turns it
// into a rejected result.
type rejection struct{ err error }

func (r rejection) Error() string { return r.err.Error() }

// rejected rejects the command being applied with err.
func rejected(err error) (*ApplyResult, error) { return nil, rejection{err} }

// partitionOrReject reads a partition's record; a missing one rejects the
// command (ErrUnknownTopic).
func (w *writer) partitionOrReject(topic string, p int32) (Partition, error) {
	part, ok, err := getRecord(w.txn, partitionKey(topic, p), decodePartition)
	if err == nil && !ok {
		err = rejection{fmt.Errorf("%w: %s-%d", ErrUnknownTopic, topic, p)}
	}
	return part, err
}

// move reads a partition (rejecting the command if there is none) and
// the reassignment in progress on it, if any.
func (w *writer) move(topic string, p int32) (Partition, Reassignment, bool, error) {
	part, err := w.partitionOrReject(topic, p)
	if err != nil {
		return part, Reassignment{}, false, err
	}
	r, moving, err := getRecord(w.txn, reassignKey(topic, p), decodeReassignment)
	return part, r, moving, err
}

// applyCmd applies one command: one function each, every one of which
// checks everything before its first write (apply holds them to it).
func (w *writer) applyCmd(cmd Command) (*ApplyResult, error) {
	switch c := cmd.(type) {
	case *RegisterNode:
		return w.registerNode(c)
	case *RemoveNode:
		return w.removeNode(c)
	case *CreateTopic:
		return w.createTopic(c)
	case *DeleteTopic:
		return w.deleteTopic(c)
	case *AlterReassignment:
		return w.alterReassignment(c)
	case *CompleteReassignment:
		return w.completeReassignment(c)
	case *ForgetDeletedTopics:
		return w.forgetDeletedTopics(c)
	case *CreatePartitions:
		return w.createPartitions(c)
	case *AlterConfigs:
		return w.alterConfigs(c)
	case *ChangeLeader:
		return w.changeLeader(c)
	case *AlterISR:
		return w.alterISR(c)
	case *CommitOffsets:
		return w.commitOffsets(c)
	case *DeleteOffsets:
		return w.deleteOffsets(c)
	case *AddTierSegment:
		return w.addTierSegment(c)
	case *AllocateProducerIDs:
		return w.allocateProducerIDs(c)
	case *DeleteTierSegments:
		return w.deleteTierSegments(c)
	case *AlterScramCredentials:
		return w.alterScramCredentials(c)
	case *CreateAcls:
		return w.createAcls(c)
	case *DeleteAcls:
		return w.deleteAcls(c)
	case *InitTxn:
		return w.initTxn(c)
	case *AddTxnPartitions:
		return w.addTxnPartitions(c)
	case *EndTxn:
		return w.endTxn(c)
	case *CompleteTxn:
		return w.completeTxn(c)
	case *TxnCommitOffsets:
		return w.txnCommitOffsets(c)
	case *ExpireTxn:
		return w.expireTxn(c)
	case *ForgetTxn:
		return w.forgetTxn(c)
	case *SetFeatures:
		return w.setFeatures(c)
	case *ReplaceTierSegments:
		return w.replaceTierSegments(c)
	case *ForgetRetiredObjects:
		return w.forgetRetiredObjects(c)
	case *MarkTierCleaned:
		return w.markTierCleaned(c)
	case *WriteShareState:
		return w.writeShareState(c)
	case *DeleteShareState:
		return w.deleteShareState(c)
	case *AlterGroupConfigs:
		return w.alterGroupConfigs(c)
	case *ResetShareState:
		return w.resetShareState(c)
	case *PutGroupMetadata:
		return w.putGroupMetadata(c)
	}
	return rejected(fmt.Errorf("%w: %T", ErrUnknownCommand, cmd))
}

func (w *writer) registerNode(c *RegisterNode) (*ApplyResult, error) {
	return &ApplyResult{}, w.set(nodeKey(c.Node.ID), c.Node.encode())
}

func (w *writer) removeNode(c *RemoveNode) (*ApplyResult, error) {
	return &ApplyResult{}, w.delete(nodeKey(c.ID))
}

func (w *writer) createTopic(c *CreateTopic) (*ApplyResult, error) {
	if err := validTopicName(c.Topic.Name); err != nil {
		return rejected(err)
	}
	if t, ok, err := getRecord(w.txn, topicKey(c.Topic.Name), decodeTopic); err != nil || ok {
		if err != nil {
			return nil, err
		}
		if len(c.Restore) > 0 && t.ID == c.Topic.ID {
			return &ApplyResult{Value: 1}, nil // already restored
		}
		return rejected(fmt.Errorf("%w: %q", ErrTopicExists, c.Topic.Name))
	}
	if c.Topic.Partitions < 1 || c.Topic.ReplicationFactor < 1 || int(c.Topic.Partitions) != len(c.Assignment) {
		return rejected(fmt.Errorf("%w: %d partitions, replication factor %d, %d assigned",
			ErrInvalidRequest, c.Topic.Partitions, c.Topic.ReplicationFactor, len(c.Assignment)))
	}
	if err := validAssignment(c.Assignment, c.Topic.ReplicationFactor); err != nil {
		return rejected(err)
	}
	if err := ValidateTopicConfigs(c.Topic.Configs); err != nil {
		return rejected(err)
	}
	if len(c.Restore) > 0 && len(c.Restore) != len(c.Assignment) {
		return rejected(fmt.Errorf("%w: %d partitions restored of %d", ErrInvalidRequest, len(c.Restore), len(c.Assignment)))
	}
	for i, r := range c.Restore {
		if err := validRestore(c.Topic.Name, int32(i), r); err != nil {
			return rejected(err)
		}
	}
	// Checked: from here on only writes.
	if err := w.set(topicKey(c.Topic.Name), c.Topic.encode()); err != nil {
		return nil, err
	}
	if len(c.Restore) > 0 {
		// A restored topic's objects are its own again.
		if err := w.delete(deletedKey(c.Topic.ID)); err != nil {
			return nil, err
		}
	}
	for i, replicas := range c.Assignment {
		p := Partition{Topic: c.Topic.Name, Partition: int32(i), Replicas: replicas, Leader: replicas[0], ISR: replicas}
		if len(c.Restore) > 0 {
			r := c.Restore[i]
			p.LogStartOffset = r.LogStartOffset
			for _, s := range r.Segments {
				p.LeaderEpoch = max(p.LeaderEpoch, s.LeaderEpoch+1)
				for _, e := range s.SegmentEpochs {
					p.LeaderEpoch = max(p.LeaderEpoch, e.Epoch+1)
				}
				if err := w.set(tierKey(s.Topic, s.Partition, s.BaseOffset), s.encode()); err != nil {
					return nil, err
				}
			}
		}
		if err := w.set(partitionKey(p.Topic, p.Partition), p.encode()); err != nil {
			return nil, err
		}
	}
	return &ApplyResult{}, nil
}

// validRestore checks a restored partition's manifest: every segment is
// the partition's own, offsets and epochs make sense, segments are in
// order without overlapping base offsets, and the log start is not past
// the end.
func validRestore(topic string, p int32, r RestoredPartition) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: restored %s-%d: %s", ErrInvalidRequest, topic, p, fmt.Sprintf(format, args...))
	}
	if r.LogStartOffset < 0 {
		return bad("log start offset %d", r.LogStartOffset)
	}
	prev := int64(-1)
	for _, s := range r.Segments {
		switch {
		case s.Topic != topic || s.Partition != p:
			return bad("segment of %s-%d", s.Topic, s.Partition)
		case s.BaseOffset < 0 || s.LastOffset < s.BaseOffset:
			return bad("segment offsets [%d, %d]", s.BaseOffset, s.LastOffset)
		case s.BaseOffset <= prev:
			return bad("segment %d after segment %d", s.BaseOffset, prev)
		case s.LeaderEpoch < 0 || s.SizeBytes < 0 || s.ObjectKey == "":
			return bad("segment %d: leader epoch %d, size %d, object %q", s.BaseOffset, s.LeaderEpoch, s.SizeBytes, s.ObjectKey)
		}
		for _, e := range s.SegmentEpochs {
			if e.Epoch < 0 || e.StartOffset < s.BaseOffset || e.StartOffset > s.LastOffset {
				return bad("segment %d: epoch %d starts at %d", s.BaseOffset, e.Epoch, e.StartOffset)
			}
		}
		prev = s.BaseOffset
	}
	return nil
}

func (w *writer) deleteTopic(c *DeleteTopic) (*ApplyResult, error) {
	t, ok, err := getRecord(w.txn, topicKey(c.Name), decodeTopic)
	if err != nil || !ok {
		if err != nil {
			return nil, err
		}
		return rejected(fmt.Errorf("%w: %q", ErrUnknownTopic, c.Name))
	}
	// The tier reconciler removes whatever objects the deleting
	// leader could not, then forgets the record.
	if err := w.set(deletedKey(t.ID), DeletedTopic{ID: t.ID, Name: t.Name}.encode()); err != nil {
		return nil, err
	}
	doomed := [][]byte{topicKey(c.Name)}
	doomed = append(doomed, w.keys(partitionPrefix(c.Name))...)
	doomed = append(doomed, w.keys(reassignTopicPrefix(c.Name))...)
	doomed = append(doomed, w.keys(tierTopicPrefix(c.Name))...)
	doomed = append(doomed, w.keys(retiredTopicPrefix(c.Name))...) // the objects go with the topic's
	doomed = append(doomed, w.keys(tierCleanerTopicPrefix(c.Name))...)
	doomed = append(doomed, w.shareTopicKeys(c.Name)...)
	for _, k := range w.keys([]byte(keyOffset)) {
		if group, topic, part, ok := parseOffsetKey(k); ok && topic == c.Name {
			if err := w.deleteOffset(k, group, topic, part); err != nil {
				return nil, err
			}
		}
	}
	for _, k := range doomed {
		if err := w.delete(k); err != nil {
			return nil, err
		}
	}
	return &ApplyResult{}, nil
}

func (w *writer) alterReassignment(c *AlterReassignment) (*ApplyResult, error) {
	p, r, moving, err := w.move(c.Topic, c.Partition)
	if err != nil {
		return nil, err
	}
	if !moving {
		r = Reassignment{Topic: c.Topic, Partition: c.Partition, Original: p.Replicas}
	}
	target := c.Target
	if target == nil { // cancel: back to where it started
		if !moving {
			return rejected(fmt.Errorf("%w: %s-%d", ErrNoReassignment, c.Topic, c.Partition))
		}
		target = r.Original
	}
	if err := w.validReplicas(target); err != nil {
		return rejected(fmt.Errorf("%s-%d: %w", c.Topic, c.Partition, err))
	}
	if slices.Equal(target, r.Original) {
		// Nothing to move (or a cancel): the original replicas, and
		// only those in the ISR; the leader stays if it may.
		np, err := settled(p, target)
		if err != nil {
			return rejected(err)
		}
		return w.endReassignment(np)
	}
	r.Target = slices.Clone(target)
	if err := w.set(reassignKey(c.Topic, c.Partition), r.encode()); err != nil {
		return nil, err
	}
	p.Replicas = append(slices.Clone(r.Target), r.Removing()...)
	p.PartitionEpoch++
	return &ApplyResult{Partition: p}, w.set(partitionKey(p.Topic, p.Partition), p.encode())
}

func (w *writer) completeReassignment(c *CompleteReassignment) (*ApplyResult, error) {
	p, r, moving, err := w.move(c.Topic, c.Partition)
	if err != nil {
		return nil, err
	}
	if !moving {
		return rejected(fmt.Errorf("%w: %s-%d", ErrNoReassignment, c.Topic, c.Partition))
	}
	if c.PartitionEpoch != p.PartitionEpoch {
		return rejected(fmt.Errorf("%w: %s-%d completion at partition epoch %d, current %d", ErrStaleEpoch, c.Topic, c.Partition, c.PartitionEpoch, p.PartitionEpoch))
	}
	if !subset(r.Target, p.ISR) {
		return rejected(fmt.Errorf("%w: %s-%d target %v not all in the ISR %v", ErrInvalidRequest, c.Topic, c.Partition, r.Target, p.ISR))
	}
	np, err := settled(p, r.Target)
	if err != nil {
		return rejected(err)
	}
	return w.endReassignment(np)
}

func (w *writer) forgetDeletedTopics(c *ForgetDeletedTopics) (*ApplyResult, error) {
	for _, id := range c.IDs {
		if err := w.delete(deletedKey(id)); err != nil {
			return nil, err
		}
	}
	return &ApplyResult{}, nil
}

func (w *writer) createPartitions(c *CreatePartitions) (*ApplyResult, error) {
	t, ok, err := getRecord(w.txn, topicKey(c.Topic), decodeTopic)
	if err != nil {
		return nil, err
	}
	if !ok {
		return rejected(fmt.Errorf("%w: %q", ErrUnknownTopic, c.Topic))
	}
	if len(c.Assignment) == 0 || (c.Total != 0 && c.Total != t.Partitions+int32(len(c.Assignment))) {
		return rejected(fmt.Errorf("%w: topic %q has %d partitions; %d new ones cannot make %d", ErrInvalidRequest, c.Topic, t.Partitions, len(c.Assignment), c.Total))
	}
	if err := validAssignment(c.Assignment, t.ReplicationFactor); err != nil {
		return rejected(err)
	}
	for i, replicas := range c.Assignment {
		p := Partition{Topic: c.Topic, Partition: t.Partitions + int32(i), Replicas: replicas, Leader: replicas[0], ISR: replicas}
		if err := w.set(partitionKey(p.Topic, p.Partition), p.encode()); err != nil {
			return nil, err
		}
	}
	t.Partitions += int32(len(c.Assignment))
	return &ApplyResult{}, w.set(topicKey(t.Name), t.encode())
}

func (w *writer) alterConfigs(c *AlterConfigs) (*ApplyResult, error) {
	t, ok, err := getRecord(w.txn, topicKey(c.Topic), decodeTopic)
	if err != nil {
		return nil, err
	}
	if !ok {
		return rejected(fmt.Errorf("%w: %q", ErrUnknownTopic, c.Topic))
	}
	if err := ValidateTopicConfigs(c.Set); err != nil {
		return rejected(err)
	}
	for _, k := range c.Delete {
		if _, known := topicConfigs[k]; !known {
			return rejected(fmt.Errorf("%w: unknown topic config %q", ErrInvalidConfig, k))
		}
	}
	merged := map[string]string{}
	for k, v := range t.Configs {
		merged[k] = v
	}
	for k, v := range c.Set {
		merged[k] = v
	}
	for _, k := range c.Delete {
		delete(merged, k)
	}
	t.Configs = merged
	return &ApplyResult{}, w.set(topicKey(t.Name), t.encode())
}

func (w *writer) changeLeader(c *ChangeLeader) (*ApplyResult, error) {
	p, err := w.partitionOrReject(c.Topic, c.Partition)
	if err != nil {
		return nil, err
	}
	if c.PartitionEpoch != p.PartitionEpoch {
		return rejected(fmt.Errorf("%w: %s-%d election from partition epoch %d, current %d", ErrStaleEpoch, c.Topic, c.Partition, c.PartitionEpoch, p.PartitionEpoch))
	}
	if !subset(c.ISR, p.Replicas) || (c.Leader != -1 && !slices.Contains(c.ISR, c.Leader)) {
		return rejected(fmt.Errorf("%w: %s-%d leader %d, ISR %v, replicas %v", ErrInvalidRequest, c.Topic, c.Partition, c.Leader, c.ISR, p.Replicas))
	}
	// The leader epoch moves only with the leader, so a follower set
	// change does not fence the leader's in-flight requests.
	if c.Leader != p.Leader {
		p.LeaderEpoch++
	}
	p.Leader, p.ISR = c.Leader, c.ISR
	p.PartitionEpoch++
	return &ApplyResult{Partition: p}, w.set(partitionKey(p.Topic, p.Partition), p.encode())
}

func (w *writer) alterISR(c *AlterISR) (*ApplyResult, error) {
	p, err := w.partitionOrReject(c.Topic, c.Partition)
	if err != nil {
		return nil, err
	}
	if c.Leader != p.Leader || c.LeaderEpoch != p.LeaderEpoch || c.PartitionEpoch != p.PartitionEpoch {
		return rejected(fmt.Errorf("%w: %s-%d ISR change from leader %d epoch %d partition epoch %d; current leader %d epoch %d partition epoch %d",
			ErrStaleEpoch, c.Topic, c.Partition, c.Leader, c.LeaderEpoch, c.PartitionEpoch, p.Leader, p.LeaderEpoch, p.PartitionEpoch))
	}
	if !subset(c.ISR, p.Replicas) || !slices.Contains(c.ISR, p.Leader) {
		return rejected(fmt.Errorf("%w: %s-%d ISR %v must hold leader %d and only replicas %v", ErrInvalidRequest, c.Topic, c.Partition, c.ISR, p.Leader, p.Replicas))
	}
	p.ISR = c.ISR
	p.PartitionEpoch++
	return &ApplyResult{Partition: p}, w.set(partitionKey(p.Topic, p.Partition), p.encode())
}

func (w *writer) commitOffsets(c *CommitOffsets) (*ApplyResult, error) {
	for i := range c.Offsets {
		if err := w.putOffset(c.Offsets[i]); err != nil {
			return nil, err
		}
	}
	return &ApplyResult{}, nil
}

func (w *writer) deleteOffsets(c *DeleteOffsets) (*ApplyResult, error) {
	for _, k := range w.keys(offsetGroupPrefix(c.Group)) {
		_, topic, p, ok := parseOffsetKey(k)
		if !ok || (c.Topic != "" && topic != c.Topic) || (len(c.Partitions) > 0 && !slices.Contains(c.Partitions, p)) {
			continue
		}
		if err := w.deleteOffset(k, c.Group, topic, p); err != nil {
			return nil, err
		}
	}
	return &ApplyResult{}, nil
}

func (w *writer) addTierSegment(c *AddTierSegment) (*ApplyResult, error) {
	s := c.Segment
	p, err := w.partitionOrReject(s.Topic, s.Partition)
	if err != nil {
		return nil, err
	}
	if s.LeaderEpoch != p.LeaderEpoch {
		return rejected(fmt.Errorf("%w: %s-%d segment %d uploaded in leader epoch %d, current %d", ErrStaleEpoch, s.Topic, s.Partition, s.BaseOffset, s.LeaderEpoch, p.LeaderEpoch))
	}
	if s.LastOffset < p.LogStartOffset {
		// Deleted (DeleteRecords, retention) while it was uploading:
		// nothing to record; the reconciler reclaims its objects.
		return &ApplyResult{}, nil
	}
	key := tierKey(s.Topic, s.Partition, s.BaseOffset)
	if old, ok, err := getRecord(w.txn, key, decodeTierSegment); err != nil || ok {
		if err != nil {
			return nil, err
		}
		if old.LastOffset >= s.LastOffset {
			// The same upload recorded twice, or this one is already
			// covered: the manifest keeps what it has.
			return &ApplyResult{}, nil
		}
		// A longer segment at the same base (a new leader whose
		// replica rolled later than its predecessor's): it holds the
		// same batches and more, and replaces the entry, or the offsets
		// past the old one's end could never be recorded. The old
		// objects are left to the reconciler.
	}
	// The manifest never holds an entry inside another: a lookup takes
	// the entry with the largest base at or below an offset, and one
	// inside a longer entry would hide the longer one's later offsets
	// (a hole readers answer as out of range). An entry already inside
	// one before it adds nothing; entries inside this one go.
	if prev, ok, err := tierSeek(w.txn, s.Topic, s.Partition, s.BaseOffset-1, true); err != nil {
		return nil, err
	} else if ok && s.BaseOffset > 0 && prev.LastOffset >= s.LastOffset {
		return &ApplyResult{}, nil
	}
	for next := s.BaseOffset + 1; next <= s.LastOffset; {
		e, ok, err := tierSeek(w.txn, s.Topic, s.Partition, next, false)
		if err != nil {
			return nil, err
		}
		if !ok || e.BaseOffset > s.LastOffset {
			break
		}
		if e.LastOffset <= s.LastOffset {
			if err := w.delete(tierKey(s.Topic, s.Partition, e.BaseOffset)); err != nil {
				return nil, err
			}
		}
		next = e.BaseOffset + 1
	}
	return &ApplyResult{}, w.set(key, s.encode())
}

func (w *writer) allocateProducerIDs(c *AllocateProducerIDs) (*ApplyResult, error) {
	if c.Count < 1 {
		return rejected(fmt.Errorf("%w: allocate %d producer ids", ErrInvalidRequest, c.Count))
	}
	next := int64(1000) // below: reserved
	item, err := w.txn.Get([]byte(keyProducers))
	if err == nil {
		err = item.Value(func(v []byte) error {
			if len(v) == 8 {
				next = int64(binary.BigEndian.Uint64(v))
			}
			return nil
		})
	}
	if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
		return nil, err
	}
	if err := w.set([]byte(keyProducers), binary.BigEndian.AppendUint64(nil, uint64(next+int64(c.Count)))); err != nil {
		return nil, err
	}
	return &ApplyResult{Value: next}, nil
}

func (w *writer) deleteTierSegments(c *DeleteTierSegments) (*ApplyResult, error) {
	p, err := w.partitionOrReject(c.Topic, c.Partition)
	if err != nil {
		return nil, err
	}
	if c.LogStartOffset > p.LogStartOffset {
		p.LogStartOffset = c.LogStartOffset
		if err := w.set(partitionKey(c.Topic, c.Partition), p.encode()); err != nil {
			return nil, err
		}
	}
	for _, base := range c.BaseOffsets {
		if err := w.delete(tierKey(c.Topic, c.Partition, base)); err != nil {
			return nil, err
		}
	}
	return &ApplyResult{}, nil
}

var topicNameRE = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// validTopicName applies Kafka's rule: 1-249 of [a-zA-Z0-9._-], not "."
// or "..".
func validTopicName(name string) error {
	if len(name) == 0 || len(name) > 249 || name == "." || name == ".." || !topicNameRE.MatchString(name) {
		return fmt.Errorf("%w: topic name %q must be 1-249 characters of [a-zA-Z0-9._-], not . or ..", ErrInvalidRequest, name)
	}
	return nil
}

// validReplicas checks a replica list: not empty, no duplicate, every
// node registered.
func (w *writer) validReplicas(replicas []int32) error {
	if len(replicas) == 0 {
		return fmt.Errorf("%w: no replicas", ErrInvalidReplicas)
	}
	for i, id := range replicas {
		if slices.Contains(replicas[:i], id) {
			return fmt.Errorf("%w: node %d twice in %v", ErrInvalidReplicas, id, replicas)
		}
		if _, ok, err := getRecord(w.txn, nodeKey(id), decodeNode); err != nil || !ok {
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: no node %d", ErrInvalidReplicas, id)
		}
	}
	return nil
}

// settled is a partition whose replicas become exactly replicas: the ISR
// keeps only them, and a leader outside them hands over to the first of
// them in the ISR (a new leader epoch). None of them in the ISR is an
// error: the move must wait.
func settled(p Partition, replicas []int32) (Partition, error) {
	var isr []int32
	for _, id := range p.ISR {
		if slices.Contains(replicas, id) {
			isr = append(isr, id)
		}
	}
	if len(isr) == 0 {
		return p, fmt.Errorf("%w: %s-%d: none of %v is in the ISR %v", ErrInvalidRequest, p.Topic, p.Partition, replicas, p.ISR)
	}
	p.Replicas, p.ISR = slices.Clone(replicas), isr
	if !slices.Contains(replicas, p.Leader) {
		for _, id := range replicas {
			if slices.Contains(isr, id) {
				p.Leader = id
				break
			}
		}
		p.LeaderEpoch++
	}
	p.PartitionEpoch++
	return p, nil
}

// endReassignment drops the move record and stores the partition.
func (w *writer) endReassignment(p Partition) (*ApplyResult, error) {
	if err := w.delete(reassignKey(p.Topic, p.Partition)); err != nil {
		return nil, err
	}
	return &ApplyResult{Partition: p}, w.set(partitionKey(p.Topic, p.Partition), p.encode())
}

func validAssignment(a [][]int32, rf int16) error {
	for i, replicas := range a {
		if len(replicas) != int(rf) {
			return fmt.Errorf("%w: partition %d has %d replicas, replication factor is %d", ErrInvalidRequest, i, len(replicas), rf)
		}
		for j, r := range replicas {
			if r < 0 || slices.Contains(replicas[:j], r) {
				return fmt.Errorf("%w: partition %d replicas %v must be distinct node ids", ErrInvalidRequest, i, replicas)
			}
		}
	}
	return nil
}

// subset reports whether every element of a is in b.
func subset(a, b []int32) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func parseOffsetKey(k []byte) (group, topic string, partition int32, ok bool) {
	rest := k[len(keyOffset):]
	i := bytes.IndexByte(rest, 0)
	if i < 0 || len(rest) < i+1+5 {
		return "", "", 0, false
	}
	group, rest = string(rest[:i]), rest[i+1:]
	topic = string(rest[:len(rest)-5])
	return group, topic, int32(binary.BigEndian.Uint32(rest[len(rest)-4:])), rest[len(rest)-5] == 0
}

// writer writes a batch's effects at one commit timestamp. A transaction
// that grows too big is committed and a new one opened at the same
// timestamp: readers only read at versions already applied, so the batch
// still appears all at once.
type writer struct {
	db       *badger.DB
	txn      *badger.Txn
	commitTs uint64
	topology bool // a topic or partition record was written
	// shareReset: share state was reset or deleted (not a leader's write).
	shareReset bool
	writes     int // sets and deletes so far
}

// touch notes a write to key.
func (w *writer) touch(key []byte) {
	w.writes++
	w.topology = w.topology || bytes.HasPrefix(key, []byte(keyTopic)) || bytes.HasPrefix(key, []byte(keyPartition))
}

func (w *writer) set(key, val []byte) error {
	w.touch(key)
	err := w.txn.Set(key, val)
	if errors.Is(err, badger.ErrTxnTooBig) {
		if err = w.flush(); err == nil {
			err = w.txn.Set(key, val)
		}
	}
	return err
}

func (w *writer) delete(key []byte) error {
	w.touch(key)
	err := w.txn.Delete(key)
	if errors.Is(err, badger.ErrTxnTooBig) {
		if err = w.flush(); err == nil {
			err = w.txn.Delete(key)
		}
	}
	return err
}

func (w *writer) flush() error {
	if err := w.txn.CommitAt(w.commitTs, nil); err != nil {
		return err
	}
	w.txn = w.db.NewTransactionAt(w.commitTs, true)
	return nil
}

func (w *writer) commit() error { return w.txn.CommitAt(w.commitTs, nil) }

// keys lists the keys under prefix, pending writes included.
func (w *writer) keys(prefix []byte) [][]byte {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = prefix
	it := w.txn.NewIterator(opts)
	defer it.Close()
	var out [][]byte
	for it.Rewind(); it.Valid(); it.Next() {
		out = append(out, it.Item().KeyCopy(nil))
	}
	return out
}

// getRecord reads and decodes one record.
func getRecord[T any](txn *badger.Txn, key []byte, decode func([]byte) (T, error)) (T, bool, error) {
	var zero T
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return zero, false, nil
	}
	if err != nil {
		return zero, false, err
	}
	var out T
	err = item.Value(func(v []byte) error {
		out, err = decode(v)
		return err
	})
	return out, err == nil, err
}

// listRecords reads and decodes every record under prefix, in key order.
func listRecords[T any](txn *badger.Txn, prefix []byte, decode func([]byte) (T, error)) ([]T, error) {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	defer it.Close()
	var out []T
	for it.Rewind(); it.Valid(); it.Next() {
		err := it.Item().Value(func(v []byte) error {
			r, err := decode(v)
			out = append(out, r)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// pin and unpin keep Badger from discarding the versions a view or
// snapshot reads.
func (f *FSM) pin() uint64 {
	f.pinMu.Lock()
	defer f.pinMu.Unlock()
	v := f.applied.Load()
	f.pins[v]++
	return v
}

func (f *FSM) unpin(v uint64) {
	f.pinMu.Lock()
	if f.pins[v]--; f.pins[v] <= 0 {
		delete(f.pins, v)
	}
	f.pinMu.Unlock()
	f.updateDiscardTs()
}

func (f *FSM) updateDiscardTs() {
	f.pinMu.Lock()
	defer f.pinMu.Unlock()
	ts := f.applied.Load()
	for v := range f.pins {
		ts = min(ts, v)
	}
	if ts > f.discardTs {
		f.discardTs = ts
		f.db.SetDiscardTs(ts)
	}
}

// Snapshot captures the state at the applied index (raft.FSM). Persist
// streams it while applies go on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{f: f, version: f.pin()}, nil
}

type fsmSnapshot struct {
	f       *FSM
	version uint64
	once    sync.Once
}

// Persist writes Badger's backup format of the state at the snapshot's
// version.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	stream := s.f.db.NewStreamAt(s.version)
	stream.LogPrefix = "meta.snapshot"
	w := &countingWriter{w: sink}
	if _, err := stream.Backup(w, 0); err != nil {
		sink.Cancel()
		return fmt.Errorf("meta: snapshot at %d: %w", s.version, err)
	}
	if err := sink.Close(); err != nil {
		return err
	}
	s.f.metrics.snapshotBytes.Set(float64(w.n))
	s.f.metrics.snapshots.Inc()
	return nil
}

// Release lets Badger discard the snapshot's versions.
func (s *fsmSnapshot) Release() { s.once.Do(func() { s.f.unpin(s.version) }) }

// Restore replaces the state with a snapshot's (raft.FSM).
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.db.DropAll(); err != nil {
		return fmt.Errorf("meta: restore: drop state: %w", err)
	}
	if err := f.db.Load(rc, 64); err != nil {
		return fmt.Errorf("meta: restore: load snapshot: %w", err)
	}
	applied, err := f.readApplied()
	if err != nil {
		return fmt.Errorf("meta: restore: %w", err)
	}
	f.applied.Store(applied)
	f.topology.Add(1)
	f.shareResets.Add(1)
	f.updateDiscardTs()
	f.logger.Info("metadata restored from snapshot", "version", applied)
	if f.onApply != nil {
		f.onApply(applied, nil)
	}
	return nil
}

// View is a consistent read of the state at one version. Close it
// promptly: it holds Badger's old versions.
type View struct {
	f       *FSM
	txn     *badger.Txn
	version uint64
}

// View opens a read of the current state.
func (f *FSM) View() *View {
	v := f.pin()
	return &View{f: f, txn: f.db.NewTransactionAt(v, false), version: v}
}

// Close ends the read.
func (v *View) Close() {
	v.txn.Discard()
	v.f.unpin(v.version)
}

// Version is the Raft index the view reflects.
func (v *View) Version() uint64 { return v.version }

// Topic reads one topic.
func (v *View) Topic(name string) (Topic, bool, error) {
	return getRecord(v.txn, topicKey(name), decodeTopic)
}

// Topics lists every topic by name.
func (v *View) Topics() ([]Topic, error) { return listRecords(v.txn, []byte(keyTopic), decodeTopic) }

// Partition reads one partition.
func (v *View) Partition(topic string, p int32) (Partition, bool, error) {
	return getRecord(v.txn, partitionKey(topic, p), decodePartition)
}

// Partitions lists a topic's partitions in order.
func (v *View) Partitions(topic string) ([]Partition, error) {
	return listRecords(v.txn, partitionPrefix(topic), decodePartition)
}

// AllPartitions lists every partition of every topic.
func (v *View) AllPartitions() ([]Partition, error) {
	return listRecords(v.txn, []byte(keyPartition), decodePartition)
}

// Nodes lists the members by id.
// Reassignments are the partition moves in progress.
func (v *View) Reassignments() ([]Reassignment, error) {
	return listRecords(v.txn, []byte(keyReassign), decodeReassignment)
}

// DeletedTopics are deleted topics whose tier objects may remain.
func (v *View) DeletedTopics() ([]DeletedTopic, error) {
	return listRecords(v.txn, []byte(keyDeleted), decodeDeletedTopic)
}

func (v *View) Nodes() ([]Node, error) { return listRecords(v.txn, []byte(keyNode), decodeNode) }

// Offset reads a committed offset.
func (v *View) Offset(group, topic string, p int32) (Offset, bool, error) {
	return getRecord(v.txn, offsetKey(group, topic, p), decodeOffset)
}

// GroupOffsets lists a group's committed offsets.
func (v *View) GroupOffsets(group string) ([]Offset, error) {
	return listRecords(v.txn, offsetGroupPrefix(group), decodeOffset)
}

// OffsetGroups lists the groups that have committed offsets.
func (v *View) OffsetGroups() ([]string, error) {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = []byte(keyOffset)
	it := v.txn.NewIterator(opts)
	defer it.Close()
	var out []string
	for it.Rewind(); it.Valid(); it.Next() {
		if g, _, _, ok := parseOffsetKey(it.Item().Key()); ok && (len(out) == 0 || out[len(out)-1] != g) {
			out = append(out, g)
		}
	}
	return out, nil
}

// TierSegments lists a partition's manifest entries by base offset.
func (v *View) TierSegments(topic string, p int32) ([]TierSegment, error) {
	return listRecords(v.txn, tierPrefix(topic, p), decodeTierSegment)
}

// TierSegmentAt returns the manifest entry holding offset, if any.
func (v *View) TierSegmentAt(topic string, p int32, offset int64) (TierSegment, bool, error) {
	s, ok, err := v.tierSeek(topic, p, offset, true)
	if err != nil || !ok || s.LastOffset < offset {
		return TierSegment{}, false, err
	}
	return s, true, nil
}

// TierSpan returns a partition's first and last manifest entries (ok
// false: none).
func (v *View) TierSpan(topic string, p int32) (first, last TierSegment, ok bool, err error) {
	if first, ok, err = v.tierSeek(topic, p, 0, false); err != nil || !ok {
		return first, last, ok, err
	}
	last, ok, err = v.tierSeek(topic, p, math.MaxInt64, true)
	return first, last, ok, err
}

func (v *View) tierSeek(topic string, p int32, offset int64, reverse bool) (TierSegment, bool, error) {
	return tierSeek(v.txn, topic, p, offset, reverse)
}

// tierSeek returns the entry with the largest base offset <= offset
// (reverse) or the smallest >= offset.
func tierSeek(txn *badger.Txn, topic string, p int32, offset int64, reverse bool) (TierSegment, bool, error) {
	opts := badger.DefaultIteratorOptions
	opts.Prefix, opts.Reverse, opts.PrefetchValues = tierPrefix(topic, p), reverse, false
	it := txn.NewIterator(opts)
	defer it.Close()
	it.Seek(tierKey(topic, p, offset))
	if !it.Valid() {
		return TierSegment{}, false, nil
	}
	var s TierSegment
	err := it.Item().Value(func(b []byte) (err error) {
		s, err = decodeTierSegment(b)
		return err
	})
	return s, err == nil, err
}

// Dump returns every key and value of the state, for comparing states.
func (v *View) Dump() (map[string][]byte, error) {
	opts := badger.DefaultIteratorOptions
	it := v.txn.NewIterator(opts)
	defer it.Close()
	out := map[string][]byte{}
	for it.Rewind(); it.Valid(); it.Next() {
		val, err := it.Item().ValueCopy(nil)
		if err != nil {
			return nil, err
		}
		out[string(it.Item().Key())] = val
	}
	return out, nil
}
