package tier

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/strata-io/strata/meta"
)

// The bucket describes itself, so a cluster can be rebuilt from it alone:
//
//	<topic>-<id>/topic.json          the topic: id, partition count, configs
//	<topic>-<id>/<p>/manifest.json   a partition: log start offset, segments
//
// The partition leader rewrites both after each change to the partition's
// manifest in meta (an upload recorded, segments deleted); meta stays the
// source of truth while the cluster lives.
//
// Their schema is this package's, versioned, and pinned by the golden
// files in testdata/. Version 1:
//
//	topic.json     {"version": 1, "name", "id" (32 hex digits), "partitions",
//	                "replication_factor", "configs": {key: value}}
//	manifest.json  {"version": 1, "topic", "topic_id", "partition",
//	                "log_start_offset", "written_ms", "segments": [
//	                  {"base_offset", "last_offset", "size_bytes", "leader_epoch",
//	                   "max_timestamp_ms", "upload_time_ms", "object_key",
//	                   "epochs": [{"epoch", "start_offset"}]}]}
//
// Version 0 is what Strata wrote before the schema had a version: the
// same topic.json without "version", and segments with Go's field names
// (BaseOffset, ..., SegmentEpochs). It is still read, so buckets written
// then restore. A newer version is refused with a message naming it.
//
// Everything read from the bucket is checked before it is used: sizes,
// counts, names, offsets, and that every segment's objects lie under the
// partition's own prefix. A corrupt or hostile object fails its restore
// with an error and changes nothing.

// ManifestVersion is the version of topic.json and manifest.json this
// code writes; it reads this one and every one before it.
const ManifestVersion = 1

// Limits on what a bucket object may claim, checked before allocating.
const (
	maxManifestBytes = 64 << 20 // ~200k segments
	// MaxPartitions bounds a restored topic's partition count.
	MaxPartitions = 1 << 16
)

// TopicManifest is topic.json.
type TopicManifest struct {
	Version           int               `json:"version"`
	Name              string            `json:"name"`
	ID                string            `json:"id"` // hex
	Partitions        int32             `json:"partitions"`
	ReplicationFactor int16             `json:"replication_factor"`
	Configs           map[string]string `json:"configs,omitempty"`
}

// PartitionManifest is a partition's manifest.json. It is also the shape
// of a partition in `tier ls` answers.
type PartitionManifest struct {
	Version        int            `json:"version"`
	Topic          string         `json:"topic"`
	TopicID        string         `json:"topic_id"`
	Partition      int32          `json:"partition"`
	LogStartOffset int64          `json:"log_start_offset"`
	WrittenMs      int64          `json:"written_ms"`
	Segments       []SegmentEntry `json:"segments"`
}

// SegmentEntry is one uploaded segment in a manifest.
type SegmentEntry struct {
	BaseOffset   int64  `json:"base_offset"`
	LastOffset   int64  `json:"last_offset"`
	SizeBytes    int64  `json:"size_bytes"`
	LeaderEpoch  int32  `json:"leader_epoch"` // the uploading leader's
	MaxTimestamp int64  `json:"max_timestamp_ms"`
	UploadTimeMs int64  `json:"upload_time_ms"`
	ObjectKey    string `json:"object_key"` // the .log object; its indexes sit beside it
	// Epochs are the leader epochs in force within the segment: the one
	// at its base offset and those that start inside it.
	Epochs []EpochEntry `json:"epochs"`
}

// EpochEntry is a leader epoch and the offset where it starts.
type EpochEntry struct {
	Epoch       int32 `json:"epoch"`
	StartOffset int64 `json:"start_offset"`
}

// SegmentEntries describes meta's manifest entries for the bucket.
func SegmentEntries(segs []meta.TierSegment) []SegmentEntry {
	out := make([]SegmentEntry, 0, len(segs))
	for _, s := range segs {
		e := SegmentEntry{BaseOffset: s.BaseOffset, LastOffset: s.LastOffset, SizeBytes: s.SizeBytes, LeaderEpoch: s.LeaderEpoch,
			MaxTimestamp: s.MaxTimestamp, UploadTimeMs: s.UploadTimeMs, ObjectKey: s.ObjectKey, Epochs: []EpochEntry{}}
		for _, ep := range s.SegmentEpochs {
			e.Epochs = append(e.Epochs, EpochEntry{Epoch: ep.Epoch, StartOffset: ep.StartOffset})
		}
		out = append(out, e)
	}
	return out
}

