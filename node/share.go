package node

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/bufpool"
	"github.com/strata-io/strata/meta"
	plog "github.com/strata-io/strata/node/log"
	"github.com/strata-io/strata/share"
)

// Share groups (KIP-932): the leader of a partition is its
// share-partition leader for every share group that reads it. It keeps
// each share-partition's state (package share) in memory, loaded from the
// metadata state on first use and written back there after each change
// that must survive a failover, fenced by its leader epoch: after an
// acknowledgement before answering, after an acquisition in the
// background. Gateways hold the share sessions and send each leader the
// partitions it leads, as ShareFetch and ShareAcknowledge requests: a
// ShareFetch with ShareSessionEpoch -1 releases what the member holds in
// the partitions it names (its session closed).

// shareDefaultMaxRecords is what a ShareFetch without MaxRecords acquires
// at most (Kafka's share.max.poll.records default).
const shareDefaultMaxRecords = 500

// shareReadChunk bounds how much of the log one read of a
// share-partition takes: acquisitions stop at MaxRecords, so reading a
// whole fetch's bytes at once would mostly be thrown away. A read is sized
// by the partition's average record (sharePart.recordBytes), from
// shareMinReadChunk up.
const (
	shareReadChunk    = 1 << 20
	shareMinReadChunk = 16 << 10
)

// defaultShareIdle is how long a share-partition with nothing in flight
// stays in memory unused (Config.ShareIdle).
const defaultShareIdle = 10 * time.Minute

type sharePartKey struct {
	group, topic string
	partition    int32
}

// sharePart is one share-partition this node leads.
type sharePart struct {
	key sharePartKey
	// epoch is the leader epoch it was loaded in: its writes are fenced
	// by it, and a partition led again in another epoch is loaded anew.
	// stateEpoch is the state's own (a reset from outside moves it), and
	// resets the metadata's count of such resets when it was checked.
	epoch      int32
	stateEpoch int32
	resets     uint64

	mu      sync.Mutex
	p       *share.Partition
	configs string    // the group configs it was set from
	gen     uint64    // changes made; written is the last one durable
	used    time.Time // last request
	queued  bool      // a background write is on its way
	// recordBytes is the log's average bytes per offset, as reads found
	// it (sizes the next read).
	recordBytes int64

	// wmu makes writes one at a time; written is changed holding both
	// wmu and mu, so either guards a read.
	wmu     sync.Mutex
	written uint64
	dropped bool // guarded by mu: removed from the node's map
}

type shares struct {
	mu    sync.Mutex
	parts map[sharePartKey]*sharePart
}

// shareConfig reads a group's share settings from its group configs.
func shareConfig(set map[string]string) share.Config {
	ms := func(k string) time.Duration {
		v, _ := strconv.ParseInt(meta.GroupConfig(set, k), 10, 64)
		return time.Duration(v) * time.Millisecond
	}
	limit, _ := strconv.ParseInt(meta.GroupConfig(set, "share.delivery.count.limit"), 10, 32)
	return share.Config{DeliveryLimit: int32(limit), LockDuration: ms("share.record.lock.duration.ms"),
		DeadLetters: meta.GroupConfig(set, "errors.deadletterqueue.topic.name") != ""}
}

func configsString(set map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(set)) {
		b.WriteString(k + "=" + set[k] + "\n")
	}
	return b.String()
}

