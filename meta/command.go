package meta

import (
	"fmt"
)

// commandVersion is the version of the command encoding. A node meeting a
// newer version rejects the command whole (ErrUnknownCommand), so a
// rolling upgrade must finish before new commands are proposed.
const commandVersion = 1

// CommandType identifies a command in its encoding.
type CommandType byte

// Command types. Never renumber: they are in Raft logs and snapshots.
const (
	TypeRegisterNode         CommandType = 1
	TypeRemoveNode           CommandType = 2
	TypeCreateTopic          CommandType = 3
	TypeDeleteTopic          CommandType = 4
	TypeCreatePartitions     CommandType = 5
	TypeAlterConfigs         CommandType = 6
	TypeChangeLeader         CommandType = 7
	TypeAlterISR             CommandType = 8
	TypeCommitOffsets        CommandType = 9
	TypeDeleteOffsets        CommandType = 10
	TypeAddTierSegment       CommandType = 11
	TypeDeleteTierSegments   CommandType = 12
	TypeAllocateProducerIDs  CommandType = 13
	TypeForgetDeletedTopics  CommandType = 14
	TypeAlterReassignment    CommandType = 15
	TypeCompleteReassignment CommandType = 16
)

// Command is one state change, proposed through Raft and applied by every
// node's FSM. Commands carry everything their effect depends on (an
// assignment, a timestamp), so applying is deterministic.
type Command interface {
	Type() CommandType
	encode(e *encoder)
	decode(d *decoder)
}

// RegisterNode records or updates a member.
type RegisterNode struct{ Node Node }

// RemoveNode forgets a member an operator removed.
type RemoveNode struct{ ID int32 }

// CreateTopic creates a topic with the given replica assignment (one list
// per partition; the first replica leads). Restore, when set (one per
// partition), brings back a topic from the tier: each partition starts
// with the uploaded segments as its manifest, their log start offset,
// and a leader epoch above every restored segment's. Restoring a topic
// that exists with the same id writes nothing and succeeds with Value 1
// (already restored), so a restore may be asked again.
type CreateTopic struct {
	Topic      Topic
	Assignment [][]int32
	Restore    []RestoredPartition
}

// RestoredPartition is a partition's tier manifest, restored.
type RestoredPartition struct {
	LogStartOffset int64
	Segments       []TierSegment
}

// DeleteTopic deletes a topic, its partitions, its committed offsets and
// its tier manifest entries.
type DeleteTopic struct{ Name string }

// AlterReassignment starts moving a partition to Target replicas (in
// order; the first is the preferred leader), changes the target of a move
// in progress, or, with no Target, cancels the move in progress.
type AlterReassignment struct {
	Topic     string
	Partition int32
	Target    []int32
}

// CompleteReassignment ends a move whose target replicas are all in the
// ISR: the replicas become the target, the leaving ones leave the ISR and,
// if the leader leaves, the first target replica in the ISR leads.
// Fenced by partition epoch.
type CompleteReassignment struct {
	Topic          string
	Partition      int32
	PartitionEpoch int32
}

// ForgetDeletedTopics drops the records of deleted topics whose objects
// are all gone from the tier.
type ForgetDeletedTopics struct{ IDs [][16]byte }

// CreatePartitions raises a topic's partition count to Total; Assignment
// holds the replicas of each new partition (the controller fills it in
// when a request leaves it empty).
type CreatePartitions struct {
	Topic      string
	Total      int32
	Assignment [][]int32
}

// AlterConfigs sets and deletes topic config keys. Each value is
// validated; one bad key rejects the command.
type AlterConfigs struct {
	Topic  string
	Set    map[string]string
	Delete []string
}

// ChangeLeader is the controller's election: a new leader (or -1 for
// offline) and ISR, computed from PartitionEpoch. It bumps the leader
// epoch.
type ChangeLeader struct {
	Topic          string
	Partition      int32
	Leader         int32
	ISR            []int32
	PartitionEpoch int32
}

// AlterISR is a partition leader's request to change its ISR, computed
// from the given leader epoch and partition epoch (fenced by both).
type AlterISR struct {
	Topic          string
	Partition      int32
	Leader         int32
	LeaderEpoch    int32
	ISR            []int32
	PartitionEpoch int32
}

// CommitOffsets records many consumer offset commits in one proposal.
type CommitOffsets struct{ Offsets []Offset }

