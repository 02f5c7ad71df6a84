package gateway

import (
	"context"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/meta"
)

// Share groups (KIP-932) on the wire. The gateway keeps each member's
// share sessions, as a Kafka broker does: per (listener, group, member),
// the set of partitions the member fetches and the epoch its next request
// must carry. A connection that closes takes its sessions with it, and
// the records its members hold go back to the group. Each request's
// partitions go to their leader nodes (node/share.go), which hold the
// share-partitions' state.

type shareTP struct {
	id        [16]byte
	partition int32
}

type shareSessionKey struct{ listener, group, member string }

type shareSession struct {
	epoch int32            // the epoch the next request must carry
	parts map[shareTP]bool // the session's partitions: true while the next answer must name it
	owner *session
}

type shareSessions struct {
	mu     sync.Mutex
	m      map[shareSessionKey]*shareSession
	byConn map[*session]map[shareSessionKey]bool
}

// maxMemberID is the longest member id Kafka accepts in share requests.
const maxMemberID = 36

// maxShareSessions bounds a gateway's share sessions (Kafka's
// group.share.max.share.sessions, 2,000 per broker, for the brokers a
// gateway stands for): a new one past it gets SHARE_SESSION_LIMIT_REACHED,
// retriable, while members' sessions close.
var maxShareSessions = 20_000

func nextEpoch(e int32) int32 {
	if e == math.MaxInt32 {
		return 1
	}
	return e + 1
}

// openShareSession starts (epoch 0) a session, replacing one the member
// had on this listener; past maxShareSessions it refuses.
func (g *Gateway) openShareSession(key shareSessionKey, owner *session, parts []shareTP) int16 {
	s := &shareSession{epoch: 1, parts: map[shareTP]bool{}, owner: owner}
	for _, tp := range parts {
		s.parts[tp] = true
	}
	g.shares.mu.Lock()
	defer g.shares.mu.Unlock()
	if g.shares.m == nil {
		g.shares.m = map[shareSessionKey]*shareSession{}
		g.shares.byConn = map[*session]map[shareSessionKey]bool{}
	}
	old := g.shares.m[key]
	if old == nil && len(g.shares.m) >= maxShareSessions {
		return kerr.ShareSessionLimitReached.Code
	}
	if old != nil && old.owner != owner {
		delete(g.shares.byConn[old.owner], key)
	}
	g.shares.m[key] = s
	if g.shares.byConn[owner] == nil {
		g.shares.byConn[owner] = map[shareSessionKey]bool{}
	}
	g.shares.byConn[owner][key] = true
	return 0
}

// useShareSession checks an incremental request's epoch against its
// session (-1 closes it) and applies its changes: it returns the
// session's partitions (and whether each must be answered), or a
// top-level error code.
func (g *Gateway) useShareSession(key shareSessionKey, epoch int32, add []shareTP, forget []shareTP) (map[shareTP]bool, int16) {
	g.shares.mu.Lock()
	defer g.shares.mu.Unlock()
	s := g.shares.m[key]
	switch {
	case s == nil:
		return nil, kerr.ShareSessionNotFound.Code
	case epoch == -1:
		delete(g.shares.m, key)
		delete(g.shares.byConn[s.owner], key)
		return s.parts, 0
	case epoch != s.epoch:
		return nil, kerr.InvalidShareSessionEpoch.Code
	}
	s.epoch = nextEpoch(s.epoch)
	for _, tp := range add {
		if _, ok := s.parts[tp]; !ok {
			s.parts[tp] = true
		}
	}
	for _, tp := range forget {
		delete(s.parts, tp)
	}
	out := make(map[shareTP]bool, len(s.parts))
	for tp, v := range s.parts {
		out[tp] = v
	}
	return out, 0
}

// answeredShareSession records which partitions must be named in the
// session's next answer: those that failed in this one.
func (g *Gateway) answeredShareSession(key shareSessionKey, failed map[shareTP]bool) {
	g.shares.mu.Lock()
	defer g.shares.mu.Unlock()
	if s := g.shares.m[key]; s != nil {
		for tp := range s.parts {
			s.parts[tp] = failed[tp]
		}
	}
}

