package tier

import (
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/strata-io/strata/meta"
)

// A remote hint is a node's answer, to a gateway that reads the tier
// itself, for a partition whose fetch offset lies below the node's local
// log: the manifest entry holding the offset, and the one after it (for
// read-ahead across the boundary). It travels in the partition's record
// field under OFFSET_MOVED_TO_TIERED_STORAGE, as a partition manifest of
// one or two segments: the bucket's versioned format, checked the same
// way when decoded, so a hostile or corrupt hint is an error, never a
// read of another partition's objects.

// EncodeRemoteHint encodes segs (the segment holding the offset, then
// perhaps the next) of topic's partition.
func EncodeRemoteHint(topic string, id [16]byte, partition int32, logStart int64, segs ...meta.TierSegment) []byte {
	b, _ := json.Marshal(PartitionManifest{Version: ManifestVersion, Topic: topic, TopicID: hex.EncodeToString(id[:]),
		Partition: partition, LogStartOffset: logStart, Segments: SegmentEntries(segs)})
	return b
}

// DecodeRemoteHint decodes a hint for topic's partition and offset: the
// segment to read and, if the hint names one, the segment after it.
func DecodeRemoteHint(b []byte, topic string, partition int32, offset int64) (seg meta.TierSegment, next *meta.TierSegment, err error) {
	m, err := DecodePartitionManifest(b)
	if err != nil {
		return seg, nil, err
	}
	segs := m.TierSegments()
	switch {
	case m.Topic != topic || m.Partition != partition:
		return seg, nil, fmt.Errorf("%w: a hint for %s-%d answers %s-%d", ErrBadManifest, m.Topic, m.Partition, topic, partition)
	case len(segs) == 0 || len(segs) > 2:
		return seg, nil, fmt.Errorf("%w: a hint of %d segments", ErrBadManifest, len(segs))
	case offset < segs[0].BaseOffset || offset > segs[0].LastOffset || offset < m.LogStartOffset:
		return seg, nil, fmt.Errorf("%w: a hint for offset %d names segment [%d, %d] (log start %d)", ErrBadManifest,
			offset, segs[0].BaseOffset, segs[0].LastOffset, m.LogStartOffset)
	}
	if len(segs) == 2 {
		next = &segs[1]
	}
	return segs[0], next, nil
}