// DeleteOffsets deletes a group's offsets: all of them (Topic empty), a
// topic's, or some partitions'.
type DeleteOffsets struct {
	Group      string
	Topic      string
	Partitions []int32
}

// AddTierSegment records an uploaded segment, fenced by the uploader's
// leader epoch.
type AddTierSegment struct{ Segment TierSegment }

// DeleteTierSegments removes manifest entries by base offset and raises
// the partition's log start offset to LogStartOffset (when higher).
type DeleteTierSegments struct {
	Topic          string
	Partition      int32
	BaseOffsets    []int64
	LogStartOffset int64
}

// AllocateProducerIDs reserves Count producer ids for idempotent
// producers; the result's Value is the first. Ids are never reused.
type AllocateProducerIDs struct{ Count int32 }

func (AllocateProducerIDs) Type() CommandType { return TypeAllocateProducerIDs }

func (c *AllocateProducerIDs) encode(e *encoder) { e.varint(int64(c.Count)) }
func (c *AllocateProducerIDs) decode(d *decoder) { c.Count = d.int32() }

func (RegisterNode) Type() CommandType       { return TypeRegisterNode }
func (RemoveNode) Type() CommandType         { return TypeRemoveNode }
func (CreateTopic) Type() CommandType        { return TypeCreateTopic }
func (DeleteTopic) Type() CommandType        { return TypeDeleteTopic }
func (CreatePartitions) Type() CommandType   { return TypeCreatePartitions }
func (AlterConfigs) Type() CommandType       { return TypeAlterConfigs }
func (ChangeLeader) Type() CommandType       { return TypeChangeLeader }
func (AlterISR) Type() CommandType           { return TypeAlterISR }
func (CommitOffsets) Type() CommandType      { return TypeCommitOffsets }
func (DeleteOffsets) Type() CommandType      { return TypeDeleteOffsets }
func (AddTierSegment) Type() CommandType     { return TypeAddTierSegment }
func (DeleteTierSegments) Type() CommandType { return TypeDeleteTierSegments }

func (c *RegisterNode) encode(e *encoder) {
	e.varint(int64(c.Node.ID))
	e.string(c.Node.RaftAddr)
	e.string(c.Node.Rack)
}
func (c *RegisterNode) decode(d *decoder) {
	c.Node = Node{ID: d.int32(), RaftAddr: d.string(), Rack: d.string()}
}

func (c *RemoveNode) encode(e *encoder) { e.varint(int64(c.ID)) }
func (c *RemoveNode) decode(d *decoder) { c.ID = d.int32() }

func encodeAssignment(e *encoder, a [][]int32) {
	e.uvarint(uint64(len(a)))
	for _, r := range a {
		e.int32s(r)
	}
}

func decodeAssignment(d *decoder) [][]int32 {
	n := d.length()
	a := make([][]int32, n)
	for i := range a {
		a[i] = d.int32s()
	}
	return a
}

func (c *CreateTopic) encode(e *encoder) {
	e.b = append(e.b, (&c.Topic).encode()[1:]...) // without the record version
	encodeAssignment(e, c.Assignment)
	e.uvarint(uint64(len(c.Restore)))
	for _, r := range c.Restore {
		e.varint(r.LogStartOffset)
		e.uvarint(uint64(len(r.Segments)))
		for i := range r.Segments {
			r.Segments[i].encodeTo(e)
		}
	}
}
func (c *CreateTopic) decode(d *decoder) {
	c.Topic.Name = d.string()
	for i := range c.Topic.ID {
		c.Topic.ID[i] = d.byte()
	}
	c.Topic.Partitions = d.int32()
	c.Topic.ReplicationFactor = int16(d.int32())
	c.Topic.Configs = d.stringMap()
	c.Assignment = decodeAssignment(d)
	if n := d.length(); n > 0 {
		c.Restore = make([]RestoredPartition, n)
		for i := range c.Restore {
			c.Restore[i].LogStartOffset = d.varint()
			if m := d.length(); m > 0 {
				c.Restore[i].Segments = make([]TierSegment, m)
				for j := range c.Restore[i].Segments {
					c.Restore[i].Segments[j].decode(d)
				}
			}
		}
	}
}

func (c *DeleteTopic) encode(e *encoder) { e.string(c.Name) }