// closeShareSessions ends the share sessions of a connection that
// closed: what their members hold goes back to their groups.
func (g *Gateway) closeShareSessions(owner *session) {
	g.shares.mu.Lock()
	var closed []shareSessionKey
	var parts [][]shareTP
	for key := range g.shares.byConn[owner] {
		if s := g.shares.m[key]; s != nil && s.owner == owner {
			delete(g.shares.m, key)
			closed = append(closed, key)
			var ps []shareTP
			for tp := range s.parts {
				ps = append(ps, tp)
			}
			parts = append(parts, ps)
		}
	}
	delete(g.shares.byConn, owner)
	g.shares.mu.Unlock()
	if len(closed) == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(g.base, 10*time.Second)
		defer cancel()
		for i, key := range closed {
			g.releaseShare(ctx, key.group, key.member, parts[i])
		}
	}()
}

// releaseShare asks the leaders of parts to give back what member holds
// there.
func (g *Gateway) releaseShare(ctx context.Context, group, member string, parts []shareTP) {
	req := kmsg.NewPtrShareFetchRequest()
	req.SetVersion(2)
	req.GroupID, req.MemberID, req.ShareSessionEpoch = &group, &member, -1
	g.shareRound(ctx, req, false, parts, nil, 0, 0, func(int, *kmsg.ShareFetchResponseTopicPartition, bool) {})
}

// shareRefs resolves partitions to their topics' names; those unknown or
// not readable get their error through fail.
func (g *Gateway) shareRefs(ctx context.Context, parts []shareTP, fail func(i int, code int16)) []partRef {
	ids := make([][16]byte, len(parts))
	for i, tp := range parts {
		ids[i] = tp.id
	}
	names := g.topicNames(ctx, ids)
	var refs []partRef
	for i, tp := range parts {
		name, ok := names[tp.id]
		switch {
		case !ok:
			fail(i, kerr.UnknownTopicID.Code)
		case !g.allowed(ctx, opRead, rtTopic, name):
			fail(i, kerr.TopicAuthorizationFailed.Code)
		default:
			refs = append(refs, partRef{name, tp.partition, slot{i, 0}})
		}
	}
	return refs
}

