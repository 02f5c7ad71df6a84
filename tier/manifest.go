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

// TopicManifest is topic.json.
type TopicManifest struct {
	Name              string            `json:"name"`
	ID                string            `json:"id"` // hex
	Partitions        int32             `json:"partitions"`
	ReplicationFactor int16             `json:"replication_factor"`
	Configs           map[string]string `json:"configs,omitempty"`
}

// PartitionManifest is a partition's manifest.json.
type PartitionManifest struct {
	Topic          string             `json:"topic"`
	TopicID        string             `json:"topic_id"`
	Partition      int32              `json:"partition"`
	LogStartOffset int64              `json:"log_start_offset"`
	Segments       []meta.TierSegment `json:"segments"`
	WrittenMs      int64              `json:"written_ms"`
}

// TopicManifestOf describes t.
func TopicManifestOf(t meta.Topic) TopicManifest {
	return TopicManifest{Name: t.Name, ID: hex.EncodeToString(t.ID[:]), Partitions: t.Partitions,
		ReplicationFactor: t.ReplicationFactor, Configs: t.Configs}
}

// Topic returns the meta topic the manifest describes.
func (m TopicManifest) Topic() (meta.Topic, error) {
	t := meta.Topic{Name: m.Name, Partitions: m.Partitions, ReplicationFactor: m.ReplicationFactor, Configs: m.Configs}
	id, err := hex.DecodeString(m.ID)
	if err != nil || len(id) != 16 {
		return t, fmt.Errorf("tier: topic %s: bad id %q", m.Name, m.ID)
	}
	copy(t.ID[:], id)
	return t, nil
}

// TopicManifestKey is the key of a topic's topic.json.
func TopicManifestKey(topic string, id [16]byte) string { return TopicPrefix(topic, id) + "topic.json" }

func partitionManifestKey(topic string, id [16]byte, p int32) string {
	return fmt.Sprintf("%s%d/manifest.json", TopicPrefix(topic, id), p)
}

// WriteManifests writes a topic's topic.json and one partition's
// manifest.json.
func WriteManifests(ctx context.Context, s Store, t meta.Topic, pm PartitionManifest) error {
	pm.Topic, pm.TopicID, pm.WrittenMs = t.Name, hex.EncodeToString(t.ID[:]), time.Now().UnixMilli()
	if pm.Segments == nil {
		pm.Segments = []meta.TierSegment{}
	}
	for _, o := range []struct {
		key string
		v   any
	}{{TopicManifestKey(t.Name, t.ID), TopicManifestOf(t)}, {partitionManifestKey(t.Name, t.ID, pm.Partition), pm}} {
		b, err := json.MarshalIndent(o.v, "", "  ")
		if err != nil {
			return err
		}
		if err := s.Put(ctx, o.key, bytes.NewReader(b), int64(len(b))); err != nil {
			return err
		}
	}
	return nil
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
	var m TopicManifest
	if err := getJSON(ctx, s, best.Key, &m); err != nil {
		return m, err
	}
	if m.Name != name {
		return m, fmt.Errorf("tier: %s names topic %q", best.Key, m.Name)
	}
	return m, nil
}

// ReadPartitionManifest reads a partition's manifest.json; a partition
// that never uploaded has none (an empty manifest).
func ReadPartitionManifest(ctx context.Context, s Store, t meta.Topic, p int32) (PartitionManifest, error) {
	var m PartitionManifest
	err := getJSON(ctx, s, partitionManifestKey(t.Name, t.ID, p), &m)
	if errors.Is(err, ErrNotFound) {
		return PartitionManifest{Topic: t.Name, Partition: p}, nil
	}
	if err == nil && (m.Topic != t.Name || m.Partition != p) {
		err = fmt.Errorf("tier: manifest of %s-%d names %s-%d", t.Name, p, m.Topic, m.Partition)
	}
	return m, err
}

func getJSON(ctx context.Context, s Store, key string, v any) error {
	rc, err := s.Get(ctx, key, 0, -1)
	if err != nil {
		return err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("tier: %s: %w", key, err)
	}
	return nil
}

// IsManifestKey reports whether key is a topic.json or manifest.json.
func IsManifestKey(key string) bool {
	return strings.HasSuffix(key, "/topic.json") || strings.HasSuffix(key, "/manifest.json")
}