// sharePart returns a share-partition of a partition this node leads
// (l, part from n.partition), loading or starting its state on first use
// or in a new leader epoch. A new share-partition's start is written
// before it is used, so that a failover cannot move it.
func (n *Node) sharePart(ctx context.Context, group string, l *openLog, part meta.Partition, configs map[string]string) (*sharePart, error) {
	key := sharePartKey{group, part.Topic, part.Partition}
	cs := configsString(configs)
	fsm := n.cfg.Meta.Server().FSM()
	resets := fsm.ShareResets() // before the view: see FSM.ShareResets
	n.shares.mu.Lock()
	sp := n.shares.parts[key]
	stale := sp != nil && sp.epoch != part.LeaderEpoch
	if sp != nil && !stale && sp.resets != resets {
		// Some share state was reset: this one's, if its epoch moved.
		v := fsm.View()
		st, ok, err := v.ShareState(group, part.Topic, part.Partition)
		v.Close()
		if err == nil && ok && st.StateEpoch == sp.stateEpoch && st.Start != meta.Uninitialized {
			sp.resets = resets // guarded by n.shares.mu
		} else if err == nil {
			stale = true
		}
	}
	if stale {
		sp.mu.Lock()
		sp.dropped = true
		sp.mu.Unlock()
		delete(n.shares.parts, key)
		sp = nil
	}
	n.shares.mu.Unlock()
	if sp != nil {
		sp.mu.Lock()
		if sp.configs != cs {
			sp.p.SetConfig(shareConfig(configs))
			sp.configs = cs
		}
		sp.used = time.Now()
		sp.mu.Unlock()
		return sp, nil
	}
	v := fsm.View()
	st, ok, err := v.ShareState(group, part.Topic, part.Partition)
	v.Close()
	if err != nil {
		return nil, err
	}
	cfg := shareConfig(configs)
	sp = &sharePart{key: key, epoch: part.LeaderEpoch, stateEpoch: st.StateEpoch, resets: resets, configs: cs, used: time.Now()}
	if ok && st.Start != meta.Uninitialized {
		s := share.Snapshot{Start: st.Start}
		for _, b := range st.Batches {
			s.Batches = append(s.Batches, share.Batch{First: b.First, Last: b.Last, State: share.State(b.State), Deliveries: b.Deliveries})
		}
		sp.p = share.Restore(cfg, s)
		// Records held at the delivery limit when the state was written
		// are released now, so archived: dead letters first, then the
		// state that archives them.
		if restored := sp.p.Snapshot(); !reflect.DeepEqual(restored, s) {
			n.writeDeadLetters(ctx, key, sp.p.TakeDead(), configs)
			sp.gen++
		}
	} else {
		start, err := n.shareStartOffset(ctx, l, part, meta.GroupConfig(configs, "share.auto.offset.reset"))
		if err != nil {
			return nil, err
		}
		sp.p = share.New(cfg, start)
		sp.gen = 1
	}
	if logStart := n.logStartOffset(l, part); sp.p.Start() < logStart {
		sp.p.Reset(logStart) // retention or DeleteRecords passed it
		sp.gen++
	}
	if sp.gen > 0 {
		if err := n.writeShare(ctx, sp); err != nil {
			return nil, err
		}
	}
	n.shares.mu.Lock()
	defer n.shares.mu.Unlock()
	if other := n.shares.parts[key]; other != nil && other.epoch == sp.epoch {
		return other, nil // loaded meanwhile by another request
	}
	n.shares.parts[key] = sp
	return sp, nil
}

// shareStartOffset is where a new share-partition starts, by
// share.auto.offset.reset: the high watermark (latest), the log start
// (earliest), or the first record newer than a duration ago.
func (n *Node) shareStartOffset(ctx context.Context, l *openLog, part meta.Partition, reset string) (int64, error) {
	hw := l.highWatermark()
	switch {
	case reset == "earliest":
		return n.logStartOffset(l, part), nil
	case strings.HasPrefix(reset, "by_duration:"):
		d, err := meta.ParseISODuration(strings.TrimPrefix(reset, "by_duration:"))
		if err != nil {
			return hw, nil
		}
		ts := time.Now().Add(-d).UnixMilli()
		off, _, found, err := n.remoteOffsetForTimestamp(ctx, l, part, ts)
		if err == nil && !found {
			off, _, found, err = l.OffsetForTimestamp(ts, hw)
		}
		if err != nil {
			return 0, err
		}
		if !found {
			return hw, nil
		}
		return off, nil
	}
	return hw, nil
}