// TierSegments are the manifest's entries as meta records them.
func (m PartitionManifest) TierSegments() []meta.TierSegment {
	out := make([]meta.TierSegment, 0, len(m.Segments))
	for _, e := range m.Segments {
		s := meta.TierSegment{Topic: m.Topic, Partition: m.Partition, BaseOffset: e.BaseOffset, LastOffset: e.LastOffset,
			SizeBytes: e.SizeBytes, LeaderEpoch: e.LeaderEpoch, MaxTimestamp: e.MaxTimestamp, ObjectKey: e.ObjectKey,
			UploadTimeMs: e.UploadTimeMs}
		for _, ep := range e.Epochs {
			s.SegmentEpochs = append(s.SegmentEpochs, meta.EpochStart{Epoch: ep.Epoch, StartOffset: ep.StartOffset})
		}
		out = append(out, s)
	}
	return out
}

// TopicManifestOf describes t.
func TopicManifestOf(t meta.Topic) TopicManifest {
	return TopicManifest{Version: ManifestVersion, Name: t.Name, ID: hex.EncodeToString(t.ID[:]), Partitions: t.Partitions,
		ReplicationFactor: t.ReplicationFactor, Configs: t.Configs}
}

// Topic returns the meta topic the manifest describes.
func (m TopicManifest) Topic() (meta.Topic, error) {
	t := meta.Topic{Name: m.Name, Partitions: m.Partitions, ReplicationFactor: m.ReplicationFactor, Configs: m.Configs}
	id, err := hex.DecodeString(m.ID)
	if err != nil || len(id) != 16 {
		return t, fmt.Errorf("%w: topic %s: bad id %q", ErrBadManifest, m.Name, m.ID)
	}
	copy(t.ID[:], id)
	return t, nil
}

// topicNameRE is Kafka's rule for topic names.
var topicNameRE = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// ErrBadManifest: a topic.json or manifest.json in the bucket is corrupt,
// of a newer version, or describes something impossible. Returned by
// DecodeTopicManifest, DecodePartitionManifest and the readers above them.
var ErrBadManifest = errors.New("tier: bad manifest")

// versioned is the part every bucket object shares.
type versioned struct {
	Version *int `json:"version"`
}

func decodeVersion(b []byte) (int, error) {
	var v versioned
	if err := json.Unmarshal(b, &v); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	switch {
	case v.Version == nil:
		return 0, nil
	case *v.Version < 0 || *v.Version > ManifestVersion:
		return 0, fmt.Errorf("%w: version %d; this Strata reads versions up to %d (upgrade it)", ErrBadManifest, *v.Version, ManifestVersion)
	}
	return *v.Version, nil
}

// DecodeTopicManifest decodes and checks a topic.json of any known
// version.
func DecodeTopicManifest(b []byte) (TopicManifest, error) {
	var m TopicManifest
	if _, err := decodeVersion(b); err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	m.Version = ManifestVersion // version 0 has the same fields
	if len(m.Configs) == 0 {
		m.Configs = nil
	}
	if _, err := m.Topic(); err != nil {
		return m, err
	}
	if !topicNameRE.MatchString(m.Name) || m.Name == "." || m.Name == ".." {
		return m, fmt.Errorf("%w: topic name %q", ErrBadManifest, m.Name)
	}
	if m.Partitions < 1 || m.Partitions > MaxPartitions || m.ReplicationFactor < 1 {
		return m, fmt.Errorf("%w: topic %s: %d partitions, replication factor %d", ErrBadManifest, m.Name, m.Partitions, m.ReplicationFactor)
	}
	return m, nil
}

// legacySegment is a segment of a version 0 manifest.json: meta's record
// with Go's field names.
type legacySegment struct {
	Topic         string
	Partition     int32
	BaseOffset    int64
	LastOffset    int64
	SizeBytes     int64
	LeaderEpoch   int32
	MaxTimestamp  int64
	ObjectKey     string
	UploadTimeMs  int64
	SegmentEpochs []struct {
		Epoch       int32
		StartOffset int64
	}
}

