package meta

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// The controller loop: while this member leads Raft it elects partition
// leaders, completes reassignments and assigns new partitions (the
// decisions themselves are in controller.go).

func (m *Member) controllerLoop(ctx context.Context) {
	defer m.wg.Done()
	tick := max(m.cfg.HeartbeatInterval/4, 20*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !m.server.IsLeader() {
			if m.ready.Swap(false) {
				m.logger.Info("no longer the controller")
			}
			m.mu.Lock()
			m.mu.leaderSince = time.Time{}
			m.mu.Unlock()
			continue
		}
		if !m.ready.Load() {
			// Commit an entry of this term so the commit index, and so
			// consistent reads, are current.
			if err := m.server.Raft().Barrier(5 * time.Second).Error(); err != nil {
				continue
			}
			m.mu.Lock()
			m.mu.leaderSince = time.Now()
			m.mu.Unlock()
			m.ready.Store(true)
			m.logger.Info("became the controller", "version", m.server.FSM().Applied())
		}
		m.controlMu.Lock()
		err := m.control(ctx)
		m.controlMu.Unlock()
		if err != nil && ctx.Err() == nil {
			m.logger.Warn("controller pass", "error", err)
		}
	}
}

// control is one controller pass: add members, register nodes, elect.
func (m *Member) control(ctx context.Context) error {
	now := time.Now()
	members, err := m.server.Members()
	if err != nil {
		return err
	}
	voters := 0
	for _, mi := range members {
		if mi.Voter {
			voters++
		}
	}
	m.mu.Lock()
	var heard []Heartbeat
	for _, s := range m.mu.seen {
		if now.Sub(s.at) < m.cfg.SessionTimeout {
			heard = append(heard, s.hb)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(heard, func(a, b Heartbeat) int { return int(a.ID - b.ID) })
	for _, hb := range heard {
		mi, ok := members[hb.ID]
		switch {
		case hb.RaftAddr == "":
		case !ok:
			voter := voters < m.cfg.BootstrapExpect
			m.logger.Info("adding node to the metadata group", "id", hb.ID, "voter", voter)
			if err := m.server.AddMember(hb.ID, hb.RaftAddr, voter); err != nil {
				return err
			}
			members[hb.ID] = MemberInfo{Voter: voter, Addr: hb.RaftAddr}
			if voter {
				voters++
			}
		case mi.Addr != hb.RaftAddr:
			// A node restarted on a new address: Raft must reach it there.
			m.logger.Info("metadata member moved", "id", hb.ID, "from", mi.Addr, "to", hb.RaftAddr)
			if err := m.server.AddMember(hb.ID, hb.RaftAddr, mi.Voter); err != nil {
				return err
			}
			members[hb.ID] = MemberInfo{Voter: mi.Voter, Addr: hb.RaftAddr}
		}
	}
	v := m.server.FSM().View()
	nodes, err := v.Nodes()
	if err != nil {
		v.Close()
		return err
	}
	topics, err := v.Topics()
	if err != nil {
		v.Close()
		return err
	}
	parts, err := v.AllPartitions()
	var moves []Reassignment
	if err == nil {
		moves, err = v.Reassignments()
	}
	v.Close()
	if err != nil {
		return err
	}
	known := map[int32]Node{}
	for _, n := range nodes {
		known[n.ID] = n
	}
	self := m.heartbeat()
	for _, hb := range append(heard, self) {
		want := Node{ID: hb.ID, RaftAddr: hb.RaftAddr, Rack: hb.Rack}
		if known[hb.ID] != want {
			if _, err := m.server.Propose(ctx, &RegisterNode{Node: want}); err != nil {
				return err
			}
			known[hb.ID] = want
		}
	}
	unclean := map[string]bool{}
	for _, t := range topics {
		unclean[t.Name] = t.Configs["unclean.leader.election.enable"] == "true"
	}
	alive := m.aliveFunc(now, members)
	if !m.hearsMajority(now, members, alive) {
		return nil
	}
	for _, p := range parts {
		change, ok := ElectLeader(p, alive, unclean[p.Topic])
		if !ok {
			continue
		}
		res, err := m.server.Propose(ctx, &change)
		if err != nil {
			return err
		}
		if res.Err != nil {
			m.logger.Warn("election rejected", "topic", p.Topic, "partition", p.Partition, "error", res.Err)
			continue
		}
		m.logger.Info("partition leadership changed", "topic", p.Topic, "partition", p.Partition,
			"leader", res.Partition.Leader, "leader_epoch", res.Partition.LeaderEpoch, "isr", res.Partition.ISR)
		if res.Partition.Leader != p.Leader {
			m.counts.elections.Add(1)
		}
		if len(res.Partition.ISR) < len(p.ISR) {
			m.counts.isrShrinks.Add(1)
		}
	}
	return m.completeMoves(ctx, parts, moves)
}

// completeMoves ends each reassignment whose target replicas have all
// caught up (joined the ISR).
func (m *Member) completeMoves(ctx context.Context, parts []Partition, moves []Reassignment) error {
	for _, r := range moves {
		i := slices.IndexFunc(parts, func(p Partition) bool { return p.Topic == r.Topic && p.Partition == r.Partition })
		if i < 0 || !subset(r.Target, parts[i].ISR) {
			continue
		}
		res, err := m.server.Propose(ctx, &CompleteReassignment{Topic: r.Topic, Partition: r.Partition, PartitionEpoch: parts[i].PartitionEpoch})
		if err != nil {
			return err
		}
		if res.Err != nil {
			m.logger.Debug("reassignment not completed yet", "topic", r.Topic, "partition", r.Partition, "error", res.Err)
			continue
		}
		m.logger.Info("partition moved", "topic", r.Topic, "partition", r.Partition, "from", r.Original, "to", r.Target,
			"leader", res.Partition.Leader)
	}
	return nil
}

// assignNewPartitions places the partitions a CreatePartitions adds, given
// only the new total, keeping the topic's balance.
func (m *Member) assignNewPartitions(c *CreatePartitions) (*CreatePartitions, error) {
	v := m.server.FSM().View()
	defer v.Close()
	t, ok, err := v.Topic(c.Topic)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, c.Topic)
	}
	if c.Total <= t.Partitions {
		return nil, fmt.Errorf("%w: topic %q has %d partitions; the new count %d must be larger", ErrInvalidRequest, c.Topic, t.Partitions, c.Total)
	}
	parts, err := v.Partitions(c.Topic)
	if err != nil {
		return nil, err
	}
	existing := make([][]int32, len(parts))
	for i, p := range parts {
		existing[i] = p.Replicas
	}
	a, err := AssignReplicas(c.Topic, m.LiveNodes(), int(t.Partitions), int(c.Total-t.Partitions), int(t.ReplicationFactor), existing)
	if err != nil {
		return nil, err
	}
	return &CreatePartitions{Topic: c.Topic, Total: c.Total, Assignment: a}, nil
}
