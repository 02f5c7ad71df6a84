package gateway

import (
	"encoding/json"
	"maps"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/strata-io/strata/meta"
)

// nodeDefaults remembers, from node heartbeats, the topic defaults each
// node's flags set, so DescribeConfigs reports what a partition's leader
// actually applies.
type nodeDefaults struct {
	mu   sync.Mutex
	byID map[int32]map[string]string
	sub  *nats.Subscription
}

func watchNodeDefaults(nc *nats.Conn, cluster string) (*nodeDefaults, error) {
	d := &nodeDefaults{byID: map[int32]map[string]string{}}
	sub, err := nc.Subscribe(meta.HeartbeatSubject(cluster), func(m *nats.Msg) {
		var hb meta.Heartbeat
		if json.Unmarshal(m.Data, &hb) != nil {
			return
		}
		d.mu.Lock()
		if !maps.Equal(d.byID[hb.ID], hb.TopicDefaults) {
			d.byID[hb.ID] = hb.TopicDefaults
		}
		d.mu.Unlock()
	})
	if err != nil {
		return nil, err
	}
	d.sub = sub
	return d, nil
}

// of returns node id's topic defaults (nil when it sets none).
func (d *nodeDefaults) of(id int32) map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.byID[id]
}

func (d *nodeDefaults) close() { d.sub.Unsubscribe() }