// shareRound sends base, with each leader's partitions of parts (and
// their acknowledgements, acks[i] for parts[i]), to the leaders, each
// waiting up to wait and acquiring up to maxRecords split among them; with
// ackOnly, as a ShareAcknowledge. set gets each partition's answer (first:
// the round carried its acknowledgements). It returns the group's lock
// duration as the leaders gave it (0: none answered).
func (g *Gateway) shareRound(ctx context.Context, base *kmsg.ShareFetchRequest, ackOnly bool, parts []shareTP, acks [][]kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch,
	wait time.Duration, maxRecords int32, set func(i int, p *kmsg.ShareFetchResponseTopicPartition, first bool)) (lockMillis int32) {
	fail := func(i int, code int16) {
		p := kmsg.NewShareFetchResponseTopicPartition()
		p.Partition, p.ErrorCode = parts[i].partition, code
		p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = -1, -1
		set(i, &p, acks != nil)
	}
	refs := g.shareRefs(ctx, parts, fail)
	if len(refs) == 0 {
		return 0
	}
	share := maxRecords
	if n := g.shareLeaders(ctx, parts); n > 1 && maxRecords > 0 {
		share = max(1, maxRecords/int32(n))
	}
	var mu sync.Mutex
	g.route(ctx, max(wait, leaderWait), refs, nil, func(rs []partRef) kmsg.Request {
		if ackOnly {
			req := kmsg.NewPtrShareAcknowledgeRequest()
			req.SetVersion(base.GetVersion())
			req.GroupID, req.MemberID, req.ShareSessionEpoch, req.IsRenewAck = base.GroupID, base.MemberID, base.ShareSessionEpoch, base.IsRenewAck
			for _, r := range rs {
				t := kmsg.NewShareAcknowledgeRequestTopic()
				t.TopicID = parts[r.i].id
				p := kmsg.NewShareAcknowledgeRequestTopicPartition()
				p.Partition = r.partition
				for _, b := range acks[r.i] {
					ab := kmsg.NewShareAcknowledgeRequestTopicPartitionAcknowledgementBatch()
					ab.FirstOffset, ab.LastOffset, ab.AcknowledgeTypes = b.FirstOffset, b.LastOffset, b.AcknowledgeTypes
					p.AcknowledgementBatches = append(p.AcknowledgementBatches, ab)
				}
				t.Partitions = []kmsg.ShareAcknowledgeRequestTopicPartition{p}
				req.Topics = append(req.Topics, t)
			}
			return req
		}
		req := *base
		req.Topics, req.ForgottenTopicsData = nil, nil
		req.MaxWaitMillis, req.MaxRecords = int32(wait.Milliseconds()), share
		for _, r := range rs {
			t := kmsg.NewShareFetchRequestTopic()
			t.TopicID = parts[r.i].id
			p := kmsg.NewShareFetchRequestTopicPartition()
			p.Partition = r.partition
			if acks != nil {
				p.AcknowledgementBatches = acks[r.i]
			}
			t.Partitions = []kmsg.ShareFetchRequestTopicPartition{p}
			req.Topics = append(req.Topics, t)
		}
		return &req
	}, func(resp kmsg.Response, rs []partRef) []partRef {
		var answers []kmsg.ShareFetchResponseTopicPartition
		var topics int
		var lock int32
		switch got := resp.(type) {
		case *kmsg.ShareFetchResponse:
			lock, topics = got.AcquisitionLockTimeoutMillis, len(got.Topics)
			for _, t := range got.Topics {
				if len(t.Partitions) != 1 {
					break
				}
				answers = append(answers, t.Partitions[0])
			}
		case *kmsg.ShareAcknowledgeResponse:
			lock, topics = got.AcquisitionLockTimeoutMillis, len(got.Topics)
			for _, t := range got.Topics {
				if len(t.Partitions) != 1 {
					break
				}
				p := kmsg.NewShareFetchResponseTopicPartition()
				p.Partition, p.AcknowledgeErrorCode = t.Partitions[0].Partition, t.Partitions[0].ErrorCode
				p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = t.Partitions[0].CurrentLeader.LeaderID, t.Partitions[0].CurrentLeader.LeaderEpoch
				if p.AcknowledgeErrorCode == kerr.NotLeaderForPartition.Code || p.AcknowledgeErrorCode == kerr.UnknownTopicOrPartition.Code {
					p.ErrorCode = p.AcknowledgeErrorCode // asked again at the new leader
				}
				answers = append(answers, p)
			}
		}
		mu.Lock()
		lockMillis = max(lockMillis, lock)
		mu.Unlock()
		return notLeaders(rs, func(k int, ref partRef) int16 {
			if k >= len(answers) || len(answers) != topics {
				fail(ref.i, kerr.UnknownServerError.Code)
				return kerr.UnknownServerError.Code
			}
			p := answers[k]
			set(ref.i, &p, acks != nil)
			return p.ErrorCode
		})
	}, func(ref partRef, code int16) { fail(ref.i, code) })
	return lockMillis
}

