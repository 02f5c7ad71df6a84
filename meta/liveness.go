package meta

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
)

// Liveness and bootstrap: heartbeats on NATS, who counts as alive (deaf
// members do not), and the first group's forming without a --join list.

// Heartbeat is what a node publishes on strata.<cluster>.node.heartbeat.
type Heartbeat struct {
	ID       int32  `json:"id"`
	RaftAddr string `json:"raft_addr"`
	Rack     string `json:"rack,omitempty"`
	Version  string `json:"version,omitempty"`
	// Member is set once the node belongs to a Raft group.
	Member bool `json:"member"`
	// Leader is the controller the node knows, or -1.
	Leader  int32  `json:"leader"`
	Applied uint64 `json:"applied"`
	// TopicDefaults are the topic configs this node's flags set, by topic
	// config name (retention.ms, ...): what a topic without its own value
	// gets on this node, as DescribeConfigs reports it.
	TopicDefaults map[string]string `json:"topic_defaults,omitempty"`
	// StreamAddr is where the node takes Kafka requests over a direct
	// connection (internal/stream); empty: over NATS only.
	StreamAddr string `json:"stream_addr,omitempty"`
	// StreamToken is the secret a gateway opens a stream connection with
	// (internal/stream): heartbeats are the only place it is told, so
	// the stream serves only who may read Strata's NATS subjects.
	StreamToken string `json:"stream_token,omitempty"`
	// Deaf says the node has not heard its own heartbeats come back: it
	// sends on NATS but receives nothing (a one-way partition, a stalled
	// connection). Such a heartbeat does not count as the node being
	// alive: it could lead no partition, answer no request.
	Deaf bool `json:"deaf,omitempty"`
}

// HeartbeatSubject is where nodes publish their Heartbeat.
func HeartbeatSubject(cluster string) string { return subject(cluster, subjHeartbeat) }

func (m *Member) heartbeat() Heartbeat {
	leader := int32(-1)
	if id, _, ok := m.server.Leader(); ok {
		leader = id
	}
	members, _ := m.server.Members()
	return Heartbeat{ID: m.cfg.NodeID, RaftAddr: m.server.Addr(), Rack: m.cfg.Rack, Version: m.cfg.Version,
		Member: len(members) > 0, Leader: leader, Applied: m.server.FSM().Applied(), TopicDefaults: m.cfg.TopicDefaults,
		StreamAddr: m.cfg.StreamAddr, StreamToken: m.cfg.StreamToken, Deaf: m.deaf(time.Now())}
}

// deaf reports whether this node's own heartbeats have stopped coming
// back for three intervals (at most half a session timeout).
func (m *Member) deaf(now time.Time) bool {
	return m.echo.Deaf(m.nc, now, min(3*m.cfg.HeartbeatInterval, m.cfg.SessionTimeout/2))
}

// hearing reports whether this member hears NATS now: it is connected
// and its own heartbeats come back. While it does not, it notes the
// time: aliveFunc judges no one by a silence it may not have heard.
func (m *Member) hearing(now time.Time) bool {
	ok := m.nc.IsConnected() && !m.deaf(now)
	if !ok {
		m.mu.Lock()
		m.mu.deafAt = now
		m.mu.Unlock()
	}
	return ok
}

