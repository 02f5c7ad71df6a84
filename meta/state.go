package meta

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// The typed metadata state. Each type has a compact, versioned encoding
// and a key in the state DB; see doc.go for the key layout.

// Node is a cluster member.
type Node struct {
	ID       int32
	RaftAddr string
	Rack     string
}

// Topic is a topic's identity and settings.
type Topic struct {
	Name              string
	ID                [16]byte
	Partitions        int32
	ReplicationFactor int16
	Configs           map[string]string
}

// Partition is one partition's replica set and leadership.
type Partition struct {
	Topic     string
	Partition int32
	Replicas  []int32
	// Leader is -1 when the partition is offline.
	Leader      int32
	LeaderEpoch int32
	ISR         []int32
	// PartitionEpoch increases with every change to the record; ISR
	// changes name the epoch they were computed from (fencing).
	PartitionEpoch int32
	// LogStartOffset is where the partition's log starts as DeleteRecords
	// and total retention of tiered data left it; a leader's local log
	// may start later (the rest is in the tier).
	LogStartOffset int64
}

// Offset is a consumer group's committed offset for one partition.
type Offset struct {
	Group       string
	Topic       string
	Partition   int32
	Offset      int64
	LeaderEpoch int32
	Metadata    string
	// CommitTimeMs is the proposer's clock at commit.
	CommitTimeMs int64
	// LogOffset is the commit's offset in its partition of the
	// __consumer_offsets view (offsetslog.go), set when the state records
	// it; -1 in commands and in records from before the view.
	LogOffset int64
	// Deleted marks a tombstone in the view: the key's offsets were
	// deleted at LogOffset (never in commands or offset records).
	Deleted bool `json:",omitempty"`
	// Value is a group metadata record's value in the view
	// (IsGroupMetadata): bytes, which JSON carries whole where a string
	// would lose what is not UTF-8.
	Value []byte `json:",omitempty"`
}

// TierSegment is a tier manifest entry: one uploaded segment.
type TierSegment struct {
	Topic         string
	Partition     int32
	BaseOffset    int64
	LastOffset    int64
	SizeBytes     int64
	LeaderEpoch   int32 // the uploading leader's epoch
	MaxTimestamp  int64
	ObjectKey     string // key of the .log object; indexes sit beside it
	UploadTimeMs  int64
	SegmentEpochs []EpochStart
}

// EpochStart is one leader epoch entry of a segment.
type EpochStart struct {
	Epoch       int32
	StartOffset int64
}

const stateVersion = 1

// Keys of the state DB.
const (
	keyNode      = "n/"            // n/<id:4>
	keyTopic     = "t/"            // t/<name>
	keyPartition = "p/"            // p/<topic>\x00<partition:4>
	keyOffset    = "o/"            // o/<group>\x00<topic>\x00<partition:4>
	keyTier      = "s/"            // s/<topic>\x00<partition:4><base:8>
	keyDeleted   = "d/"            // d/<topic id:16> -> name: a deleted topic whose objects may remain
	keyReassign  = "r/"            // r/<topic>\x00<partition:4>: a reassignment in progress
	keyApplied   = "a"             // last applied Raft index (8 bytes)
	keyProducers = "x/producer-id" // next producer id to hand out (8 bytes)
)

func nodeKey(id int32) []byte     { return binary.BigEndian.AppendUint32([]byte(keyNode), uint32(id)) }
func topicKey(name string) []byte { return append([]byte(keyTopic), name...) }

func partitionPrefix(topic string) []byte { return append(append([]byte(keyPartition), topic...), 0) }
func partitionKey(topic string, p int32) []byte {
	return binary.BigEndian.AppendUint32(partitionPrefix(topic), uint32(p))
}

func offsetGroupPrefix(group string) []byte { return append(append([]byte(keyOffset), group...), 0) }
func offsetKey(group, topic string, p int32) []byte {
	k := append(append(offsetGroupPrefix(group), topic...), 0)
	return binary.BigEndian.AppendUint32(k, uint32(p))
}

func reassignTopicPrefix(topic string) []byte {
	return append(append([]byte(keyReassign), topic...), 0)
}
func reassignKey(topic string, p int32) []byte {
	return binary.BigEndian.AppendUint32(reassignTopicPrefix(topic), uint32(p))
}

