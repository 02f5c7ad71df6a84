package group

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/meta"
)

// KIP-848 consumer groups ("consumer" protocol): members heartbeat their
// subscription and the partitions they own; the coordinator computes a
// target assignment with a server-side assignor each time the group
// epoch moves (a member joins, leaves or changes its subscription, or a
// subscribed topic changes), and reconciles each member towards its
// target: partitions it must give up are revoked first (its epoch stays
// until it stops reporting them), and a partition is handed to a member
// only once no other member holds it. No partition is ever owned by two
// members at once.

// Kafka's group.consumer.session.timeout.ms and
// group.consumer.heartbeat.interval.ms defaults.
const (
	DefaultConsumerSessionTimeout    = 45 * time.Second
	DefaultConsumerHeartbeatInterval = 5 * time.Second
	defaultServerAssignor            = "uniform"
)

// SetConsumerTimeouts sets the consumer protocol's session timeout and
// heartbeat interval (zero: Kafka's defaults).
func (c *Coordinator) SetConsumerTimeouts(session, heartbeat time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.consumerSession, c.consumerHeartbeat = DefaultConsumerSessionTimeout, DefaultConsumerHeartbeatInterval
	if session > 0 {
		c.consumerSession = session
	}
	if heartbeat > 0 {
		c.consumerHeartbeat = heartbeat
	}
}

type tp struct {
	id [16]byte
	p  int32
}

// assignment is partitions by topic id.
type assignment map[[16]byte][]int32

func (a assignment) has(t tp) bool { return slices.Contains(a[t.id], t.p) }

func (a assignment) add(t tp) {
	if !a.has(t) {
		a[t.id] = append(a[t.id], t.p)
		slices.Sort(a[t.id])
	}
}

func (a assignment) each(fn func(tp)) {
	for id, ps := range a {
		for _, p := range ps {
			fn(tp{id, p})
		}
	}
}

func (a assignment) len() int {
	n := 0
	for _, ps := range a {
		n += len(ps)
	}
	return n
}

func (a assignment) clone() assignment {
	out := assignment{}
	for id, ps := range a {
		if len(ps) > 0 {
			out[id] = slices.Clone(ps)
		}
	}
	return out
}

func (a assignment) equal(b assignment) bool {
	return a.len() == b.len() && maps.EqualFunc(a.clone(), b.clone(), slices.Equal)
}

func (a assignment) kmsg() []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic {
	out := []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic{}
	for _, id := range sortedIDs(a) {
		t := kmsg.NewConsumerGroupHeartbeatResponseAssignmentTopic()
		t.TopicID, t.Partitions = id, slices.Clone(a[id])
		out = append(out, t)
	}
	return out
}

