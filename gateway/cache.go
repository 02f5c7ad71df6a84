package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-io/strata/meta"
)

// metadataCache holds the gateway's view of topics and partitions, read
// from the controller and dropped whenever a change event arrives.
type metadataCache struct {
	client *meta.Client
	mu     sync.Mutex
	snap   *snapshot // nil when stale
	// changed, when set, is closed at the next invalidation.
	changed chan struct{}
	// features are the finalized features of the last read, kept across
	// invalidations: ApiVersions, the first request of every connection,
	// answers from it without waiting for the controller.
	features atomic.Pointer[meta.Features]
}

// snapshot is one consistent read of the topics; never modified.
type snapshot struct {
	version    uint64
	topics     map[string]meta.Topic
	byID       map[[16]byte]string
	partitions map[string][]meta.Partition // by topic, indexed by partition
	features   *meta.Features
	// nodes are the registered nodes, by id, and controller the one that
	// answered the read.
	nodes      []meta.Node
	controller int32
	fetchedAt  time.Time
}

// maxCacheAge bounds how stale the cache may get if an event is missed.
const maxCacheAge = 5 * time.Second

func newMetadataCache(c *meta.Client) *metadataCache { return &metadataCache{client: c} }

func (c *metadataCache) invalidate() {
	c.mu.Lock()
	c.snap = nil
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
	c.mu.Unlock()
}

// changedCh is closed at the next invalidation (a metadata change event).
func (c *metadataCache) changedCh() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changed == nil {
		c.changed = make(chan struct{})
	}
	return c.changed
}

// get returns the cached view, reading it afresh when stale or forced.
func (c *metadataCache) get(ctx context.Context, fresh bool) (*snapshot, error) {
	c.mu.Lock()
	s := c.snap
	c.mu.Unlock()
	if s != nil && !fresh && time.Since(s.fetchedAt) < maxCacheAge {
		return s, nil
	}
	r, err := c.client.Read(ctx, meta.ReadRequest{Kind: "topics"})
	if err != nil {
		return nil, err
	}
	if r.Features != nil {
		c.features.Store(r.Features)
	}
	s = &snapshot{version: r.Version, topics: map[string]meta.Topic{}, byID: map[[16]byte]string{},
		partitions: map[string][]meta.Partition{}, features: r.Features, fetchedAt: time.Now(),
		nodes: r.Nodes, controller: r.Controller}
	s.byID[offsetsTopicID] = offsetsTopic
	for _, t := range r.Topics {
		s.topics[t.Name] = t
		s.byID[t.ID] = t.Name
		s.partitions[t.Name] = make([]meta.Partition, t.Partitions)
	}
	for _, p := range r.Partitions {
		if ps := s.partitions[p.Topic]; int(p.Partition) < len(ps) {
			ps[p.Partition] = p
		}
	}
	c.mu.Lock()
	if c.snap == nil || c.snap.version <= s.version {
		c.snap = s
	}
	c.mu.Unlock()
	return s, nil
}

// partition looks up a partition's record.
func (s *snapshot) partition(topic string, p int32) (meta.Partition, bool) {
	ps, ok := s.partitions[topic]
	if !ok || p < 0 || int(p) >= len(ps) {
		return meta.Partition{}, false
	}
	return ps[p], true
}

// partitionOrZero is partition on a snapshot that may not exist (err set).
func (s *snapshot) partitionOrZero(err error, topic string, p int32) (meta.Partition, bool) {
	if err != nil || s == nil {
		return meta.Partition{}, false
	}
	return s.partition(topic, p)
}
