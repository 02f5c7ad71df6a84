package gateway

import (
	"encoding/json"
	"maps"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/strata-io/strata/internal/stream"
	"github.com/strata-io/strata/meta"
)

// nodeDefaults remembers, from node heartbeats, the topic defaults each
// node's flags set, so DescribeConfigs reports what a partition's leader
// actually applies, and each node's stream address, to send it Kafka
// requests directly (streams false: over NATS only).
type nodeDefaults struct {
	mu      sync.Mutex
	byID    map[int32]map[string]string
	streams map[int32]*stream.Client
	sub     *nats.Subscription
}

func watchNodeDefaults(nc *nats.Conn, cluster string, streams bool) (*nodeDefaults, error) {
	d := &nodeDefaults{byID: map[int32]map[string]string{}, streams: map[int32]*stream.Client{}}
	sub, err := nc.Subscribe(meta.HeartbeatSubject(cluster), func(m *nats.Msg) {
		var hb meta.Heartbeat
		if json.Unmarshal(m.Data, &hb) != nil {
			return
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if !maps.Equal(d.byID[hb.ID], hb.TopicDefaults) {
			d.byID[hb.ID] = hb.TopicDefaults
		}
		if old := d.streams[hb.ID]; streams && (old == nil || old.Addr() != hb.StreamAddr || old.Token() != hb.StreamToken) {
			if old != nil {
				old.Close() // the node restarted (a new token, maybe elsewhere), or stopped streaming
				delete(d.streams, hb.ID)
			}
			if hb.StreamAddr != "" {
				d.streams[hb.ID] = stream.NewClient(hb.StreamAddr, hb.StreamToken)
			}
		}
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

// stream returns node id's stream client, nil when it has none.
func (d *nodeDefaults) stream(id int32) *stream.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.streams[id]
}

func (d *nodeDefaults) close() {
	d.sub.Unsubscribe()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.streams {
		c.Close()
	}
}

// streaming counts the nodes with a stream client.
func (d *nodeDefaults) streaming() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.streams)
}
