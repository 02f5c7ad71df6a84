package gateway

import (
	"context"

	"github.com/strata-io/strata/meta"
)

// PinStaleLeader makes the gateway's metadata view name leader as the
// partition's leader, as a view that missed a leadership change would.
func (g *Gateway) PinStaleLeader(ctx context.Context, topic string, partition, leader int32) error {
	s, err := g.cache.get(ctx, true)
	if err != nil {
		return err
	}
	stale := *s
	stale.partitions = map[string][]meta.Partition{}
	for name, ps := range s.partitions {
		stale.partitions[name] = append([]meta.Partition(nil), ps...)
	}
	stale.partitions[topic][partition].Leader = leader
	g.cache.mu.Lock()
	g.cache.snap = &stale
	g.cache.mu.Unlock()
	return nil
}

// SetGather turns writing large fetch records as they are (writev) on
// or off, for a benchmark's baseline; it returns the setting before.
func SetGather(on bool) (was bool) { return !gatherOff.Swap(!on) }

// SetMaxShareSessions sets how many share sessions a gateway keeps; it
// returns the setting before.
func SetMaxShareSessions(n int) (was int) {
	was, maxShareSessions = maxShareSessions, n
	return was
}