func (AlterReassignment) Type() CommandType { return TypeAlterReassignment }
func (c *AlterReassignment) encode(e *encoder) {
	e.string(c.Topic)
	e.varint(int64(c.Partition))
	e.bool(c.Target != nil)
	e.int32s(c.Target)
}
func (c *AlterReassignment) decode(d *decoder) {
	c.Topic, c.Partition = d.string(), d.int32()
	set := d.bool()
	c.Target = d.int32s()
	if !set {
		c.Target = nil
	} else if c.Target == nil {
		c.Target = []int32{}
	}
}

func (CompleteReassignment) Type() CommandType { return TypeCompleteReassignment }
func (c *CompleteReassignment) encode(e *encoder) {
	e.string(c.Topic)
	e.varint(int64(c.Partition))
	e.varint(int64(c.PartitionEpoch))
}
func (c *CompleteReassignment) decode(d *decoder) {
	c.Topic, c.Partition, c.PartitionEpoch = d.string(), d.int32(), d.int32()
}

func (ForgetDeletedTopics) Type() CommandType { return TypeForgetDeletedTopics }
func (c *ForgetDeletedTopics) encode(e *encoder) {
	e.uvarint(uint64(len(c.IDs)))
	for _, id := range c.IDs {
		e.b = append(e.b, id[:]...)
	}
}
func (c *ForgetDeletedTopics) decode(d *decoder) {
	c.IDs = make([][16]byte, d.length())
	for i := range c.IDs {
		for j := range c.IDs[i] {
			c.IDs[i][j] = d.byte()
		}
	}
}
func (c *DeleteTopic) decode(d *decoder) { c.Name = d.string() }

func (c *CreatePartitions) encode(e *encoder) {
	e.string(c.Topic)
	e.varint(int64(c.Total))
	encodeAssignment(e, c.Assignment)
}
func (c *CreatePartitions) decode(d *decoder) {
	c.Topic, c.Total = d.string(), d.int32()
	c.Assignment = decodeAssignment(d)
}

func (c *AlterConfigs) encode(e *encoder) { e.string(c.Topic); e.stringMap(c.Set); e.strings(c.Delete) }
func (c *AlterConfigs) decode(d *decoder) {
	c.Topic = d.string()
	c.Set = d.stringMap()
	c.Delete = d.strings()
}

func (c *ChangeLeader) encode(e *encoder) {
	e.string(c.Topic)
	e.varint(int64(c.Partition))
	e.varint(int64(c.Leader))
	e.int32s(c.ISR)
	e.varint(int64(c.PartitionEpoch))
}
func (c *ChangeLeader) decode(d *decoder) {
	c.Topic, c.Partition, c.Leader = d.string(), d.int32(), d.int32()
	c.ISR = d.int32s()
	c.PartitionEpoch = d.int32()
}

func (c *AlterISR) encode(e *encoder) {
	e.string(c.Topic)
	e.varint(int64(c.Partition))
	e.varint(int64(c.Leader))
	e.varint(int64(c.LeaderEpoch))
	e.int32s(c.ISR)
	e.varint(int64(c.PartitionEpoch))
}
func (c *AlterISR) decode(d *decoder) {
	c.Topic, c.Partition, c.Leader, c.LeaderEpoch = d.string(), d.int32(), d.int32(), d.int32()
	c.ISR = d.int32s()
	c.PartitionEpoch = d.int32()
}

func (c *CommitOffsets) encode(e *encoder) { encodeOffsets(e, c.Offsets) }

func encodeOffsets(e *encoder, offsets []Offset) {
	e.uvarint(uint64(len(offsets)))
	for i := range offsets {
		o := &offsets[i]
		e.string(o.Group)
		e.string(o.Topic)
		e.varint(int64(o.Partition))
		e.varint(o.Offset)
		e.varint(int64(o.LeaderEpoch))
		e.string(o.Metadata)
		e.varint(o.CommitTimeMs)
	}
}
func (c *CommitOffsets) decode(d *decoder) { c.Offsets = decodeOffsets(d) }

func decodeOffsets(d *decoder) []Offset {
	n := d.length()
	if n == 0 {
		return nil
	}
	out := make([]Offset, n)
	for i := range out {
		out[i].decode(d)
	}
	return out
}

func (c *DeleteOffsets) encode(e *encoder) {
	e.string(c.Group)
	e.string(c.Topic)
	e.int32s(c.Partitions)
}
func (c *DeleteOffsets) decode(d *decoder) {
	c.Group, c.Topic = d.string(), d.string()
	c.Partitions = d.int32s()
}