// shareFetch answers a ShareFetch: the session's bookkeeping here, the
// acknowledgements and acquisitions at the partitions' leaders.
func (g *Gateway) shareFetch(ctx context.Context, req *kmsg.ShareFetchRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ShareFetchResponse)
	group, member := deref(req.GroupID), deref(req.MemberID)
	fail := func(code int16) kmsg.Response { resp.ErrorCode = code; return resp }
	key, owner, code := g.shareSessionKey(ctx, group, member)
	if code != 0 {
		return fail(code)
	}
	hasAcks := false
	var named []shareTP
	acksOf := map[shareTP][]kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch{}
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			tp := shareTP{rt.TopicID, rp.Partition}
			named = append(named, tp)
			if len(rp.AcknowledgementBatches) > 0 {
				hasAcks = true
				acksOf[tp] = append(acksOf[tp], rp.AcknowledgementBatches...)
			} else if req.IsRenewAck {
				return fail(kerr.InvalidRequest.Code) // a renewal only acknowledges
			}
		}
	}
	if req.IsRenewAck && (req.MaxBytes != 0 || req.MinBytes != 0 || req.MaxRecords != 0 || req.MaxWaitMillis != 0) {
		return fail(kerr.InvalidRequest.Code)
	}
	var forgotten []shareTP
	for _, ft := range req.ForgottenTopicsData {
		for _, p := range ft.Partitions {
			forgotten = append(forgotten, shareTP{ft.TopicID, p})
		}
	}
	var parts map[shareTP]bool
	switch req.ShareSessionEpoch {
	case 0:
		if hasAcks {
			return fail(kerr.InvalidRequest.Code) // nothing is acquired in a new session
		}
		if msg := g.notShareGroup(ctx, group); msg != "" {
			resp.ErrorCode, resp.ErrorMessage = kerr.InvalidRequest.Code, &msg
			return resp
		}
		if code := g.openShareSession(key, owner, named); code != 0 {
			return fail(code)
		}
		parts = map[shareTP]bool{}
		for _, tp := range named {
			parts[tp] = true
		}
	default:
		var code int16
		if parts, code = g.useShareSession(key, req.ShareSessionEpoch, named, forgotten); code != 0 {
			return fail(code)
		}
	}
	closing := req.ShareSessionEpoch == -1
	// The partitions asked: the session's, then any acknowledged outside
	// it (forgotten in this request), which are acknowledged only.
	var asked []shareTP
	for tp := range parts {
		asked = append(asked, tp)
	}
	inSession := len(asked)
	for tp := range acksOf {
		if _, ok := parts[tp]; !ok {
			asked = append(asked, tp)
		}
	}
	acks := make([][]kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch, len(asked))
	for i, tp := range asked {
		acks[i] = acksOf[tp]
	}
	results := make([]*kmsg.ShareFetchResponseTopicPartition, len(asked))
	acquired := 0
	var mu sync.Mutex
	set := func(i int, p *kmsg.ShareFetchResponseTopicPartition, first bool) {
		mu.Lock()
		defer mu.Unlock()
		prev := results[i]
		if !first && prev != nil {
			p.AcknowledgeErrorCode, p.AcknowledgeErrorMessage = prev.AcknowledgeErrorCode, prev.AcknowledgeErrorMessage
			if len(p.AcquiredRecords) == 0 && p.ErrorCode == 0 {
				return // nothing new this round
			}
		}
		for _, a := range p.AcquiredRecords {
			acquired += int(a.LastOffset - a.FirstOffset + 1)
		}
		results[i] = p
	}
	deadline := time.Now().Add(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	leaders := g.shareLeaders(ctx, asked[:inSession])
	wait := time.Until(deadline)
	if leaders > 1 {
		wait = 0 // first what each leader has; then short polls
	}
	base := *req
	base.ShareSessionEpoch = 1
	if closing {
		base.ShareSessionEpoch = -1
	}
	var lock int32
	if ackOnly := asked[inSession:]; len(ackOnly) > 0 {
		ackBase := base
		ackBase.ShareSessionEpoch = 1 // closing releases the session's partitions below
		lock = g.shareRound(ctx, &ackBase, true, ackOnly, acks[inSession:], 0, 0,
			func(i int, p *kmsg.ShareFetchResponseTopicPartition, first bool) { set(inSession+i, p, first) })
	}
	session, sessionAcks := asked[:inSession], acks[:inSession]
	lock = max(lock, g.shareRound(ctx, &base, false, session, sessionAcks, max(wait, 0), req.MaxRecords, set))
	for !closing && !req.IsRenewAck && leaders > 1 && acquired == 0 && time.Until(deadline) > 0 && ctx.Err() == nil {
		lock = max(lock, g.shareRound(ctx, &base, false, session, nil, min(time.Until(deadline), fetchRoundWait), req.MaxRecords, set))
	}
	// The answer: partitions with records, errors or acknowledgements,
	// and those the session must still name.
	failed := map[shareTP]bool{}
	topicAt := map[[16]byte]int{}
	var endpoints map[int32]bool
	for i, tp := range asked {
		p := results[i]
		if p == nil {
			np := kmsg.NewShareFetchResponseTopicPartition()
			np.Partition = tp.partition
			np.CurrentLeader.LeaderID, np.CurrentLeader.LeaderEpoch = -1, -1
			p = &np
		}
		_, acked := acksOf[tp]
		if len(p.AcquiredRecords) == 0 && p.ErrorCode == 0 && !acked && !parts[tp] {
			continue
		}
		if p.ErrorCode != 0 {
			failed[tp] = true
		}
		if p.ErrorCode == kerr.NotLeaderForPartition.Code && p.CurrentLeader.LeaderID >= 0 {
			if endpoints == nil {
				endpoints = map[int32]bool{}
			}
			endpoints[p.CurrentLeader.LeaderID] = true
		}
		if p.Records == nil {
			p.Records = []byte{}
		}
		k, ok := topicAt[tp.id]
		if !ok {
			k = len(resp.Topics)
			topicAt[tp.id] = k
			t := kmsg.NewShareFetchResponseTopic()
			t.TopicID = tp.id
			resp.Topics = append(resp.Topics, t)
		}
		resp.Topics[k].Partitions = append(resp.Topics[k].Partitions, *p)
	}
	resp.AcquisitionLockTimeoutMillis = orDefaultLock(lock)
	for _, b := range g.endpointsOf(ctx, endpoints) {
		ne := kmsg.NewShareFetchResponseNodeEndpoint()
		ne.NodeID, ne.Host, ne.Port, ne.Rack = b.id, b.host, b.port, b.rackOrNil()
		resp.NodeEndpoints = append(resp.NodeEndpoints, ne)
	}
	if !closing {
		g.answeredShareSession(key, failed)
	}
	return resp
}

