package group

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/meta"
)

// OffsetStore keeps committed offsets.
type OffsetStore interface {
	CommitOffsets(ctx context.Context, offsets []meta.Offset) error
	GroupOffsets(ctx context.Context, group string) ([]meta.Offset, error)
	// Groups lists the groups with committed offsets.
	Groups(ctx context.Context) ([]string, error)
	// DeleteOffsets deletes a group's offsets: all (topic ""), a topic's,
	// or some partitions'.
	DeleteOffsets(ctx context.Context, group, topic string, partitions []int32) error
}

// PendingOffsetStore is an OffsetStore that also knows the offsets
// transactions have committed but not yet completed (TxnOffsetCommit):
// OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT for
// those partitions (KIP-447), so a member taking a partition over does
// not resume from before what a committing transaction consumed.
type PendingOffsetStore interface {
	PendingTxnOffsets(ctx context.Context, group string) (map[meta.TxnPartition]bool, error)
}

type state int

const (
	stateEmpty state = iota
	statePreparingRebalance
	stateCompletingRebalance
	stateStable
)

func (s state) String() string {
	return [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable"}[s]
}

// Coordinator runs every consumer group.
type Coordinator struct {
	store  OffsetStore
	logger *slog.Logger
	mu     sync.Mutex
	groups map[string]*group
	// consumers are the groups on the KIP-848 consumer protocol
	// (consumer.go); a group id is in at most one of the two maps.
	consumers map[string]*consumerGroup
	// consumerSession and consumerHeartbeat are the consumer protocol's
	// group.consumer.session.timeout.ms and heartbeat.interval.ms.
	consumerSession, consumerHeartbeat time.Duration
	// shares are the share groups (sharegroup.go), with their session
	// timeout and heartbeat interval.
	shares                       map[string]*shareGroup
	shareSession, shareHeartbeat time.Duration
	// sessions are groups' own session timeouts (the group configs
	// consumer.session.timeout.ms, share.session.timeout.ms), as their
	// last heartbeat read them; absent: the kind's.
	sessions map[string]time.Duration
	// topicSource, when set, stands in for the metadata's topics (tests).
	topicSource func() map[string]topicInfo
	// metaDirty are the classic groups whose metadata is to be written,
	// metaKick wakes the writer (groupmeta.go).
	metaDirty map[string]bool
	metaKick  chan struct{}
	stop      chan struct{}
	wg        sync.WaitGroup
}

type group struct {
	id           string
	state        state
	generation   int32
	protocolType string
	protocol     string
	leader       string
	members      map[string]*member
	instances    map[string]string // group.instance.id -> member id
	// joinDeadline ends the current PreparingRebalance: members that have
	// not rejoined by then are dropped.
	joinDeadline time.Time
	// rebalances counts the join phases completed with members.
	rebalances int64
}

type member struct {
	id, instanceID, clientID, clientHost string
	protocols                            []kmsg.JoinGroupRequestProtocol
	sessionTimeout, rebalanceTimeout     time.Duration
	lastSeen                             time.Time
	assignment                           []byte
	// join is set while the member waits in JoinGroup for the rebalance
	// to complete; sync while it waits in SyncGroup for the leader.
	join chan *kmsg.JoinGroupResponse
	sync chan *kmsg.SyncGroupResponse
	// joinVersion is the version of the pending JoinGroup.
	joinVersion int16
}

// New returns a coordinator; Close stops its timers.
func New(store OffsetStore, logger *slog.Logger) *Coordinator {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Coordinator{store: store, logger: logger, groups: map[string]*group{}, consumers: map[string]*consumerGroup{},
		consumerSession: DefaultConsumerSessionTimeout, consumerHeartbeat: DefaultConsumerHeartbeatInterval,
		shares: map[string]*shareGroup{}, shareSession: DefaultShareSessionTimeout, shareHeartbeat: DefaultShareHeartbeatInterval,
		sessions: map[string]time.Duration{}, metaDirty: map[string]bool{}, metaKick: make(chan struct{}, 1),
		stop: make(chan struct{})}
	c.wg.Add(2)
	go c.tickLoop()
	go c.groupMetaLoop()
	return c
}

// Close stops the coordinator; waiting members are answered
// NOT_COORDINATOR so they find the new one.
func (c *Coordinator) Close() {
	close(c.stop)
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, g := range c.groups {
		for _, m := range g.members {
			c.failWaitersLocked(m, kerr.NotCoordinator.Code)
		}
	}
	c.groups = map[string]*group{}
}

func (c *Coordinator) tickLoop() {
	defer c.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			var topics map[string]topicInfo // read once, if a member expires
			topicsOnce := func() map[string]topicInfo {
				if topics == nil {
					topics = c.topicsNow()
				}
				return topics
			}
			c.mu.Lock()
			for _, g := range c.groups {
				c.expireLocked(g, now)
			}
			for _, g := range c.consumers {
				c.expireConsumersLocked(g, now, topicsOnce)
			}
			for _, g := range c.shares {
				c.expireSharesLocked(g, now, topicsOnce)
			}
			c.mu.Unlock()
		}
	}
}