// writeShare makes the share-partition's changes so far durable: one
// write covers every change made before it, so concurrent callers share
// writes. A write refused for a stale epoch drops the share-partition:
// leadership moved, and the new leader has what was written before.
func (n *Node) writeShare(ctx context.Context, sp *sharePart) error {
	sp.mu.Lock()
	target := sp.gen
	sp.mu.Unlock()
	sp.wmu.Lock()
	defer sp.wmu.Unlock()
	if sp.written >= target {
		return nil
	}
	sp.mu.Lock()
	s, gen := sp.p.Snapshot(), sp.gen
	sp.mu.Unlock()
	st := meta.ShareState{Group: sp.key.group, Topic: sp.key.topic, Partition: sp.key.partition, LeaderEpoch: sp.epoch,
		Start: s.Start, UpdateMs: time.Now().UnixMilli(), StateEpoch: sp.stateEpoch}
	for _, b := range s.Batches {
		st.Batches = append(st.Batches, meta.ShareBatch{First: b.First, Last: b.Last, State: int8(b.State), Deliveries: b.Deliveries})
	}
	res, err := n.cfg.Meta.Propose(ctx, &meta.WriteShareState{State: st})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		if errors.Is(err, meta.ErrStaleEpoch) || errors.Is(err, meta.ErrUnknownTopic) {
			n.dropShare(sp)
			return kerr.NotLeaderForPartition
		}
		return err
	}
	sp.mu.Lock()
	sp.written = gen
	sp.mu.Unlock()
	n.counts.shareWrites.Add(1)
	return nil
}

// writeShareLater writes the share-partition's state in the background
// (after an acquisition: a failover then counts the delivery).
func (n *Node) writeShareLater(sp *sharePart) {
	sp.mu.Lock()
	if sp.queued {
		sp.mu.Unlock()
		return
	}
	sp.queued = true
	sp.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		sp.mu.Lock()
		sp.queued = false
		sp.mu.Unlock()
		ctx, cancel := context.WithTimeout(n.base, 10*time.Second)
		defer cancel()
		if err := n.writeShare(ctx, sp); err != nil && n.base.Err() == nil {
			n.logger.Warn("share state write failed", "group", sp.key.group, "topic", sp.key.topic, "partition", sp.key.partition, "error", err)
		}
	}()
}

func (n *Node) dropShare(sp *sharePart) {
	n.shares.mu.Lock()
	if n.shares.parts[sp.key] == sp {
		delete(n.shares.parts, sp.key)
	}
	n.shares.mu.Unlock()
	sp.mu.Lock()
	sp.dropped = true
	sp.mu.Unlock()
}

// shareLoop releases records whose locks ran out, and forgets the
// share-partitions of partitions no longer led here, or idle.
func (n *Node) shareLoop(ctx context.Context) {
	defer n.wg.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n.shares.mu.Lock()
		parts := make([]*sharePart, 0, len(n.shares.parts))
		for _, sp := range n.shares.parts {
			parts = append(parts, sp)
		}
		n.shares.mu.Unlock()
		now := time.Now()
		released := false
		for _, sp := range parts {
			m, err := n.partitionMeta(sp.key.topic, sp.key.partition)
			if err == nil && (!m.ok || m.part.Leader != n.cfg.ID || m.part.LeaderEpoch != sp.epoch) {
				n.dropShare(sp)
				continue
			}
			sp.mu.Lock()
			expired := sp.p.Expire(now)
			if expired > 0 {
				sp.gen++
			}
			dead := sp.p.TakeDead()
			idle := sp.p.InFlight() == 0 && now.Sub(sp.used) > n.cfg.ShareIdle && sp.written == sp.gen
			sp.mu.Unlock()
			if len(dead) > 0 {
				n.wg.Add(1)
				go func() {
					defer n.wg.Done()
					dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					defer cancel()
					n.writeDeadLetters(dctx, sp.key, dead, n.groupConfigs(sp.key.group))
				}()
			}
			if expired > 0 {
				released = true
				n.writeShareLater(sp)
			}
			if idle {
				n.dropShare(sp)
			}
		}
		if released {
			n.notifyAppended() // waiting share fetches may acquire them
		}
	}
}

// topicName resolves a topic id as of the current metadata, from a map
// built once per topology (share requests name topics by id).
func (n *Node) topicName(id [16]byte) (string, bool) {
	fsm := n.cfg.Meta.Server().FSM()
	topology := fsm.Topology() // before the view: see FSM.Topology
	if c := n.topicIDs.Load(); c != nil && c.topology == topology {
		name, ok := c.names[id]
		return name, ok
	}
	v := fsm.View()
	ts, err := v.Topics()
	v.Close()
	if err != nil {
		return "", false
	}
	c := &topicIDs{topology: topology, names: make(map[[16]byte]string, len(ts))}
	for _, t := range ts {
		c.names[t.ID] = t.Name
	}
	n.topicIDs.Store(c)
	name, ok := c.names[id]
	return name, ok
}