func sortedIDs(a assignment) [][16]byte {
	var ids [][16]byte
	for id, ps := range a {
		if len(ps) > 0 {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(x, y [16]byte) int { return strings.Compare(string(x[:]), string(y[:])) })
	return ids
}

// consumerGroup is a group on the consumer protocol.
type consumerGroup struct {
	id              string
	epoch           int32 // the group epoch
	assignmentEpoch int32 // the epoch the target assignment was computed at
	assignor        string
	members         map[string]*consumerMember
	instances       map[string]string // group.instance.id -> member id
	owners          map[tp]string     // each partition held (assigned or being revoked) by its member
	topics          string            // the subscribed topics' shape the target was computed from
	lastChange      time.Time
}

type consumerMember struct {
	id, instanceID, rack, clientID, clientHost string
	epoch, prevEpoch                           int32
	names                                      []string
	regex                                      *regexp.Regexp
	regexSrc                                   string
	assignor                                   string
	rebalanceTimeout                           time.Duration
	target, assigned, revoking                 assignment
	lastSeen, revokeBy                         time.Time
	left                                       bool // left as a static member: holds its partitions until replaced or expired
}

func (c *Coordinator) consumerGroupLocked(id string) *consumerGroup {
	g := c.consumers[id]
	if g == nil {
		g = &consumerGroup{id: id, members: map[string]*consumerMember{}, instances: map[string]string{},
			owners: map[tp]string{}, assignor: defaultServerAssignor}
		c.consumers[id] = g
	}
	return g
}

// topicInfo is what the assignors know of a topic.
type topicInfo struct {
	name       string
	id         [16]byte
	partitions int32
}

// topicsNow reads the topics from the metadata state.
func (c *Coordinator) topicsNow() map[string]topicInfo {
	if c.topicSource != nil {
		return c.topicSource()
	}
	out := map[string]topicInfo{}
	vs, ok := c.store.(interface{ View() *meta.View })
	if !ok {
		return out
	}
	v := vs.View()
	defer v.Close()
	ts, err := v.Topics()
	if err != nil {
		return out
	}
	for _, t := range ts {
		out[t.Name] = topicInfo{t.Name, t.ID, t.Partitions}
	}
	// The internal offsets topic too: Kafka's broker-side regex does not
	// skip internal topics.
	out[meta.OffsetsTopic] = topicInfo{meta.OffsetsTopic, meta.OffsetsTopicID, meta.OffsetsTopicPartitions}
	return out
}

// subscribed lists the topics m subscribes to, by name.
func (m *consumerMember) subscribed(topics map[string]topicInfo) []topicInfo {
	var out []topicInfo
	for name, t := range topics {
		if slices.Contains(m.names, name) || m.regex != nil && m.regex.MatchString(name) {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b topicInfo) int { return strings.Compare(a.name, b.name) })
	return out
}

// shape fingerprints the subscribed topics, so that a topic created,
// deleted or grown moves the group epoch.
func (g *consumerGroup) shape(topics map[string]topicInfo) string {
	var subs [][]topicInfo
	for _, m := range g.members {
		subs = append(subs, m.subscribed(topics))
	}
	return shapeOf(subs)
}

// shapeOf fingerprints the topics members subscribe to: names, ids and
// partition counts.
func shapeOf(subs [][]topicInfo) string {
	seen := map[string]topicInfo{}
	for _, ts := range subs {
		for _, t := range ts {
			seen[t.name] = t
		}
	}
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(seen)) {
		t := seen[name]
		fmt.Fprintf(&b, "%s/%x/%d;", name, t.id, t.partitions)
	}
	return b.String()
}

// computeTarget runs the group's assignor over its members'
// subscriptions, keeping each partition where it is when it may stay.
func (g *consumerGroup) computeTarget(topics map[string]topicInfo) {
	g.assignmentEpoch = g.epoch
	g.topics = g.shape(topics)
	ids := slices.Sorted(maps.Keys(g.members))
	subs := map[string]map[[16]byte]bool{}
	var all []tp
	seen := map[[16]byte]bool{}
	byID := map[[16]byte]topicInfo{}
	for _, id := range ids {
		m := g.members[id]
		subs[id] = map[[16]byte]bool{}
		for _, t := range m.subscribed(topics) {
			subs[id][t.id] = true
			byID[t.id] = t
			if !seen[t.id] {
				seen[t.id] = true
				for p := range t.partitions {
					all = append(all, tp{t.id, p})
				}
			}
		}
	}
	sort.Slice(all, func(i, j int) bool {
		a, b := byID[all[i].id], byID[all[j].id]
		if a.name != b.name {
			return a.name < b.name
		}
		return all[i].p < all[j].p
	})
	old := map[tp]string{}
	for _, id := range ids {
		g.members[id].target.each(func(t tp) { old[t] = id })
		g.members[id].target = assignment{}
	}
	if g.assignor == "range" {
		assignRange(g, all, ids, subs, byID)
	} else {
		assignUniform(g, all, ids, subs, old)
	}
}

// assignUniform spreads partitions evenly over the members subscribed to
// them, leaving each where it was while its member is under quota.
func assignUniform(g *consumerGroup, all []tp, ids []string, subs map[string]map[[16]byte]bool, old map[tp]string) {
	eligible := 0
	for _, id := range ids {
		if len(subs[id]) > 0 {
			eligible++
		}
	}
	if eligible == 0 {
		return
	}
	quota := (len(all) + eligible - 1) / eligible
	count := map[string]int{}
	var rest []tp
	for _, t := range all {
		if id, ok := old[t]; ok && g.members[id] != nil && subs[id][t.id] && count[id] < quota {
			g.members[id].target.add(t)
			count[id]++
			continue
		}
		rest = append(rest, t)
	}
	for _, t := range rest {
		best := ""
		for _, id := range ids {
			if subs[id][t.id] && (best == "" || count[id] < count[best]) {
				best = id
			}
		}
		if best != "" {
			g.members[best].target.add(t)
			count[best]++
		}
	}
}