// expireLocked drops members whose session ran out and completes a join
// phase whose deadline passed.
func (c *Coordinator) expireLocked(g *group, now time.Time) {
	expired := false
	for id, m := range g.members {
		if m.join == nil && now.Sub(m.lastSeen) > m.sessionTimeout {
			c.logger.Info("group member session expired", "group", g.id, "member", id)
			c.removeMemberLocked(g, id)
			expired = true
		}
	}
	if expired && len(g.members) > 0 && g.state != statePreparingRebalance {
		c.prepareRebalanceLocked(g)
	}
	if g.state == statePreparingRebalance && (c.allJoinedLocked(g) || now.After(g.joinDeadline)) {
		c.completeJoinLocked(g)
	}
}

func newMemberID(clientID string) string {
	var b [8]byte
	rand.Read(b[:])
	return clientID + "-" + hex.EncodeToString(b[:])
}

func (c *Coordinator) groupLocked(id string) *group {
	g := c.groups[id]
	if g == nil {
		g = &group{id: id, members: map[string]*member{}, instances: map[string]string{}}
		c.groups[id] = g
	}
	return g
}

// JoinGroup adds or refreshes a member and returns once the rebalance it
// joins completes.
func (c *Coordinator) JoinGroup(ctx context.Context, req *kmsg.JoinGroupRequest, clientID, clientHost string) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.Generation = -1
	fail := func(code int16) *kmsg.JoinGroupResponse { resp.ErrorCode = code; return resp }
	if req.Group == "" {
		return fail(kerr.InvalidGroupID.Code)
	}
	if req.SessionTimeoutMillis < 1000 || req.SessionTimeoutMillis > 30*60*1000 {
		return fail(kerr.InvalidSessionTimeout.Code)
	}
	c.mu.Lock()
	if c.otherKindLocked(req.Group, "classic") {
		c.mu.Unlock()
		return fail(kerr.InconsistentGroupProtocol.Code) // its members use the consumer or share protocol
	}
	delete(c.consumers, req.Group) // an empty group of another kind becomes a classic one
	delete(c.shares, req.Group)
	g := c.groupLocked(req.Group)
	if g.protocolType != "" && len(g.members) > 0 && req.ProtocolType != g.protocolType {
		c.mu.Unlock()
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	if len(g.members) > 0 && !c.supportsCommonProtocolLocked(g, req.Protocols) {
		c.mu.Unlock()
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	instanceID := ""
	if req.InstanceID != nil {
		instanceID = *req.InstanceID
	}
	id := req.MemberID
	if id == "" {
		id = newMemberID(clientID)
		if instanceID != "" {
			// Static membership: the new id replaces the old one, which is
			// fenced from now on.
			if old, ok := g.instances[instanceID]; ok {
				if om := g.members[old]; om != nil {
					c.failWaitersLocked(om, kerr.FencedInstanceID.Code)
					delete(g.members, old)
					if g.leader == old {
						g.leader = id
					}
				}
			}
			g.instances[instanceID] = id
		}
	} else if g.members[id] == nil {
		c.mu.Unlock()
		return fail(kerr.UnknownMemberID.Code)
	}
	m := g.members[id]
	sameProtocols := m != nil && protocolsEqual(m.protocols, req.Protocols)
	if m == nil {
		m = &member{id: id, instanceID: instanceID, clientID: clientID, clientHost: clientHost}
		g.members[id] = m
	}
	m.protocols = req.Protocols
	m.sessionTimeout = time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	m.rebalanceTimeout = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	if req.Version == 0 {
		m.rebalanceTimeout = m.sessionTimeout
	}
	m.lastSeen = time.Now()
	g.protocolType = req.ProtocolType
	// A known member rejoining a stable group unchanged gets the current
	// generation back without a rebalance (unless it leads: the leader
	// rejoins to reassign).
	if g.state == stateStable && sameProtocols && id != g.leader {
		r := c.joinResponseLocked(g, m, req.Version)
		c.mu.Unlock()
		return r
	}
	m.join = make(chan *kmsg.JoinGroupResponse, 1)
	m.joinVersion = req.Version
	wait := m.join
	if g.state != statePreparingRebalance {
		c.prepareRebalanceLocked(g)
	}
	if c.allJoinedLocked(g) {
		c.completeJoinLocked(g)
	}
	c.mu.Unlock()
	select {
	case r := <-wait:
		return r
	case <-ctx.Done():
		return fail(kerr.RebalanceInProgress.Code)
	}
}

func protocolsEqual(a, b []kmsg.JoinGroupRequestProtocol) bool {
	return slices.EqualFunc(a, b, func(x, y kmsg.JoinGroupRequestProtocol) bool {
		return x.Name == y.Name && string(x.Metadata) == string(y.Metadata)
	})
}

func (c *Coordinator) supportsCommonProtocolLocked(g *group, ps []kmsg.JoinGroupRequestProtocol) bool {
	for _, p := range ps {
		ok := true
		for _, m := range g.members {
			if !slices.ContainsFunc(m.protocols, func(q kmsg.JoinGroupRequestProtocol) bool { return q.Name == p.Name }) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// prepareRebalanceLocked starts a join phase: every member must rejoin
// within the longest rebalance timeout.
func (c *Coordinator) prepareRebalanceLocked(g *group) {
	if g.state == stateCompletingRebalance {
		for _, m := range g.members {
			c.failSyncLocked(m, kerr.RebalanceInProgress.Code)
		}
	}
	g.state = statePreparingRebalance
	timeout := time.Duration(0)
	for _, m := range g.members {
		timeout = max(timeout, m.rebalanceTimeout)
	}
	g.joinDeadline = time.Now().Add(timeout)
	c.logger.Debug("group rebalancing", "group", g.id, "members", len(g.members))
}

func (c *Coordinator) allJoinedLocked(g *group) bool {
	for _, m := range g.members {
		if m.join == nil {
			return false
		}
	}
	return true
}

// completeJoinLocked ends the join phase: members that did not rejoin
// leave, the generation moves on, a protocol and leader are chosen, and
// every waiting member is answered.
func (c *Coordinator) completeJoinLocked(g *group) {
	for id, m := range g.members {
		if m.join == nil {
			c.removeMemberLocked(g, id)
		}
	}
	if len(g.members) == 0 {
		g.state, g.protocol, g.leader = stateEmpty, "", ""
		g.generation++
		return
	}
	g.generation++
	g.rebalances++
	if g.members[g.leader] == nil {
		ids := make([]string, 0, len(g.members))
		for id := range g.members {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		g.leader = ids[0]
	}
	g.protocol = c.chooseProtocolLocked(g)
	g.state = stateCompletingRebalance
	for _, m := range g.members {
		m.assignment = nil
		r := c.joinResponseLocked(g, m, m.joinVersion)
		m.join <- r
		m.join = nil
		m.lastSeen = time.Now()
	}
	c.logger.Info("group rebalanced", "group", g.id, "generation", g.generation, "members", len(g.members), "protocol", g.protocol)
}

// chooseProtocolLocked picks the leader's most preferred protocol that
// every member supports.
func (c *Coordinator) chooseProtocolLocked(g *group) string {
	for _, p := range g.members[g.leader].protocols {
		all := true
		for _, m := range g.members {
			if !slices.ContainsFunc(m.protocols, func(q kmsg.JoinGroupRequestProtocol) bool { return q.Name == p.Name }) {
				all = false
				break
			}
		}
		if all {
			return p.Name
		}
	}
	return ""
}

func (c *Coordinator) joinResponseLocked(g *group, m *member, version int16) *kmsg.JoinGroupResponse {
	r := kmsg.NewPtrJoinGroupResponse()
	r.SetVersion(version)
	r.Generation, r.LeaderID, r.MemberID = g.generation, g.leader, m.id
	proto, ptype := g.protocol, g.protocolType
	r.Protocol, r.ProtocolType = &proto, &ptype
	if m.id == g.leader {
		for _, o := range g.members {
			jm := kmsg.NewJoinGroupResponseMember()
			jm.MemberID = o.id
			if o.instanceID != "" {
				iid := o.instanceID
				jm.InstanceID = &iid
			}
			for _, p := range o.protocols {
				if p.Name == g.protocol {
					jm.ProtocolMetadata = p.Metadata
				}
			}
			r.Members = append(r.Members, jm)
		}
	}
	return r
}

func (c *Coordinator) removeMemberLocked(g *group, id string) {
	m := g.members[id]
	if m == nil {
		return
	}
	c.failWaitersLocked(m, kerr.UnknownMemberID.Code)
	delete(g.members, id)
	if m.instanceID != "" && g.instances[m.instanceID] == id {
		delete(g.instances, m.instanceID)
	}
	if len(g.members) == 0 {
		g.state, g.protocol, g.leader = stateEmpty, "", ""
		c.recordGroupLocked(g)
	}
}

func (c *Coordinator) failWaitersLocked(m *member, code int16) {
	if m.join != nil {
		r := kmsg.NewPtrJoinGroupResponse()
		r.SetVersion(m.joinVersion)
		r.ErrorCode, r.Generation = code, -1
		m.join <- r
		m.join = nil
	}
	c.failSyncLocked(m, code)
}

func (c *Coordinator) failSyncLocked(m *member, code int16) {
	if m.sync != nil {
		r := kmsg.NewPtrSyncGroupResponse()
		r.ErrorCode = code
		m.sync <- r
		m.sync = nil
	}
}

// check validates a member and generation as every group request does.
func (c *Coordinator) checkLocked(g *group, memberID string, generation int32) int16 {
	if g == nil || g.members[memberID] == nil {
		return kerr.UnknownMemberID.Code
	}
	if generation != g.generation {
		return kerr.IllegalGeneration.Code
	}
	return 0
}

// SyncGroup takes the leader's assignment and hands each member its own.
func (c *Coordinator) SyncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) *kmsg.SyncGroupResponse {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	c.mu.Lock()
	g := c.groups[req.Group]
	if code := c.checkLocked(g, req.MemberID, req.Generation); code != 0 {
		c.mu.Unlock()
		resp.ErrorCode = code
		return resp
	}
	m := g.members[req.MemberID]
	m.lastSeen = time.Now()
	proto, ptype := g.protocol, g.protocolType
	resp.Protocol, resp.ProtocolType = &proto, &ptype
	switch g.state {
	case statePreparingRebalance:
		c.mu.Unlock()
		resp.ErrorCode = kerr.RebalanceInProgress.Code
		return resp
	case stateStable:
		resp.MemberAssignment = m.assignment
		c.mu.Unlock()
		return resp
	}
	if req.MemberID == g.leader {
		for _, a := range req.GroupAssignment {
			if om := g.members[a.MemberID]; om != nil {
				om.assignment = a.MemberAssignment
			}
		}
		g.state = stateStable
		c.recordGroupLocked(g)
		for _, om := range g.members {
			if om.sync != nil {
				r := kmsg.NewPtrSyncGroupResponse()
				r.SetVersion(req.Version)
				r.Protocol, r.ProtocolType = &proto, &ptype
				r.MemberAssignment = om.assignment
				om.sync <- r
				om.sync = nil
			}
		}
		resp.MemberAssignment = m.assignment
		c.mu.Unlock()
		return resp
	}
	m.sync = make(chan *kmsg.SyncGroupResponse, 1)
	wait := m.sync
	c.mu.Unlock()
	select {
	case r := <-wait:
		r.SetVersion(req.Version)
		return r
	case <-ctx.Done():
		resp.ErrorCode = kerr.RebalanceInProgress.Code
		return resp
	}
}

// Heartbeat keeps a member alive and tells it when to rejoin.
func (c *Coordinator) Heartbeat(req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[req.Group]
	if code := c.checkLocked(g, req.MemberID, req.Generation); code != 0 {
		resp.ErrorCode = code
		return resp
	}
	g.members[req.MemberID].lastSeen = time.Now()
	if g.state == statePreparingRebalance {
		resp.ErrorCode = kerr.RebalanceInProgress.Code
	}
	return resp
}

// LeaveGroup removes members and rebalances the rest.
func (c *Coordinator) LeaveGroup(req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[req.Group]
	leaving := req.Members
	if req.Version < 3 {
		leaving = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}
	removed := false
	for _, lm := range leaving {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID = lm.MemberID, lm.InstanceID
		id := lm.MemberID
		if lm.InstanceID != nil && g != nil {
			if mid, ok := g.instances[*lm.InstanceID]; ok && (id == "" || id == mid) {
				id = mid
			} else if id != "" && g.instances[*lm.InstanceID] != id {
				rm.ErrorCode = kerr.FencedInstanceID.Code
			}
		}
		if rm.ErrorCode == 0 && (g == nil || g.members[id] == nil) {
			rm.ErrorCode = kerr.UnknownMemberID.Code
		}
		if rm.ErrorCode == 0 {
			c.removeMemberLocked(g, id)
			removed = true
		}
		resp.Members = append(resp.Members, rm)
	}
	if req.Version < 3 && len(resp.Members) == 1 {
		resp.ErrorCode, resp.Members = resp.Members[0].ErrorCode, nil
	}
	if removed && len(g.members) > 0 && g.state != statePreparingRebalance {
		c.prepareRebalanceLocked(g)
	}
	return resp
}