// Reassignment is a partition moving from its Original replicas to Target.
// While it lasts the partition's replicas are Target followed by the
// original ones leaving; it completes once every target replica is in
// the ISR.
type Reassignment struct {
	Topic     string
	Partition int32
	Original  []int32
	Target    []int32
}

func (r Reassignment) encode() []byte {
	e := encoder{}
	e.byte(stateVersion)
	e.string(r.Topic)
	e.varint(int64(r.Partition))
	e.int32s(r.Original)
	e.int32s(r.Target)
	return e.b
}

func decodeReassignment(b []byte) (Reassignment, error) {
	d := decoder{b: b}
	var r Reassignment
	if v := d.byte(); d.err == nil && v != stateVersion {
		return r, fmt.Errorf("meta: reassignment record version %d", v)
	}
	r.Topic, r.Partition = d.string(), d.int32()
	r.Original, r.Target = d.int32s(), d.int32s()
	return r, d.finish("reassignment")
}

// Adding and Removing are the replicas a reassignment adds and removes.
func (r Reassignment) Adding() []int32   { return minus(r.Target, r.Original) }
func (r Reassignment) Removing() []int32 { return minus(r.Original, r.Target) }

func minus(a, b []int32) []int32 {
	var out []int32
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func deletedKey(id [16]byte) []byte { return append([]byte(keyDeleted), id[:]...) }

// DeletedTopic is a topic deleted from this cluster whose objects in the
// tier may not all be gone yet: the reconciler removes them, then forgets
// it.
type DeletedTopic struct {
	ID   [16]byte
	Name string
}

func (t DeletedTopic) encode() []byte {
	e := encoder{}
	e.byte(stateVersion)
	e.b = append(e.b, t.ID[:]...)
	e.string(t.Name)
	return e.b
}

func decodeDeletedTopic(b []byte) (DeletedTopic, error) {
	d := decoder{b: b}
	var t DeletedTopic
	if v := d.byte(); d.err == nil && v != stateVersion {
		return t, fmt.Errorf("meta: deleted topic record version %d", v)
	}
	for i := range t.ID {
		t.ID[i] = d.byte()
	}
	t.Name = d.string()
	return t, d.finish("deleted topic")
}

func tierPrefix(topic string, p int32) []byte {
	return binary.BigEndian.AppendUint32(append(append([]byte(keyTier), topic...), 0), uint32(p))
}
func tierTopicPrefix(topic string) []byte { return append(append([]byte(keyTier), topic...), 0) }
func tierKey(topic string, p int32, base int64) []byte {
	return binary.BigEndian.AppendUint64(tierPrefix(topic, p), uint64(base))
}

func (n *Node) encode() []byte {
	e := encoder{}
	e.byte(stateVersion)
	e.varint(int64(n.ID))
	e.string(n.RaftAddr)
	e.string(n.Rack)
	return e.b
}

func decodeNode(b []byte) (Node, error) {
	d := decoder{b: b}
	var n Node
	if v := d.byte(); v != stateVersion {
		return n, fmt.Errorf("%w: node record version %d", ErrUnknownCommand, v)
	}
	n.ID = d.int32()
	n.RaftAddr = d.string()
	n.Rack = d.string()
	return n, d.finish("node")
}

func (t *Topic) encode() []byte {
	e := encoder{}
	e.byte(stateVersion)
	e.string(t.Name)
	e.b = append(e.b, t.ID[:]...)
	e.varint(int64(t.Partitions))
	e.varint(int64(t.ReplicationFactor))
	e.stringMap(t.Configs)
	return e.b
}

func decodeTopic(b []byte) (Topic, error) {
	d := decoder{b: b}
	var t Topic
	if v := d.byte(); v != stateVersion {
		return t, fmt.Errorf("%w: topic record version %d", ErrUnknownCommand, v)
	}
	t.Name = d.string()
	for i := range t.ID {
		t.ID[i] = d.byte()
	}
	t.Partitions = d.int32()
	t.ReplicationFactor = int16(d.int32())
	t.Configs = d.stringMap()
	return t, d.finish("topic")
}

func (p *Partition) encode() []byte {
	e := encoder{}
	e.byte(stateVersion)
	e.string(p.Topic)
	e.varint(int64(p.Partition))
	e.int32s(p.Replicas)
	e.varint(int64(p.Leader))
	e.varint(int64(p.LeaderEpoch))
	e.int32s(p.ISR)
	e.varint(int64(p.PartitionEpoch))
	e.varint(p.LogStartOffset)
	return e.b
}

func decodePartition(b []byte) (Partition, error) {
	d := decoder{b: b}
	var p Partition
	if v := d.byte(); v != stateVersion {
		return p, fmt.Errorf("%w: partition record version %d", ErrUnknownCommand, v)
	}
	p.Topic = d.string()
	p.Partition = d.int32()
	p.Replicas = d.int32s()
	p.Leader = d.int32()
	p.LeaderEpoch = d.int32()
	p.ISR = d.int32s()
	p.PartitionEpoch = d.int32()
	p.LogStartOffset = d.varint()
	return p, d.finish("partition")
}

func (o *Offset) encode() []byte {
	e := encoder{}
	e.byte(stateVersion)
	e.string(o.Group)
	e.string(o.Topic)
	e.varint(int64(o.Partition))
	e.varint(o.Offset)
	e.varint(int64(o.LeaderEpoch))
	e.string(o.Metadata)
	e.varint(o.CommitTimeMs)
	e.varint(o.LogOffset)
	return e.b
}

func (o *Offset) decode(d *decoder) {
	o.Group = d.string()
	o.Topic = d.string()
	o.Partition = d.int32()
	o.Offset = d.varint()
	o.LeaderEpoch = d.int32()
	o.Metadata = d.string()
	o.CommitTimeMs = d.varint()
}

func decodeOffset(b []byte) (Offset, error) {
	d := decoder{b: b}
	var o Offset
	if v := d.byte(); v != stateVersion {
		return o, fmt.Errorf("%w: offset record version %d", ErrUnknownCommand, v)
	}
	o.decode(&d)
	o.LogOffset = -1
	if len(d.b) > 0 { // recorded since the __consumer_offsets view
		o.LogOffset = d.varint()
	}
	return o, d.finish("offset")
}

func (s *TierSegment) encodeTo(e *encoder) {
	e.string(s.Topic)
	e.varint(int64(s.Partition))
	e.varint(s.BaseOffset)
	e.varint(s.LastOffset)
	e.varint(s.SizeBytes)
	e.varint(int64(s.LeaderEpoch))
	e.varint(s.MaxTimestamp)
	e.string(s.ObjectKey)
	e.varint(s.UploadTimeMs)
	e.uvarint(uint64(len(s.SegmentEpochs)))
	for _, ep := range s.SegmentEpochs {
		e.varint(int64(ep.Epoch))
		e.varint(ep.StartOffset)
	}
}

func (s *TierSegment) decode(d *decoder) {
	s.Topic = d.string()
	s.Partition = d.int32()
	s.BaseOffset = d.varint()
	s.LastOffset = d.varint()
	s.SizeBytes = d.varint()
	s.LeaderEpoch = d.int32()
	s.MaxTimestamp = d.varint()
	s.ObjectKey = d.string()
	s.UploadTimeMs = d.varint()
	if n := d.length(); n > 0 {
		s.SegmentEpochs = make([]EpochStart, n)
		for i := range s.SegmentEpochs {
			s.SegmentEpochs[i] = EpochStart{Epoch: d.int32(), StartOffset: d.varint()}
		}
	}
}

func (s *TierSegment) encode() []byte {
	e := encoder{}
	e.byte(stateVersion)
	s.encodeTo(&e)
	return e.b
}

func decodeTierSegment(b []byte) (TierSegment, error) {
	d := decoder{b: b}
	var s TierSegment
	if v := d.byte(); v != stateVersion {
		return s, fmt.Errorf("%w: tier record version %d", ErrUnknownCommand, v)
	}
	s.decode(&d)
	return s, d.finish("tier segment")
}

// inISR reports whether id is in the ISR.
func (p *Partition) inISR(id int32) bool { return slices.Contains(p.ISR, id) }