func (m *Member) heartbeatLoop(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.HeartbeatInterval)
	defer t.Stop()
	wasDeaf := false
	for {
		now := time.Now()
		m.echo.Sent(now)
		m.hearing(now)
		hb := m.heartbeat()
		if hb.Deaf != wasDeaf {
			if hb.Deaf {
				m.logger.Warn("this node's heartbeats no longer come back: it hears nothing on NATS, so it tells the controller not to count it alive")
			} else {
				m.logger.Info("this node hears NATS again")
			}
			wasDeaf = hb.Deaf
		}
		if b, err := json.Marshal(hb); err == nil {
			m.nc.Publish(subject(m.cfg.Cluster, subjHeartbeat), b)
		}
		if !hb.Member {
			m.maybeBootstrap()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Member) onHeartbeat(msg *nats.Msg) {
	var hb Heartbeat
	if err := json.Unmarshal(msg.Data, &hb); err != nil {
		m.logger.Warn("malformed heartbeat", "error", err)
		return
	}
	if hb.ID == m.cfg.NodeID {
		m.echo.Heard(time.Now())
	} else if hb.Deaf {
		return // it is there, but hears nothing: not alive
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if at, ok := m.mu.removed[hb.ID]; ok {
		if time.Since(at) < m.cfg.SessionTimeout {
			return
		}
		delete(m.mu.removed, hb.ID)
	}
	m.mu.seen[hb.ID] = seenNode{hb: hb, at: time.Now()}
}

// HearsHeartbeats reports whether this member heard a heartbeat (its own,
// echoed by NATS, included) within the session timeout: false means it
// is cut off NATS, and must not judge others by their silence.
func (m *Member) HearsHeartbeats() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.mu.seen {
		if time.Since(s.at) < m.cfg.SessionTimeout {
			return true
		}
	}
	return false
}

// HearsNATS reports whether this member hears NATS now: connected, with
// its own heartbeats coming back. HearsHeartbeats lags a cut by a session
// timeout (it remembers heartbeats heard before); this does not, by the
// echo's few heartbeat intervals.
func (m *Member) HearsNATS() bool { return m.hearing(time.Now()) }

// maybeBootstrap starts the group once BootstrapExpect nodes with no group
// have been seen and the set has held still for two heartbeats. Only the
// lowest id bootstraps, with the lowest BootstrapExpect ids as voters; a
// node that sees any heartbeat from a group member waits to be added.
func (m *Member) maybeBootstrap() {
	m.mu.Lock()
	var ids []int32
	for id, s := range m.mu.seen {
		if s.hb.Member {
			m.mu.Unlock()
			return // a group exists: its leader adds us
		}
		if time.Since(s.at) < m.cfg.SessionTimeout {
			ids = append(ids, id)
		}
	}
	if !slices.Contains(ids, m.cfg.NodeID) {
		ids = append(ids, m.cfg.NodeID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, m.mu.candidates) {
		m.mu.candidates, m.mu.settledAt = ids, time.Now()
	}
	settled := time.Since(m.mu.settledAt) >= 2*m.cfg.HeartbeatInterval || m.cfg.BootstrapExpect == 1
	voters := map[int32]string{}
	if len(ids) >= m.cfg.BootstrapExpect {
		for _, id := range ids[:m.cfg.BootstrapExpect] {
			if id == m.cfg.NodeID {
				voters[id] = m.server.Addr()
			} else {
				voters[id] = m.mu.seen[id].hb.RaftAddr
			}
		}
	}
	m.mu.Unlock()
	if len(voters) < m.cfg.BootstrapExpect || ids[0] != m.cfg.NodeID || !settled {
		return
	}
	m.logger.Info("bootstrapping the metadata group", "voters", len(voters))
	if err := m.server.Bootstrap(voters); err != nil {
		m.logger.Warn("bootstrap", "error", err)
	}
}

// alive reports whether a node has been heard from within the session
// timeout. A new controller gives every member a full session timeout
// from when it took over before judging it, and so does one that has
// just heard NATS again: a silence counts only if it was listening.
func (m *Member) aliveFunc(now time.Time, members map[int32]MemberInfo) func(int32) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	grace := now.Sub(m.mu.leaderSince) < m.cfg.SessionTimeout || now.Sub(m.mu.deafAt) < m.cfg.SessionTimeout
	live := map[int32]bool{m.cfg.NodeID: true}
	for id, s := range m.mu.seen {
		if now.Sub(s.at) < m.cfg.SessionTimeout {
			live[id] = true
		}
	}
	if grace {
		for id := range members {
			live[id] = true
		}
	}
	return func(id int32) bool { return live[id] }
}

// hearsMajority reports whether the controller hears heartbeats from a
// majority of the group's members. One that does not is most likely cut
// off NATS itself (Raft, on its own connections, still elects it): it
// must not move every partition onto itself. It changes nothing, and
// after a session timeout of this hands the controller role to another
// voter, which hears the others.
func (m *Member) hearsMajority(now time.Time, members map[int32]MemberInfo, alive func(int32) bool) bool {
	heard := 0
	for id := range members {
		if alive(id) {
			heard++
		}
	}
	hearing := m.hearing(now)
	m.mu.Lock()
	handOver := false
	switch {
	case hearing && 2*heard > len(members):
		m.mu.deafSince = time.Time{}
		m.mu.Unlock()
		return true
	case m.mu.deafSince.IsZero():
		m.mu.deafSince = now
		m.logger.Warn("the controller hears heartbeats from too few members to judge them; changing nothing",
			"heard", heard, "members", len(members), "hears_nats", hearing)
	case now.Sub(m.mu.deafSince) > m.cfg.SessionTimeout:
		m.mu.deafSince = now
		handOver = true
	}
	m.mu.Unlock()
	if handOver {
		m.logger.Warn("handing the controller role to another member: this one is cut off from the others' heartbeats")
		if err := m.server.Raft().LeadershipTransfer().Error(); err != nil {
			m.logger.Warn("controller hand-over", "error", err)
		}
	}
	return false
}