// topicIDs maps topic ids to names at a topology version.
type topicIDs struct {
	topology uint64
	names    map[[16]byte]string
}

// shareAck is one partition's acknowledgements in a request.
type shareAck struct {
	topicID   [16]byte
	partition int32
	acks      []share.Ack
}

// validShareAcks checks acknowledgement batches as Kafka does before
// applying any: ascending, not overlapping, one type or one per offset,
// known types (RENEW only in a renew request).
func validShareAcks(acks []share.Ack, renew bool) bool {
	prev := int64(-1)
	for _, a := range acks {
		if a.First > a.Last || a.First <= prev || len(a.Types) == 0 || len(a.Types) > 1 && int64(len(a.Types)) != a.Last-a.First+1 {
			return false
		}
		for _, t := range a.Types {
			if t < share.Gap || t > share.Reject && !(renew && t == share.Renew) {
				return false
			}
		}
		prev = a.Last
	}
	return true
}

// shareAcks applies each partition's acknowledgements for member and
// makes them durable before answering: code gets each partition's error
// (0: applied). It reports whether any was applied.
func (n *Node) shareAcks(ctx context.Context, group, member string, configs map[string]string, renew bool, acks []shareAck, code func(i int, c int16)) (released bool) {
	now := time.Now()
	var toWrite []*sharePart
	var idx []int
	dead := map[int][]share.Dead{} // by place in toWrite
	for i, a := range acks {
		if !validShareAcks(a.acks, renew) {
			code(i, kerr.InvalidRequest.Code)
			continue
		}
		topic, ok := n.topicName(a.topicID)
		if !ok {
			code(i, kerr.UnknownTopicID.Code)
			continue
		}
		l, part, kc := n.partition(topic, a.partition)
		if kc != nil {
			code(i, kc.Code)
			continue
		}
		sp, err := n.sharePart(ctx, group, l, part, configs)
		if err != nil {
			code(i, errorCode(err))
			continue
		}
		sp.mu.Lock()
		err = sp.p.Acknowledge(member, a.acks, now)
		if err == nil {
			sp.gen++
			dead[len(toWrite)] = sp.p.TakeDead()
		}
		sp.mu.Unlock()
		switch {
		case errors.Is(err, share.ErrInvalidRecordState):
			code(i, kerr.InvalidRecordState.Code)
			continue
		case err != nil:
			code(i, kerr.InvalidRequest.Code)
			continue
		}
		for _, x := range a.acks {
			for off := x.First; off <= x.Last; off++ {
				t := x.Types[0]
				if len(x.Types) > 1 {
					t = x.Types[off-x.First]
				}
				n.counts.shareAcks[t].Add(1)
			}
		}
		// Released records may be acquired again, and accepted ones move
		// the start, which may open a full window: fetches waiting on
		// this partition look again.
		released = true
		toWrite = append(toWrite, sp)
		idx = append(idx, i)
	}
	var wg sync.WaitGroup
	for k, sp := range toWrite {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.writeDeadLetters(ctx, sp.key, dead[k], configs) // before the state that archives them
			if err := n.writeShare(ctx, sp); err != nil {
				code(idx[k], errorCode(err))
			} else {
				code(idx[k], 0)
			}
		}()
	}
	wg.Wait()
	return released
}

func fetchAcks(rp *kmsg.ShareFetchRequestTopicPartition) []share.Ack {
	out := make([]share.Ack, 0, len(rp.AcknowledgementBatches))
	for _, b := range rp.AcknowledgementBatches {
		out = append(out, share.Ack{First: b.FirstOffset, Last: b.LastOffset, Types: ackTypes(b.AcknowledgeTypes)})
	}
	return out
}

func ackTypes(ts []int8) []share.AckType {
	out := make([]share.AckType, len(ts))
	for i, t := range ts {
		out[i] = share.AckType(t)
	}
	return out
}