func (c *AddTierSegment) encode(e *encoder) { c.Segment.encodeTo(e) }
func (c *AddTierSegment) decode(d *decoder) { c.Segment.decode(d) }

func (c *DeleteTierSegments) encode(e *encoder) {
	e.string(c.Topic)
	e.varint(int64(c.Partition))
	e.uvarint(uint64(len(c.BaseOffsets)))
	for _, b := range c.BaseOffsets {
		e.varint(b)
	}
	e.varint(c.LogStartOffset)
}
func (c *DeleteTierSegments) decode(d *decoder) {
	c.Topic, c.Partition = d.string(), d.int32()
	n := d.length()
	c.BaseOffsets = make([]int64, n)
	for i := range c.BaseOffsets {
		c.BaseOffsets[i] = d.varint()
	}
	c.LogStartOffset = d.varint()
}

// EncodeCommand encodes a command for a Raft log entry:
// | version 1 | type 1 | payload |.
func EncodeCommand(c Command) []byte {
	e := encoder{b: make([]byte, 0, 64)}
	e.byte(commandVersion)
	e.byte(byte(c.Type()))
	c.encode(&e)
	return e.b
}

// DecodeCommand decodes a Raft log entry's command. An unknown version or
// type returns ErrUnknownCommand; a malformed payload another error.
func DecodeCommand(b []byte) (Command, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: %d-byte entry", ErrUnknownCommand, len(b))
	}
	if b[0] != commandVersion {
		return nil, fmt.Errorf("%w: command version %d, this node knows %d", ErrUnknownCommand, b[0], commandVersion)
	}
	var c Command
	switch CommandType(b[1]) {
	case TypeRegisterNode:
		c = &RegisterNode{}
	case TypeRemoveNode:
		c = &RemoveNode{}
	case TypeCreateTopic:
		c = &CreateTopic{}
	case TypeDeleteTopic:
		c = &DeleteTopic{}
	case TypeCreatePartitions:
		c = &CreatePartitions{}
	case TypeAlterConfigs:
		c = &AlterConfigs{}
	case TypeChangeLeader:
		c = &ChangeLeader{}
	case TypeAlterISR:
		c = &AlterISR{}
	case TypeCommitOffsets:
		c = &CommitOffsets{}
	case TypeDeleteOffsets:
		c = &DeleteOffsets{}
	case TypeAddTierSegment:
		c = &AddTierSegment{}
	case TypeDeleteTierSegments:
		c = &DeleteTierSegments{}
	case TypeAllocateProducerIDs:
		c = &AllocateProducerIDs{}
	case TypeForgetDeletedTopics:
		c = &ForgetDeletedTopics{}
	case TypeAlterReassignment:
		c = &AlterReassignment{}
	case TypeCompleteReassignment:
		c = &CompleteReassignment{}
	case TypeAlterScramCredentials:
		c = &AlterScramCredentials{}
	case TypeCreateAcls:
		c = &CreateAcls{}
	case TypeDeleteAcls:
		c = &DeleteAcls{}
	case TypeInitTxn:
		c = &InitTxn{}
	case TypeAddTxnPartitions:
		c = &AddTxnPartitions{}
	case TypeEndTxn:
		c = &EndTxn{}
	case TypeCompleteTxn:
		c = &CompleteTxn{}
	case TypeTxnCommitOffsets:
		c = &TxnCommitOffsets{}
	case TypeExpireTxn:
		c = &ExpireTxn{}
	case TypeForgetTxn:
		c = &ForgetTxn{}
	case TypeSetFeatures:
		c = &SetFeatures{}
	case TypeReplaceTierSegments:
		c = &ReplaceTierSegments{}
	case TypeForgetRetiredObjects:
		c = &ForgetRetiredObjects{}
	case TypeMarkTierCleaned:
		c = &MarkTierCleaned{}
	case TypeWriteShareState:
		c = &WriteShareState{}
	case TypeDeleteShareState:
		c = &DeleteShareState{}
	case TypeAlterGroupConfigs:
		c = &AlterGroupConfigs{}
	case TypeResetShareState:
		c = &ResetShareState{}
	case TypePutGroupMetadata:
		c = &PutGroupMetadata{}
	default:
		return nil, fmt.Errorf("%w: command type %d", ErrUnknownCommand, b[1])
	}
	d := decoder{b: b[2:]}
	c.decode(&d)
	if err := d.finish(fmt.Sprintf("command type %d", b[1])); err != nil {
		return nil, err
	}
	return c, nil
}
