package group

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exports the groups this node coordinates: only the
// controller's node coordinates, so a cluster exports each group once.
type collector struct {
	s                                      *Service
	members, state, generation, rebalances *prometheus.Desc
}

// Collector is the service's Prometheus collector: each group's state,
// members, generation and completed rebalances, while this node is the
// coordinator. Rebalances count from when it became the coordinator.
func (s *Service) Collector() prometheus.Collector {
	node := prometheus.Labels{"node": strconv.Itoa(int(s.id))}
	return &collector{s: s,
		members:    prometheus.NewDesc("strata_consumer_group_members", "Members of a consumer group (reported by the coordinator, the controller).", []string{"group"}, node),
		state:      prometheus.NewDesc("strata_consumer_group_state", "1 for a consumer group's current state (Empty, PreparingRebalance, CompletingRebalance, Stable).", []string{"group", "state"}, node),
		generation: prometheus.NewDesc("strata_consumer_group_generation", "A consumer group's generation.", []string{"group"}, node),
		rebalances: prometheus.NewDesc("strata_consumer_group_rebalances_total", "Rebalances of a consumer group completed since this node became its coordinator.", []string{"group"}, node),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.members
	ch <- c.state
	ch <- c.generation
	ch <- c.rebalances
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.s.mu.Lock()
	coord := c.s.coord
	c.s.mu.Unlock()
	if coord == nil || !c.s.member.Server().IsLeader() {
		return
	}
	for _, g := range coord.Stats() {
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(g.Members), g.ID)
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, 1, g.ID, g.State)
		ch <- prometheus.MustNewConstMetric(c.generation, prometheus.GaugeValue, float64(g.Generation), g.ID)
		ch <- prometheus.MustNewConstMetric(c.rebalances, prometheus.CounterValue, float64(g.Rebalances), g.ID)
	}
}

// GroupStats is what the coordinator knows of one group now.
type GroupStats struct {
	ID, State  string
	Members    int
	Generation int32
	Rebalances int64
}

// Stats describes every group the coordinator holds in memory (groups
// with only committed offsets are not among them).
func (c *Coordinator) Stats() []GroupStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]GroupStats, 0, len(c.groups))
	for _, g := range c.groups {
		out = append(out, GroupStats{ID: g.id, State: g.state.String(), Members: len(g.members), Generation: g.generation,
			Rebalances: g.rebalances})
	}
	return out
}