// assignRange gives each member subscribed to a topic a contiguous range
// of its partitions, the first members one more when they do not divide.
func assignRange(g *consumerGroup, all []tp, ids []string, subs map[string]map[[16]byte]bool, byID map[[16]byte]topicInfo) {
	for tid, t := range byID {
		var members []string
		for _, id := range ids {
			if subs[id][tid] {
				members = append(members, id)
			}
		}
		if len(members) == 0 {
			continue
		}
		n := int(t.partitions)
		per, extra := n/len(members), n%len(members)
		next := 0
		for _, id := range members {
			q := per
			if extra > 0 {
				q, extra = q+1, extra-1
			}
			for p := next; p < next+q; p++ {
				g.members[id].target.add(tp{tid, int32(p)})
			}
			next += q
		}
	}
}

// owns reports whether the owned partitions a member reported (nil: it
// did not say) still include any of revoking.
func owns(revoking assignment, owned []kmsg.ConsumerGroupHeartbeatRequestTopic, reported bool) bool {
	if revoking.len() == 0 {
		return false
	}
	if !reported {
		return true
	}
	for _, t := range owned {
		for _, p := range t.Partitions {
			if revoking.has(tp{t.TopicID, p}) {
				return true
			}
		}
	}
	return false
}

// reconcile moves m towards its target: revocations first, and new
// partitions only once nobody else holds them. It reports whether m's
// assignment changed.
func (g *consumerGroup) reconcile(m *consumerMember, owned []kmsg.ConsumerGroupHeartbeatRequestTopic, reported bool, now time.Time) bool {
	before, beforeRevoking := m.assigned.clone(), m.revoking.clone()
	// Revocations the member has confirmed release their partitions.
	if reported {
		still := assignment{}
		for _, t := range owned {
			for _, p := range t.Partitions {
				still.add(tp{t.TopicID, p})
			}
		}
		m.revoking.each(func(t tp) {
			if !still.has(t) {
				g.release(m, t)
			}
		})
		next := assignment{}
		m.revoking.each(func(t tp) {
			if still.has(t) {
				next.add(t)
			}
		})
		m.revoking = next
	}
	keep, add := assignment{}, assignment{}
	m.assigned.each(func(t tp) {
		if m.target.has(t) {
			keep.add(t)
		} else {
			m.revoking.add(t)
		}
	})
	m.target.each(func(t tp) {
		if o, held := g.owners[t]; !keep.has(t) && (!held || o == m.id) {
			add.add(t) // one another member still holds waits for it
		}
	})
	switch {
	case owns(m.revoking, owned, reported):
		// Give up first; the epoch stays until the member has.
		m.assigned = keep
		if m.revokeBy.IsZero() {
			m.revokeBy = now.Add(m.rebalanceTimeout)
		}
	default:
		m.revoking.each(func(t tp) { g.release(m, t) })
		m.revoking, m.revokeBy = assignment{}, time.Time{}
		add.each(func(t tp) {
			keep.add(t)
			g.owners[t] = m.id
		})
		m.assigned = keep
		if m.epoch != g.assignmentEpoch {
			m.prevEpoch, m.epoch = m.epoch, g.assignmentEpoch
		}
	}
	return !before.equal(m.assigned) || !beforeRevoking.equal(m.revoking)
}

// release frees a partition m held.
func (g *consumerGroup) release(m *consumerMember, t tp) {
	if g.owners[t] == m.id {
		delete(g.owners, t)
	}
}

// removeMember drops m and frees its partitions; the group epoch moves.
func (g *consumerGroup) removeMember(m *consumerMember, topics map[string]topicInfo) {
	m.assigned.each(func(t tp) { g.release(m, t) })
	m.revoking.each(func(t tp) { g.release(m, t) })
	delete(g.members, m.id)
	if m.instanceID != "" && g.instances[m.instanceID] == m.id {
		delete(g.instances, m.instanceID)
	}
	g.epoch++
	g.computeTarget(topics)
	g.lastChange = time.Now()
}

func (g *consumerGroup) state() string {
	if len(g.members) == 0 {
		return "Empty"
	}
	if g.assignmentEpoch < g.epoch {
		return "Assigning"
	}
	for _, m := range g.members {
		if m.epoch != g.assignmentEpoch || m.revoking.len() > 0 || !m.assigned.equal(m.target) {
			return "Reconciling"
		}
	}
	return "Stable"
}

