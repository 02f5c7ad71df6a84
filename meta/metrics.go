package meta

import (
	"io"

	"github.com/prometheus/client_golang/prometheus"
)

// fsmMetrics are what the metadata state machine and the offset batcher
// measure as they work. They exist whether or not anyone registers
// them (Member.Collectors): an unregistered histogram costs an atomic
// add per observation.
type fsmMetrics struct {
	apply         prometheus.Histogram // one batch of committed entries applied
	applyEntries  prometheus.Histogram // entries per applied batch
	snapshotBytes prometheus.Gauge     // the last snapshot persisted
	snapshots     prometheus.Counter
	offsetBatch   prometheus.Histogram // offsets per CommitOffsets command
}

func newFSMMetrics() *fsmMetrics {
	return &fsmMetrics{
		apply: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "strata_meta_apply_seconds",
			Help:    "Time to apply one batch of committed metadata entries to the state store.",
			Buckets: prometheus.ExponentialBuckets(25e-6, 2.5, 12)}),
		applyEntries: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "strata_meta_apply_batch_entries",
			Help:    "Committed metadata entries applied together in one batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10)}),
		snapshotBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "strata_meta_snapshot_bytes",
			Help: "Size of the last metadata snapshot this member persisted."}),
		snapshots: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_meta_snapshots_total",
			Help: "Metadata snapshots this member persisted."}),
		offsetBatch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "strata_meta_offset_commit_batch_offsets",
			Help:    "Committed offsets per metadata command: the offset commits of many groups and requests batched into one Raft entry.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9)}),
	}
}

func (m *fsmMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.apply, m.applyEntries, m.snapshotBytes, m.snapshots, m.offsetBatch}
}

// Collectors are the metadata group's own metrics for a Prometheus
// registry: apply latency and batch sizes, snapshot sizes, offset-commit
// batch sizes. Raft's state and indexes are read by the caller.
func (m *Member) Collectors() []prometheus.Collector { return m.server.fsm.metrics.collectors() }

// countingWriter counts what passes through it to w.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