// groupConfigs reads a group's configs from the local copy of the
// metadata.
func (n *Node) groupConfigs(group string) map[string]string {
	v := n.cfg.Meta.Server().FSM().View()
	defer v.Close()
	m, _ := v.GroupConfigs(group)
	return m
}

func lockMillis(configs map[string]string) int32 {
	v, _ := strconv.ParseInt(meta.GroupConfig(configs, "share.record.lock.duration.ms"), 10, 32)
	return int32(v)
}

// shareAcknowledge applies a ShareAcknowledge a gateway sent for the
// partitions this node leads.
func (n *Node) shareAcknowledge(ctx context.Context, req *kmsg.ShareAcknowledgeRequest) *kmsg.ShareAcknowledgeResponse {
	resp := req.ResponseKind().(*kmsg.ShareAcknowledgeResponse)
	group, member := deref(req.GroupID), deref(req.MemberID)
	configs := n.groupConfigs(group)
	resp.AcquisitionLockTimeoutMillis = lockMillis(configs)
	var acks []shareAck
	var slots []*kmsg.ShareAcknowledgeResponseTopicPartition
	for _, rt := range req.Topics {
		st := kmsg.NewShareAcknowledgeResponseTopic()
		st.TopicID = rt.TopicID
		resp.Topics = append(resp.Topics, st)
	}
	for i, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			sp := kmsg.NewShareAcknowledgeResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = -1, -1
			resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, sp)
			a := shareAck{topicID: rt.TopicID, partition: rp.Partition}
			for _, b := range rp.AcknowledgementBatches {
				a.acks = append(a.acks, share.Ack{First: b.FirstOffset, Last: b.LastOffset, Types: ackTypes(b.AcknowledgeTypes)})
			}
			acks = append(acks, a)
		}
	}
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			slots = append(slots, &resp.Topics[i].Partitions[j])
		}
	}
	var mu sync.Mutex
	if n.shareAcks(ctx, group, member, configs, req.IsRenewAck, acks, func(i int, c int16) {
		mu.Lock()
		slots[i].ErrorCode = c
		mu.Unlock()
	}) {
		n.notifyAppended()
	}
	return resp
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// shareFetch serves a ShareFetch a gateway sent for the partitions this
// node leads: acknowledgements first, then (unless the session closes or
// the request only renews) acquisitions, waiting up to MaxWaitMillis for
// records to acquire.
func (n *Node) shareFetch(ctx context.Context, req *kmsg.ShareFetchRequest) *kmsg.ShareFetchResponse {
	resp := req.ResponseKind().(*kmsg.ShareFetchResponse)
	group, member := deref(req.GroupID), deref(req.MemberID)
	configs := n.groupConfigs(group)
	resp.AcquisitionLockTimeoutMillis = lockMillis(configs)
	type slot struct{ i, j int }
	var acks []shareAck
	var ackSlots []slot
	for i, rt := range req.Topics {
		st := kmsg.NewShareFetchResponseTopic()
		st.TopicID = rt.TopicID
		for j, rp := range rt.Partitions {
			sp := kmsg.NewShareFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = -1, -1
			st.Partitions = append(st.Partitions, sp)
			if len(rp.AcknowledgementBatches) > 0 {
				acks = append(acks, shareAck{topicID: rt.TopicID, partition: rp.Partition, acks: fetchAcks(&rt.Partitions[j])})
				ackSlots = append(ackSlots, slot{i, j})
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	var mu sync.Mutex
	released := n.shareAcks(ctx, group, member, configs, req.IsRenewAck, acks, func(k int, c int16) {
		mu.Lock()
		resp.Topics[ackSlots[k].i].Partitions[ackSlots[k].j].AcknowledgeErrorCode = c
		mu.Unlock()
	})
	if req.ShareSessionEpoch == -1 {
		// The session closed: what the member holds here goes back.
		for i, rt := range req.Topics {
			for j, rp := range rt.Partitions {
				if code := n.releaseShareMember(ctx, group, member, rt.TopicID, rp.Partition, configs); code != 0 {
					resp.Topics[i].Partitions[j].ErrorCode = code
				}
			}
		}
		released = true
	}
	if released {
		n.notifyAppended()
	}
	if req.ShareSessionEpoch == -1 || req.IsRenewAck {
		return resp
	}
	maxRecords := int(req.MaxRecords)
	if maxRecords <= 0 {
		maxRecords = shareDefaultMaxRecords
	}
	budget := int(req.MaxBytes)
	if budget <= 0 || budget > maxFetchBytes {
		budget = maxFetchBytes
	}
	deadline := time.Now().Add(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	for {
		woken := n.appendedCh()
		took := 0
		bytes := 0
		failed := false
		for i, rt := range req.Topics {
			topic, ok := n.topicName(rt.TopicID)
			for j, rp := range rt.Partitions {
				out := &resp.Topics[i].Partitions[j]
				if !ok {
					out.ErrorCode, failed = kerr.UnknownTopicID.Code, true
					continue
				}
				if took >= maxRecords || bytes >= budget {
					continue
				}
				got, size, code := n.shareAcquire(ctx, group, member, topic, rp.Partition, configs, maxRecords-took, budget-bytes, out)
				if code != 0 {
					out.ErrorCode, failed = code, true
					if code == kerr.NotLeaderForPartition.Code {
						if m, err := n.partitionMeta(topic, rp.Partition); err == nil && m.ok {
							out.CurrentLeader.LeaderID, out.CurrentLeader.LeaderEpoch = m.part.Leader, m.part.LeaderEpoch
						}
					}
				}
				took += got
				bytes += size
			}
		}
		if took > 0 || failed || !time.Now().Before(deadline) {
			return resp
		}
		select {
		case <-woken:
		case <-time.After(time.Until(deadline)):
		case <-ctx.Done():
			return resp
		}
	}
}

// releaseShareMember gives back what member holds in one partition.
func (n *Node) releaseShareMember(ctx context.Context, group, member string, topicID [16]byte, p int32, configs map[string]string) int16 {
	topic, ok := n.topicName(topicID)
	if !ok {
		return kerr.UnknownTopicID.Code
	}
	l, part, kc := n.partition(topic, p)
	if kc != nil {
		return kc.Code
	}
	sp, err := n.sharePart(ctx, group, l, part, configs)
	if err != nil {
		return errorCode(err)
	}
	sp.mu.Lock()
	if sp.p.ReleaseMember(member) > 0 {
		sp.gen++
	}
	dead := sp.p.TakeDead()
	sp.mu.Unlock()
	n.writeDeadLetters(ctx, sp.key, dead, configs)
	if err := n.writeShare(ctx, sp); err != nil {
		return errorCode(err)
	}
	return 0
}

// shareAcquire reads one partition from where its share-partition
// delivers next and acquires up to maxRecs records for member, setting out's
// records and acquired ranges. It returns how many records it acquired
// and the bytes it returns.
func (n *Node) shareAcquire(ctx context.Context, group, member, topic string, p int32, configs map[string]string, maxRecs, maxBytes int, out *kmsg.ShareFetchResponseTopicPartition) (int, int, int16) {
	l, part, kc := n.partition(topic, p)
	if kc != nil {
		return 0, 0, kc.Code
	}
	sp, err := n.sharePart(ctx, group, l, part, configs)
	if err != nil {
		return 0, 0, errorCode(err)
	}
	readCommitted := meta.GroupConfig(configs, "share.isolation.level") == "read_committed"
	limit := l.highWatermark()
	if readCommitted {
		limit = l.lastStableOffset(limit)
	}
	took, records, code := n.acquireLocked(ctx, l, part, sp, member, readCommitted, limit, maxRecs, maxBytes, out)
	if took > 0 {
		n.counts.shareAcquired.Add(int64(took))
		n.writeShareLater(sp)
	}
	return took, records, code
}

// acquireLocked is shareAcquire's work under the share-partition's lock.
func (n *Node) acquireLocked(ctx context.Context, l *openLog, part meta.Partition, sp *sharePart, member string, readCommitted bool, limit int64,
	maxRecs, maxBytes int, out *kmsg.ShareFetchResponseTopicPartition) (int, int, int16) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.dropped {
		return 0, 0, kerr.NotLeaderForPartition.Code
	}
	if logStart := n.logStartOffset(l, part); sp.p.Start() < logStart {
		sp.p.Reset(logStart)
		sp.gen++
	}
	now := time.Now()
	took := 0
	var records []byte
	from := sp.p.NextOffset()
	for took < maxRecs && from < limit && len(records) < maxBytes && !(sp.p.Full() && from >= sp.p.End()) {
		// Read about what the records wanted take, as the partition's
		// records have averaged so far.
		want := int64(maxRecs-took) * max(sp.recordBytes, 64) * 5 / 4
		chunk := int(min(max(want, shareMinReadChunk), shareReadChunk, int64(maxBytes-len(records))))
		var held []byte
		alloc := func(n int) []byte { held = bufpool.Get(n); return held }
		data, err := l.ReadAlloc(alloc, from, chunk, limit)
		if errors.Is(err, plog.ErrOffsetOutOfRange) && from < l.StartOffset() && n.remote != nil {
			data, err = n.readRemote(ctx, l, part, from, chunk, alloc)
		}
		release := func() {
			if held != nil {
				bufpool.Put(held)
				held = nil
			}
		}
		if err != nil {
			release()
			if took > 0 {
				break
			}
			return 0, 0, errorCode(err)
		}
		spans, batches, next, err := n.shareSpans(ctx, l, part, from, data, readCommitted)
		if err != nil {
			release()
			return 0, 0, errorCode(err)
		}
		if len(batches) == 0 {
			release()
			break
		}
		if span := next - batches[0].first; span > 0 {
			sp.recordBytes = (3*sp.recordBytes + int64(len(data))/span) / 4
		}
		got := sp.p.Acquire(member, spans, maxRecs-took, now)
		for _, r := range got {
			took += int(r.Last - r.First + 1)
			a := kmsg.NewShareFetchResponseTopicPartitionAcquiredRecord()
			a.FirstOffset, a.LastOffset, a.DeliveryCount = r.First, r.Last, int16(r.Deliveries)
			out.AcquiredRecords = append(out.AcquiredRecords, a)
		}
		// The batches holding what was acquired go out, whole.
		for _, b := range batches {
			for _, r := range got {
				if b.first <= r.Last && r.First <= b.last {
					records = append(records, b.data...)
					break
				}
			}
		}
		release()
		if next <= from {
			break
		}
		from = max(next, sp.p.NextOffset())
	}
	if took > 0 {
		sp.gen++
	}
	if records == nil {
		records = []byte{}
	}
	out.Records = records
	return took, len(records), 0
}

type shareBatch struct {
	first, last int64
	data        []byte
}

// shareSpans splits data read from the log at from into its batches and
// the spans of offsets a share group may deliver: not control batches,
// and, reading committed, not aborted transactions'. next is where the
// next read starts.
func (n *Node) shareSpans(ctx context.Context, l *openLog, part meta.Partition, from int64, data []byte, readCommitted bool) (spans []share.Span, batches []shareBatch, next int64, err error) {
	next = from
	var aborted []plog.AbortedTxn
	for b := data; len(b) >= plog.BatchHeaderBytes; {
		h, err := plog.ParseBatchHeader(b)
		if err != nil || h.Size() > int64(len(b)) {
			break
		}
		batches = append(batches, shareBatch{h.BaseOffset, h.LastOffset(), b[:h.Size()]})
		next = h.LastOffset() + 1
		b = b[h.Size():]
	}
	if readCommitted && len(batches) > 0 {
		if from < l.StartOffset() && n.remote != nil {
			aborted, err = n.abortedFrom(ctx, l, part, from, next)
		} else {
			aborted = l.AbortedTxns(from, next)
		}
		if err != nil {
			return nil, nil, from, err
		}
	}
	for _, bt := range batches {
		h, _ := plog.ParseBatchHeader(bt.data)
		if h.Control() || h.Transactional() && isAborted(aborted, h) {
			continue // archived as a gap
		}
		spans = append(spans, share.Span{First: bt.first, Last: bt.last})
	}
	return spans, batches, next, nil
}

// isAborted reports whether a transactional batch belongs to an aborted
// transaction.
func isAborted(aborted []plog.AbortedTxn, h plog.BatchHeader) bool {
	for _, a := range aborted {
		if a.ProducerID == h.ProducerID && a.FirstOffset <= h.BaseOffset && h.BaseOffset < a.LastOffset {
			return true
		}
	}
	return false
}