func newConsumerMemberID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ConsumerGroupHeartbeat serves KIP-848's heartbeat: join (epoch 0),
// leave (-1), static leave (-2) or a member's heartbeat.
func (c *Coordinator) ConsumerGroupHeartbeat(req *kmsg.ConsumerGroupHeartbeatRequest, clientID, clientHost string) *kmsg.ConsumerGroupHeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
	fail := func(code int16, msg string) *kmsg.ConsumerGroupHeartbeatResponse {
		resp.ErrorCode = code
		if msg != "" {
			resp.ErrorMessage = &msg
		}
		return resp
	}
	if req.Group == "" {
		return fail(kerr.InvalidGroupID.Code, "")
	}
	if req.ServerAssignor != nil && *req.ServerAssignor != "uniform" && *req.ServerAssignor != "range" {
		return fail(kerr.UnsupportedAssignor.Code, "server assignors are uniform and range")
	}
	var re *regexp.Regexp
	if req.SubscribedTopicRegex != nil && *req.SubscribedTopicRegex != "" {
		var err error
		if re, err = regexp.Compile("^(?:" + *req.SubscribedTopicRegex + ")$"); err != nil {
			return fail(kerr.InvalidRegularExpression.Code, err.Error())
		}
	}
	topics := c.topicsNow()
	session, heartbeat := c.groupTimeouts(req.Group, "consumer")
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	resp.HeartbeatIntervalMillis = int32(c.noteTimeoutsLocked(req.Group, session, heartbeat, c.consumerHeartbeat).Milliseconds())
	if c.otherKindLocked(req.Group, "consumer") {
		return fail(kerr.GroupIDNotFound.Code, "Group "+req.Group+" is not a consumer group.")
	}
	delete(c.groups, req.Group) // an empty group of another kind becomes a consumer group
	delete(c.shares, req.Group)
	g := c.consumerGroupLocked(req.Group)
	instance := ""
	if req.InstanceID != nil {
		instance = *req.InstanceID
	}
	switch req.MemberEpoch {
	case 0:
		return c.consumerJoinLocked(g, req, resp, re, instance, clientID, clientHost, topics, now)
	case -1, -2:
		m := g.members[req.MemberID]
		if m == nil {
			return fail(kerr.UnknownMemberID.Code, "")
		}
		resp.MemberID, resp.MemberEpoch = &m.id, req.MemberEpoch
		if req.MemberEpoch == -2 && m.instanceID != "" {
			// A static member leaving for a restart keeps its
			// partitions until it comes back or its session ends.
			m.left, m.lastSeen = true, now
			return resp
		}
		g.removeMember(m, topics)
		return resp
	}
	m := g.members[req.MemberID]
	if m == nil || m.left {
		if o, ok := g.instances[instance]; ok && instance != "" && o != req.MemberID {
			return fail(kerr.FencedInstanceID.Code, "")
		}
		return fail(kerr.UnknownMemberID.Code, "")
	}
	reported := req.Topics != nil
	if req.MemberEpoch != m.epoch {
		ok := req.MemberEpoch == m.prevEpoch && reported
		if ok {
			for _, t := range req.Topics {
				for _, p := range t.Partitions {
					ok = ok && (m.assigned.has(tp{t.TopicID, p}) || m.revoking.has(tp{t.TopicID, p}))
				}
			}
		}
		if !ok {
			return fail(kerr.FencedMemberEpoch.Code, "")
		}
	}
	m.lastSeen = now
	if req.RebalanceTimeoutMillis > 0 {
		m.rebalanceTimeout = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	}
	changed := c.updateSubscriptionLocked(g, m, req, re)
	if changed || g.shape(topics) != g.topics {
		g.epoch++
		g.computeTarget(topics)
	}
	full := req.RebalanceTimeoutMillis != -1 && (req.SubscribedTopicNames != nil || req.SubscribedTopicRegex != nil) && reported
	moved := g.reconcile(m, req.Topics, reported, now)
	resp.MemberID, resp.MemberEpoch = &m.id, m.epoch
	if full || moved {
		a := kmsg.NewConsumerGroupHeartbeatResponseAssignment()
		a.Topics = m.assigned.kmsg()
		resp.Assignment = &a
	}
	return resp
}

