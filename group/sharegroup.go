package group

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Share groups (KIP-932): members heartbeat their subscription and get
// partitions to fetch from. Unlike a consumer group's, a share group's
// partitions may be fetched by several members at once (records, not
// partitions, are what members hold), so there is nothing to revoke:
// each member takes the group's new target assignment on its next
// heartbeat. The records themselves are the partition leader's business
// (package share). Membership is soft state on the controller, as for
// the other kinds of group.

// Kafka's group.share.session.timeout.ms and
// group.share.heartbeat.interval.ms defaults.
const (
	DefaultShareSessionTimeout    = 45 * time.Second
	DefaultShareHeartbeatInterval = 5 * time.Second
	shareAssignor                 = "simple"
)

type shareGroup struct {
	id              string
	epoch           int32
	assignmentEpoch int32
	members         map[string]*shareMember
	target          map[string]assignment // by member
	topics          string                // the subscribed topics' shape the target was computed from
}

type shareMember struct {
	id, rack, clientID, clientHost string
	epoch, prevEpoch               int32
	names                          []string
	assigned                       assignment
	lastSeen                       time.Time
}

// subscribed lists the topics m subscribes to, by name.
func (m *shareMember) subscribed(topics map[string]topicInfo) []topicInfo {
	var out []topicInfo
	for _, name := range m.names {
		if t, ok := topics[name]; ok {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b topicInfo) int { return strings.Compare(a.name, b.name) })
	return out
}

func (g *shareGroup) shape(topics map[string]topicInfo) string {
	var subs [][]topicInfo
	for _, m := range g.members {
		subs = append(subs, m.subscribed(topics))
	}
	return shapeOf(subs)
}

// computeTarget is the simple assignor: per topic, its partitions go
// round-robin over the members subscribed to it; when there are more
// members than partitions, each member gets one and a partition is
// shared by several, so every member has something to fetch.
func (g *shareGroup) computeTarget(topics map[string]topicInfo) {
	g.assignmentEpoch, g.topics = g.epoch, g.shape(topics)
	g.target = map[string]assignment{}
	ids := slices.Sorted(maps.Keys(g.members))
	byTopic := map[string][]string{}
	for _, id := range ids {
		g.target[id] = assignment{}
		for _, t := range g.members[id].subscribed(topics) {
			byTopic[t.name] = append(byTopic[t.name], id)
		}
	}
	for name, members := range byTopic {
		t := topics[name]
		n := int(t.partitions)
		if n == 0 {
			continue
		}
		if len(members) <= n {
			for p := range n {
				g.target[members[p%len(members)]].add(tp{t.id, int32(p)})
			}
			continue
		}
		for i, id := range members {
			g.target[id].add(tp{t.id, int32(i % n)})
		}
	}
}

func (g *shareGroup) state() string {
	if len(g.members) == 0 {
		return "Empty"
	}
	return "Stable"
}

// SetShareTimeouts sets share groups' session timeout and heartbeat
// interval (zero: Kafka's defaults).
func (c *Coordinator) SetShareTimeouts(session, heartbeat time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.shareSession, c.shareHeartbeat = DefaultShareSessionTimeout, DefaultShareHeartbeatInterval
	if session > 0 {
		c.shareSession = session
	}
	if heartbeat > 0 {
		c.shareHeartbeat = heartbeat
	}
}

// otherKindLocked reports whether id names a group of another kind with
// members: a group id is one kind at a time.
func (c *Coordinator) otherKindLocked(id string, kind string) bool {
	if g := c.groups[id]; kind != "classic" && g != nil && len(g.members) > 0 {
		return true
	}
	if g := c.consumers[id]; kind != "consumer" && g != nil && len(g.members) > 0 {
		return true
	}
	if g := c.shares[id]; kind != "share" && g != nil && len(g.members) > 0 {
		return true
	}
	return false
}