// shareAcknowledge answers a ShareAcknowledge: the session's epoch is
// checked here, the acknowledgements applied at the leaders.
func (g *Gateway) shareAcknowledge(ctx context.Context, req *kmsg.ShareAcknowledgeRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ShareAcknowledgeResponse)
	group, member := deref(req.GroupID), deref(req.MemberID)
	fail := func(code int16) kmsg.Response { resp.ErrorCode = code; return resp }
	key, _, code := g.shareSessionKey(ctx, group, member)
	if code != 0 {
		return fail(code)
	}
	if req.ShareSessionEpoch == 0 {
		return fail(kerr.InvalidShareSessionEpoch.Code) // acknowledgements need a session
	}
	parts, code := g.useShareSession(key, req.ShareSessionEpoch, nil, nil)
	if code != 0 {
		return fail(code)
	}
	var asked []shareTP
	var acks [][]kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			asked = append(asked, shareTP{rt.TopicID, rp.Partition})
			var bs []kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch
			for _, b := range rp.AcknowledgementBatches {
				fb := kmsg.NewShareFetchRequestTopicPartitionAcknowledgementBatch()
				fb.FirstOffset, fb.LastOffset, fb.AcknowledgeTypes = b.FirstOffset, b.LastOffset, b.AcknowledgeTypes
				bs = append(bs, fb)
			}
			acks = append(acks, bs)
		}
	}
	results := make([]kmsg.ShareAcknowledgeResponseTopicPartition, len(asked))
	for i, tp := range asked {
		results[i] = kmsg.NewShareAcknowledgeResponseTopicPartition()
		results[i].Partition = tp.partition
		results[i].CurrentLeader.LeaderID, results[i].CurrentLeader.LeaderEpoch = -1, -1
	}
	base := kmsg.NewPtrShareFetchRequest()
	base.SetVersion(req.GetVersion())
	base.GroupID, base.MemberID, base.ShareSessionEpoch, base.IsRenewAck = &group, &member, 1, req.IsRenewAck
	var mu sync.Mutex
	var endpoints map[int32]bool
	lock := g.shareRound(ctx, base, true, asked, acks, 0, 0, func(i int, p *kmsg.ShareFetchResponseTopicPartition, _ bool) {
		mu.Lock()
		defer mu.Unlock()
		results[i].ErrorCode = p.AcknowledgeErrorCode
		if p.ErrorCode != 0 {
			results[i].ErrorCode = p.ErrorCode
		}
		results[i].CurrentLeader.LeaderID, results[i].CurrentLeader.LeaderEpoch = p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch
		if results[i].ErrorCode == kerr.NotLeaderForPartition.Code && p.CurrentLeader.LeaderID >= 0 {
			if endpoints == nil {
				endpoints = map[int32]bool{}
			}
			endpoints[p.CurrentLeader.LeaderID] = true
		}
	})
	if req.ShareSessionEpoch == -1 {
		var ps []shareTP
		for tp := range parts {
			ps = append(ps, tp)
		}
		g.releaseShare(ctx, group, member, ps)
	}
	topicAt := map[[16]byte]int{}
	for i, tp := range asked {
		k, ok := topicAt[tp.id]
		if !ok {
			k = len(resp.Topics)
			topicAt[tp.id] = k
			t := kmsg.NewShareAcknowledgeResponseTopic()
			t.TopicID = tp.id
			resp.Topics = append(resp.Topics, t)
		}
		resp.Topics[k].Partitions = append(resp.Topics[k].Partitions, results[i])
	}
	resp.AcquisitionLockTimeoutMillis = orDefaultLock(lock)
	for _, b := range g.endpointsOf(ctx, endpoints) {
		ne := kmsg.NewShareAcknowledgeResponseNodeEndpoint()
		ne.NodeID, ne.Host, ne.Port, ne.Rack = b.id, b.host, b.port, b.rackOrNil()
		resp.NodeEndpoints = append(resp.NodeEndpoints, ne)
	}
	return resp
}