// updateSubscriptionLocked takes a heartbeat's subscription and assignor;
// it reports whether they changed.
func (c *Coordinator) updateSubscriptionLocked(g *consumerGroup, m *consumerMember, req *kmsg.ConsumerGroupHeartbeatRequest, re *regexp.Regexp) bool {
	changed := false
	if req.SubscribedTopicNames != nil {
		names := slices.Sorted(slices.Values(req.SubscribedTopicNames))
		if !slices.Equal(names, m.names) {
			m.names, changed = names, true
		}
	}
	if req.SubscribedTopicRegex != nil && *req.SubscribedTopicRegex != m.regexSrc {
		m.regex, m.regexSrc, changed = re, *req.SubscribedTopicRegex, true
	}
	if req.ServerAssignor != nil && *req.ServerAssignor != m.assignor {
		m.assignor, changed = *req.ServerAssignor, true
		g.assignor = m.assignor
	}
	return changed
}

func (c *Coordinator) consumerJoinLocked(g *consumerGroup, req *kmsg.ConsumerGroupHeartbeatRequest, resp *kmsg.ConsumerGroupHeartbeatResponse,
	re *regexp.Regexp, instance, clientID, clientHost string, topics map[string]topicInfo, now time.Time) *kmsg.ConsumerGroupHeartbeatResponse {
	if req.Topics == nil || len(req.Topics) > 0 {
		resp.ErrorCode = kerr.InvalidRequest.Code
		msg := "TopicPartitions must be empty when (re-)joining."
		resp.ErrorMessage = &msg
		return resp
	}
	id := req.MemberID
	if id == "" {
		id = newConsumerMemberID()
	}
	m := g.members[id]
	var inherit *consumerMember
	if instance != "" {
		if oid, ok := g.instances[instance]; ok && oid != id {
			old := g.members[oid]
			if old != nil && !old.left {
				resp.ErrorCode = kerr.UnreleasedInstanceID.Code
				return resp
			}
			if old != nil { // a static member back within its session: it keeps its partitions
				inherit = old
				delete(g.members, oid)
			}
		}
		g.instances[instance] = id
	}
	if m != nil && m.left {
		inherit, m = m, nil
	}
	fresh := m == nil
	if fresh {
		m = &consumerMember{id: id, instanceID: instance, target: assignment{}, assigned: assignment{}, revoking: assignment{},
			assignor: g.assignor, rebalanceTimeout: 60 * time.Second}
		if inherit != nil {
			m.names, m.regex, m.regexSrc, m.assignor = inherit.names, inherit.regex, inherit.regexSrc, inherit.assignor
			m.target, m.assigned = inherit.target, inherit.assigned
			m.assigned.each(func(t tp) { g.owners[t] = id })
			inherit.revoking.each(func(t tp) { g.release(inherit, t) })
		}
		g.members[id] = m
	}
	m.clientID, m.clientHost, m.lastSeen = clientID, clientHost, now
	if req.RackID != nil {
		m.rack = *req.RackID
	}
	if req.RebalanceTimeoutMillis > 0 {
		m.rebalanceTimeout = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	}
	changed := c.updateSubscriptionLocked(g, m, req, re)
	if inherit == nil && fresh || changed || g.shape(topics) != g.topics {
		g.epoch++
		g.computeTarget(topics)
	}
	g.lastChange = now
	g.reconcile(m, nil, true, now)
	resp.MemberID, resp.MemberEpoch = &m.id, m.epoch
	a := kmsg.NewConsumerGroupHeartbeatResponseAssignment()
	a.Topics = m.assigned.kmsg()
	resp.Assignment = &a
	return resp
}

// expireConsumersLocked fences members whose session ran out, or that
// kept partitions past their rebalance timeout.
func (c *Coordinator) expireConsumersLocked(g *consumerGroup, now time.Time, topics func() map[string]topicInfo) {
	for _, m := range g.members {
		late := now.Sub(m.lastSeen) > c.sessionLocked(g.id, c.consumerSession)
		stuck := !m.revokeBy.IsZero() && now.After(m.revokeBy)
		if late || stuck {
			c.logger.Info("consumer group member fenced", "group", g.id, "member", m.id, "session_expired", late, "revocation_timed_out", stuck)
			g.removeMember(m, topics())
		}
	}
}