// ShareGroupHeartbeat serves KIP-932's heartbeat: join (epoch 0), leave
// (-1) or a member's heartbeat, which brings the member's assignment up
// to the group's.
func (c *Coordinator) ShareGroupHeartbeat(req *kmsg.ShareGroupHeartbeatRequest, clientID, clientHost string) *kmsg.ShareGroupHeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.ShareGroupHeartbeatResponse)
	fail := func(code int16, msg string) *kmsg.ShareGroupHeartbeatResponse {
		resp.ErrorCode = code
		if msg != "" {
			resp.ErrorMessage = &msg
		}
		return resp
	}
	switch {
	case req.GroupID == "":
		return fail(kerr.InvalidRequest.Code, "GroupId can't be empty.")
	case req.MemberID == "":
		return fail(kerr.InvalidRequest.Code, "MemberId can't be empty.")
	case req.MemberEpoch == 0 && req.SubscribedTopicNames == nil:
		return fail(kerr.InvalidRequest.Code, "SubscribedTopicNames must be set in first request.")
	case req.MemberEpoch < -1:
		return fail(kerr.InvalidRequest.Code, "MemberEpoch is invalid.")
	}
	topics := c.topicsNow()
	session, heartbeat := c.groupTimeouts(req.GroupID, "share")
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	resp.HeartbeatIntervalMillis = int32(c.noteTimeoutsLocked(req.GroupID, session, heartbeat, c.shareHeartbeat).Milliseconds())
	if c.otherKindLocked(req.GroupID, "share") {
		return fail(kerr.GroupIDNotFound.Code, "Group "+req.GroupID+" is not a share group.")
	}
	delete(c.groups, req.GroupID) // an empty group of another kind becomes a share group
	delete(c.consumers, req.GroupID)
	g := c.shares[req.GroupID]
	if g == nil {
		g = &shareGroup{id: req.GroupID, members: map[string]*shareMember{}, target: map[string]assignment{}}
		c.shares[req.GroupID] = g
	}
	m := g.members[req.MemberID]
	switch {
	case req.MemberEpoch == -1:
		if m == nil {
			return fail(kerr.UnknownMemberID.Code, "")
		}
		delete(g.members, m.id)
		g.epoch++
		g.computeTarget(topics)
		resp.MemberID, resp.MemberEpoch = &m.id, -1
		return resp
	case req.MemberEpoch == 0:
		if m == nil {
			m = &shareMember{id: req.MemberID, assigned: assignment{}}
			g.members[m.id] = m
			g.epoch++ // a member joined
		}
	case m == nil:
		return fail(kerr.UnknownMemberID.Code, "")
	case req.MemberEpoch > m.epoch || req.MemberEpoch < m.epoch && req.MemberEpoch != m.prevEpoch:
		return fail(kerr.FencedMemberEpoch.Code, "")
	}
	m.lastSeen, m.clientID, m.clientHost = now, clientID, clientHost
	if req.RackID != nil {
		m.rack = *req.RackID
	}
	if req.SubscribedTopicNames != nil {
		names := slices.Sorted(slices.Values(req.SubscribedTopicNames))
		if !slices.Equal(names, m.names) {
			m.names = names
			g.epoch++
		}
	}
	if g.epoch != g.assignmentEpoch || g.shape(topics) != g.topics {
		if g.epoch == g.assignmentEpoch {
			g.epoch++ // a subscribed topic appeared, went or grew
		}
		g.computeTarget(topics)
	}
	changed := req.MemberEpoch == 0
	if m.epoch != g.assignmentEpoch {
		target := g.target[m.id]
		if target == nil {
			target = assignment{}
		}
		changed = changed || !m.assigned.equal(target)
		m.assigned = target.clone()
		m.prevEpoch, m.epoch = m.epoch, g.assignmentEpoch
	}
	resp.MemberID, resp.MemberEpoch = &m.id, m.epoch
	if changed {
		a := kmsg.NewShareGroupHeartbeatResponseAssignment()
		for _, id := range sortedIDs(m.assigned) {
			tp := kmsg.NewShareGroupHeartbeatResponseAssignmentTopicPartition()
			tp.TopicID, tp.Partitions = id, slices.Clone(m.assigned[id])
			a.TopicPartitions = append(a.TopicPartitions, tp)
		}
		resp.Assignment = &a
	}
	return resp
}

// expireSharesLocked removes share group members whose session ran out.
func (c *Coordinator) expireSharesLocked(g *shareGroup, now time.Time, topics func() map[string]topicInfo) {
	for id, m := range g.members {
		if now.Sub(m.lastSeen) > c.sessionLocked(g.id, c.shareSession) {
			c.logger.Info("share group member session expired", "group", g.id, "member", id)
			delete(g.members, id)
			g.epoch++
			g.computeTarget(topics())
		}
	}
}

// ShareGroupDescribe describes share groups.
func (c *Coordinator) ShareGroupDescribe(req *kmsg.ShareGroupDescribeRequest) *kmsg.ShareGroupDescribeResponse {
	resp := req.ResponseKind().(*kmsg.ShareGroupDescribeResponse)
	names := map[[16]byte]string{}
	for _, t := range c.topicsNow() {
		names[t.id] = t.name
	}
	// A share group with state but no members (the coordinator moved
	// since it had any) is an empty share group.
	durable := map[string]bool{}
	for _, id := range req.GroupIDs {
		if ss, err := c.shareStates(id); err == nil && len(ss) > 0 {
			durable[id] = true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range req.GroupIDs {
		rg := kmsg.NewShareGroupDescribeResponseGroup()
		rg.GroupID = id
		g := c.shares[id]
		if g == nil && durable[id] && !c.otherKindLocked(id, "share") {
			g = &shareGroup{id: id, members: map[string]*shareMember{}}
			c.shares[id] = g
		}
		switch {
		case g == nil && c.otherKindLocked(id, "share"):
			rg.ErrorCode = kerr.GroupIDNotFound.Code
			msg := "Group " + id + " is not a share group."
			rg.ErrorMessage = &msg
		case g == nil:
			rg.ErrorCode = kerr.GroupIDNotFound.Code
		default:
			rg.GroupState, rg.GroupEpoch, rg.AssignmentEpoch, rg.Assignor = g.state(), g.epoch, g.assignmentEpoch, shareAssignor
			for _, mid := range slices.Sorted(maps.Keys(g.members)) {
				m := g.members[mid]
				rm := kmsg.NewShareGroupDescribeResponseGroupMember()
				rm.MemberID, rm.MemberEpoch, rm.ClientID, rm.ClientHost = m.id, m.epoch, m.clientID, m.clientHost
				if m.rack != "" {
					rm.RackID = &m.rack
				}
				rm.SubscribedTopicNames = slices.Clone(m.names)
				for _, tid := range sortedIDs(m.assigned) {
					t := kmsg.NewShareGroupDescribeResponseGroupMemberAssignmentTopicPartition()
					t.TopicID, t.Topic, t.Partitions = tid, names[tid], slices.Clone(m.assigned[tid])
					rm.Assignment.TopicPartitions = append(rm.Assignment.TopicPartitions, t)
				}
				rg.Members = append(rg.Members, rm)
			}
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}