// DecodePartitionManifest decodes and checks a manifest.json of any known
// version: every segment lies under the partition's own prefix, offsets
// and epochs make sense, and base offsets increase.
func DecodePartitionManifest(b []byte) (PartitionManifest, error) {
	var m PartitionManifest
	version, err := decodeVersion(b)
	if err != nil {
		return m, err
	}
	if version == 0 {
		var legacy struct {
			PartitionManifest
			Segments []legacySegment `json:"segments"`
		}
		if err := json.Unmarshal(b, &legacy); err != nil {
			return m, fmt.Errorf("%w: %v", ErrBadManifest, err)
		}
		m = legacy.PartitionManifest
		m.Segments = make([]SegmentEntry, 0, len(legacy.Segments))
		for _, s := range legacy.Segments {
			if s.Topic != m.Topic || s.Partition != m.Partition {
				return m, fmt.Errorf("%w: manifest of %s-%d holds a segment of %s-%d", ErrBadManifest, m.Topic, m.Partition, s.Topic, s.Partition)
			}
			e := SegmentEntry{BaseOffset: s.BaseOffset, LastOffset: s.LastOffset, SizeBytes: s.SizeBytes, LeaderEpoch: s.LeaderEpoch,
				MaxTimestamp: s.MaxTimestamp, UploadTimeMs: s.UploadTimeMs, ObjectKey: s.ObjectKey, Epochs: []EpochEntry{}}
			for _, ep := range s.SegmentEpochs {
				e.Epochs = append(e.Epochs, EpochEntry{Epoch: ep.Epoch, StartOffset: ep.StartOffset})
			}
			m.Segments = append(m.Segments, e)
		}
	} else if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	m.Version = ManifestVersion
	if m.Segments == nil {
		m.Segments = []SegmentEntry{}
	}
	for i := range m.Segments {
		if m.Segments[i].Epochs == nil {
			m.Segments[i].Epochs = []EpochEntry{}
		}
	}
	return m, m.check()
}

// check is DecodePartitionManifest's checks.
func (m PartitionManifest) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: manifest of %s-%d: %s", ErrBadManifest, m.Topic, m.Partition, fmt.Sprintf(format, args...))
	}
	id, err := hex.DecodeString(m.TopicID)
	if err != nil || len(id) != 16 {
		return bad("topic id %q", m.TopicID)
	}
	if m.Partition < 0 || m.LogStartOffset < 0 {
		return bad("log start offset %d", m.LogStartOffset)
	}
	prefix := fmt.Sprintf("%s%d/", TopicPrefix(m.Topic, [16]byte(id)), m.Partition)
	prev := int64(-1)
	for _, e := range m.Segments {
		switch {
		case e.BaseOffset <= prev || e.LastOffset < e.BaseOffset:
			return bad("segment [%d, %d] after base offset %d", e.BaseOffset, e.LastOffset, prev)
		case e.LeaderEpoch < 0 || e.SizeBytes < 0:
			return bad("segment %d: leader epoch %d, size %d", e.BaseOffset, e.LeaderEpoch, e.SizeBytes)
		case !strings.HasPrefix(e.ObjectKey, prefix) || !strings.HasSuffix(e.ObjectKey, ".log") || strings.Contains(e.ObjectKey, ".."):
			return bad("segment %d: object %q is not under %s", e.BaseOffset, e.ObjectKey, prefix)
		}
		for _, ep := range e.Epochs {
			if ep.Epoch < 0 || ep.StartOffset < e.BaseOffset || ep.StartOffset > e.LastOffset {
				return bad("segment %d: epoch %d starts at %d", e.BaseOffset, ep.Epoch, ep.StartOffset)
			}
		}
		prev = e.BaseOffset
	}
	return nil
}

// TopicManifestKey is the key of a topic's topic.json.
func TopicManifestKey(topic string, id [16]byte) string { return TopicPrefix(topic, id) + "topic.json" }

func partitionManifestKey(topic string, id [16]byte, p int32) string {
	return fmt.Sprintf("%s%d/manifest.json", TopicPrefix(topic, id), p)
}

// WriteManifests writes a topic's topic.json and one partition's
// manifest.json.
func WriteManifests(ctx context.Context, s Store, t meta.Topic, partition int32, logStartOffset int64, segs []meta.TierSegment) error {
	topic, manifest, err := encodeManifests(t, partition, logStartOffset, segs, time.Now())
	if err != nil {
		return err
	}
	if err := s.Put(ctx, TopicManifestKey(t.Name, t.ID), bytes.NewReader(topic), int64(len(topic))); err != nil {
		return err
	}
	return s.Put(ctx, partitionManifestKey(t.Name, t.ID, partition), bytes.NewReader(manifest), int64(len(manifest)))
}