// notShareGroup explains why group, of another kind, cannot be fetched
// as a share group ("" when it can: a share group, or none yet).
func (g *Gateway) notShareGroup(ctx context.Context, group string) string {
	req := kmsg.NewPtrShareGroupDescribeRequest()
	req.GroupIDs = []string{group}
	resp, ok := g.groupRequest(ctx, requestHeader{}, req).(*kmsg.ShareGroupDescribeResponse)
	if !ok || len(resp.Groups) != 1 || resp.Groups[0].ErrorCode != kerr.GroupIDNotFound.Code || resp.Groups[0].ErrorMessage == nil {
		return ""
	}
	return *resp.Groups[0].ErrorMessage
}

// shareSessionKey checks a share request's group (READ) and member id
// and names its session: per listener (the broker the client addressed),
// group and member, on the request's connection (owner).
func (g *Gateway) shareSessionKey(ctx context.Context, group, member string) (shareSessionKey, *session, int16) {
	key := shareSessionKey{group: group, member: member}
	switch {
	case !g.allowed(ctx, opRead, rtGroup, group):
		return key, nil, kerr.GroupAuthorizationFailed.Code
	case group == "" || member == "" || len(member) > maxMemberID:
		return key, nil, kerr.InvalidRequest.Code
	}
	owner := sessionOf(ctx)
	if owner != nil {
		key.listener = owner.listener.Name
	}
	return key, owner, 0
}

// shareLeaders counts the leader nodes of parts.
func (g *Gateway) shareLeaders(ctx context.Context, parts []shareTP) int {
	snap, err := g.cache.get(ctx, false)
	if err != nil {
		return 1
	}
	leaders := map[int32]bool{}
	for _, tp := range parts {
		if name, ok := snap.byID[tp.id]; ok {
			if p, ok := snap.partition(name, tp.partition); ok {
				leaders[p.Leader] = true
			}
		}
	}
	return len(leaders)
}

// orDefaultLock is the lock duration a leader gave, or, with none asked,
// the default share.record.lock.duration.ms.
func orDefaultLock(ms int32) int32 {
	if ms > 0 {
		return ms
	}
	v, _ := strconv.Atoi(meta.GroupConfigDefaults["share.record.lock.duration.ms"])
	return int32(v)
}

// endpointsOf lists the brokers standing for nodes, as this client is
// told of them.
func (g *Gateway) endpointsOf(ctx context.Context, nodes map[int32]bool) []broker {
	if len(nodes) == 0 {
		return nil
	}
	snap, _ := g.cache.get(ctx, false)
	bs, _, _ := g.brokers(ctx, snap)
	var out []broker
	for _, b := range bs {
		if nodes[b.id] {
			out = append(out, b)
		}
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