// checkConsumerLocked validates a member and epoch for an offset commit:
// an epoch behind the member's is stale, one ahead fenced.
func checkConsumerLocked(g *consumerGroup, memberID string, epoch int32) int16 {
	m := g.members[memberID]
	switch {
	case m == nil || m.left:
		return kerr.UnknownMemberID.Code
	case epoch > m.epoch:
		return kerr.FencedMemberEpoch.Code
	case epoch < m.epoch && epoch != m.prevEpoch:
		return kerr.StaleMemberEpoch.Code
	}
	return 0
}

// ConsumerGroupDescribe describes consumer-protocol groups.
func (c *Coordinator) ConsumerGroupDescribe(req *kmsg.ConsumerGroupDescribeRequest) *kmsg.ConsumerGroupDescribeResponse {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
	topics := c.topicsNow()
	names := map[[16]byte]string{}
	for _, t := range topics {
		names[t.id] = t.name
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range req.Groups {
		rg := kmsg.NewConsumerGroupDescribeResponseGroup()
		rg.Group = id
		g := c.consumers[id]
		switch {
		case g == nil && c.groups[id] != nil:
			rg.ErrorCode = kerr.GroupIDNotFound.Code
			msg := "the group uses the classic protocol"
			rg.ErrorMessage = &msg
		case g == nil:
			rg.ErrorCode = kerr.GroupIDNotFound.Code
		default:
			rg.State, rg.Epoch, rg.AssignmentEpoch, rg.AssignorName = g.state(), g.epoch, g.assignmentEpoch, g.assignor
			for _, mid := range slices.Sorted(maps.Keys(g.members)) {
				m := g.members[mid]
				rm := kmsg.NewConsumerGroupDescribeResponseGroupMember()
				rm.MemberID, rm.MemberEpoch, rm.ClientID, rm.ClientHost = m.id, m.epoch, m.clientID, m.clientHost
				rm.MemberType = 1 // consumer
				if m.left {
					rm.MemberEpoch = -2
				}
				if m.instanceID != "" {
					rm.InstanceID = &m.instanceID
				}
				if m.rack != "" {
					rm.RackID = &m.rack
				}
				rm.SubscribedTopics = slices.Clone(m.names)
				if m.regexSrc != "" {
					rm.SubscribedTopicRegex = &m.regexSrc
				}
				rm.Assignment.TopicPartitions = describeAssignment(m.assigned, names)
				rm.TargetAssignment.TopicPartitions = describeAssignment(m.target, names)
				rg.Members = append(rg.Members, rm)
			}
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

func describeAssignment(a assignment, names map[[16]byte]string) []kmsg.AssignmentTopicPartition {
	out := []kmsg.AssignmentTopicPartition{}
	for _, id := range sortedIDs(a) {
		t := kmsg.AssignmentTopicPartition{}
		t.TopicID, t.Topic, t.Partitions = id, names[id], slices.Clone(a[id])
		out = append(out, t)
	}
	return out
}

// describeClassic describes a consumer-protocol group in DescribeGroups'
// shape, as Kafka does: protocol type "consumer", the assignor as the
// protocol, and each member's subscription and current assignment in the
// classic consumer protocol's encoding, so that lag tools built on
// DescribeGroups see its members.
func (g *consumerGroup) describeClassic(names map[[16]byte]string) kmsg.DescribeGroupsResponseGroup {
	dg := kmsg.NewDescribeGroupsResponseGroup()
	dg.Group, dg.State, dg.ProtocolType, dg.Protocol = g.id, g.state(), "consumer", g.assignor
	for _, id := range slices.Sorted(maps.Keys(g.members)) {
		m := g.members[id]
		dm := kmsg.NewDescribeGroupsResponseGroupMember()
		dm.MemberID, dm.ClientID, dm.ClientHost = m.id, m.clientID, m.clientHost
		if m.instanceID != "" {
			iid := m.instanceID
			dm.InstanceID = &iid
		}
		md := kmsg.NewConsumerMemberMetadata()
		md.Version, md.Topics = 0, slices.Clone(m.names)
		dm.ProtocolMetadata = md.AppendTo(nil)
		a := kmsg.NewConsumerMemberAssignment()
		a.Version = 0
		for _, tid := range sortedIDs(m.assigned) {
			t := kmsg.NewConsumerMemberAssignmentTopic()
			t.Topic, t.Partitions = names[tid], slices.Clone(m.assigned[tid])
			a.Topics = append(a.Topics, t)
		}
		dm.MemberAssignment = a.AppendTo(nil)
		dg.Members = append(dg.Members, dm)
	}
	return dg
}