// encodeManifests is topic.json and manifest.json as written at now.
func encodeManifests(t meta.Topic, partition int32, logStartOffset int64, segs []meta.TierSegment, now time.Time) (topic, manifest []byte, err error) {
	pm := PartitionManifest{Version: ManifestVersion, Topic: t.Name, TopicID: hex.EncodeToString(t.ID[:]), Partition: partition,
		LogStartOffset: logStartOffset, WrittenMs: now.UnixMilli(), Segments: SegmentEntries(segs)}
	if topic, err = json.MarshalIndent(TopicManifestOf(t), "", "  "); err != nil {
		return nil, nil, err
	}
	manifest, err = json.MarshalIndent(pm, "", "  ")
	return topic, manifest, err
}

// ErrNoTopic: the bucket holds no topic of that name.
var ErrNoTopic = errors.New("tier: no such topic in the bucket")

// FindTopic reads the topic.json of the named topic. If the bucket holds
// several topics of that name (one deleted and created again before its
// objects were reclaimed), the most recently written wins.
func FindTopic(ctx context.Context, s Store, name string) (TopicManifest, error) {
	re := regexp.MustCompile("^" + regexp.QuoteMeta(name) + "-[0-9a-f]{32}/topic\\.json$")
	var best Object
	err := s.List(ctx, name+"-", func(o Object) error {
		if re.MatchString(o.Key) && (best.Key == "" || o.Modified.After(best.Modified)) {
			best = o
		}
		return nil
	})
	if err != nil {
		return TopicManifest{}, err
	}
	if best.Key == "" {
		return TopicManifest{}, fmt.Errorf("%w: %q", ErrNoTopic, name)
	}
	b, err := getObject(ctx, s, best.Key)
	if err != nil {
		return TopicManifest{}, err
	}
	m, err := DecodeTopicManifest(b)
	if err != nil {
		return m, fmt.Errorf("%s: %w", best.Key, err)
	}
	if m.Name != name || best.Key != TopicManifestKey(m.Name, [16]byte(mustHex(m.ID))) {
		return m, fmt.Errorf("%w: %s describes topic %q id %s", ErrBadManifest, best.Key, m.Name, m.ID)
	}
	return m, nil
}

// ReadPartitionManifest reads a partition's manifest.json; a partition
// that never uploaded has none (an empty manifest).
func ReadPartitionManifest(ctx context.Context, s Store, t meta.Topic, p int32) (PartitionManifest, error) {
	key := partitionManifestKey(t.Name, t.ID, p)
	b, err := getObject(ctx, s, key)
	if errors.Is(err, ErrNotFound) {
		return PartitionManifest{Version: ManifestVersion, Topic: t.Name, TopicID: hex.EncodeToString(t.ID[:]), Partition: p,
			Segments: []SegmentEntry{}}, nil
	}
	if err != nil {
		return PartitionManifest{}, err
	}
	m, err := DecodePartitionManifest(b)
	if err == nil && (m.Topic != t.Name || m.Partition != p || m.TopicID != hex.EncodeToString(t.ID[:])) {
		err = fmt.Errorf("%w: names %s-%d of topic id %s", ErrBadManifest, m.Topic, m.Partition, m.TopicID)
	}
	if err != nil {
		return m, fmt.Errorf("%s: %w", key, err)
	}
	return m, nil
}

// getObject reads a whole manifest object, at most maxManifestBytes.
func getObject(ctx context.Context, s Store, key string) ([]byte, error) {
	b, err := readObject(ctx, s, key, maxManifestBytes)
	if errors.Is(err, errObjectTooBig) {
		err = fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	return b, err
}

// errObjectTooBig: an object is bigger than its reader accepts.
var errObjectTooBig = errors.New("tier: object too big")

// readObject reads a whole object of at most limit bytes.
func readObject(ctx context.Context, s Store, key string, limit int) ([]byte, error) {
	rc, err := s.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%w: %s is over %d bytes", errObjectTooBig, key, limit)
	}
	return b, nil
}

// mustHex decodes an id already checked to be 32 hex digits.
func mustHex(s string) []byte {
	b, _ := hex.DecodeString(s)
	if len(b) != 16 {
		return make([]byte, 16)
	}
	return b
}

// IsManifestKey reports whether key is a topic.json or manifest.json.
func IsManifestKey(key string) bool {
	return strings.HasSuffix(key, "/topic.json") || strings.HasSuffix(key, "/manifest.json")
}
