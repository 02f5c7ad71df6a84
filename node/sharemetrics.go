package node

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// shareCollector exports the share-partitions this node leads, read at
// scrape time, and its share counters.
type shareCollector struct {
	n                          *Node
	start, inFlight, held      *prometheus.Desc
	writes, acquired, acksType *prometheus.Desc
	deadLetters, deadErrors    *prometheus.Desc
}

func newShareCollector(n *Node) *shareCollector {
	node := prometheus.Labels{"node": strconv.Itoa(int(n.cfg.ID))}
	gtp := []string{"group", "topic", "partition"}
	return &shareCollector{n: n,
		start:       prometheus.NewDesc("strata_share_partition_start_offset", "A share group's start offset (SPSO) on a partition this node leads: records below it are done.", gtp, node),
		inFlight:    prometheus.NewDesc("strata_share_partition_in_flight_records", "Records of a share-partition delivered and not yet acknowledged or archived: held by a member, or released to be delivered again.", gtp, node),
		held:        prometheus.NewDesc("strata_share_partition_acquired_records", "Records of a share-partition locked by a member now.", gtp, node),
		writes:      prometheus.NewDesc("strata_share_state_writes_total", "Share-partition state writes to the metadata group (after acknowledgements, acquisitions and expired locks).", nil, node),
		acquired:    prometheus.NewDesc("strata_share_records_acquired_total", "Records handed to share group members (each delivery counts).", nil, node),
		acksType:    prometheus.NewDesc("strata_share_acknowledgements_total", "Records acknowledged by share group members, by type (accept, release, reject, renew, gap).", []string{"type"}, node),
		deadLetters: prometheus.NewDesc("strata_share_dead_letters_total", "Undeliverable records (rejected, or at the delivery limit) written to their group's dead-letter topic.", nil, node),
		deadErrors:  prometheus.NewDesc("strata_share_dead_letter_errors_total", "Undeliverable records that could not be written to their group's dead-letter topic (they stay archived).", nil, node),
	}
}

func (c *shareCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.start, c.inFlight, c.held, c.writes, c.acquired, c.acksType, c.deadLetters, c.deadErrors} {
		ch <- d
	}
}

func (c *shareCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(c.writes, n.counts.shareWrites.Load())
	counter(c.acquired, n.counts.shareAcquired.Load())
	counter(c.deadLetters, n.counts.shareDeadLetters.Load())
	counter(c.deadErrors, n.counts.shareDeadLetterErrors.Load())
	for t, name := range shareAckNames {
		counter(c.acksType, n.counts.shareAcks[t].Load(), name)
	}
	if n.cfg.NoPartitionMetrics {
		return
	}
	n.shares.mu.Lock()
	parts := make([]*sharePart, 0, len(n.shares.parts))
	for _, sp := range n.shares.parts {
		parts = append(parts, sp)
	}
	n.shares.mu.Unlock()
	for _, sp := range parts {
		labels := []string{sp.key.group, sp.key.topic, strconv.Itoa(int(sp.key.partition))}
		sp.mu.Lock()
		start, inFlight, held := sp.p.Start(), sp.p.InFlight(), sp.p.Held()
		sp.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(c.start, prometheus.GaugeValue, float64(start), labels...)
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(inFlight), labels...)
		ch <- prometheus.MustNewConstMetric(c.held, prometheus.GaugeValue, float64(held), labels...)
	}
}

// shareAckNames names acknowledgement types by their wire number.
var shareAckNames = [...]string{"gap", "accept", "release", "reject", "renew"}
