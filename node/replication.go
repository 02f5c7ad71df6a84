package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/rpc"
	"github.com/strata-io/strata/meta"
	plog "github.com/strata-io/strata/node/log"
	"github.com/strata-io/strata/node/replica"
)

// Replication: for each partition it hosts, a node is its leader or a
// follower, as metadata says. A leader keeps a replica.Leader (follower
// log ends, ISR, high watermark) and asks the controller for ISR
// changes; a follower is fetched by the node's fetcher for its leader.
// rolesLoop brings roles in line with metadata whenever this node's copy
// of it changes.

// replState is an open log's part in replication.
type replState struct {
	mu sync.Mutex
	// leader is set while this node leads at epoch; follower while it
	// follows at epoch.
	leader    *replica.Leader
	follower  *followerLog
	epoch     int32
	partEpoch int32
	// proposing: an ISR change is on its way to the controller; after a
	// refusal the next waits until proposeAfter. awaitPartEpoch is the
	// partition epoch of the last change this node made: none is proposed
	// again until metadata shows it (a proposal from an older view is
	// refused anyway, and its refusal must not be taken for the change's).
	proposing      bool
	proposeAfter   time.Time
	awaitPartEpoch int32
	// hw is the high watermark this node knows: consumers read below it.
	hw atomic.Int64
	// changed is closed and replaced whenever hw or the ISR moves, waking
	// acks=all producers.
	changed chan struct{}
}

func (r *replState) init() {
	r.hw.Store(-1)
	r.changed = make(chan struct{})
}

// changedCh is the channel closed at the next change.
func (r *replState) changedCh() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// signalLocked wakes everyone waiting for a change.
func (r *replState) signalLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// highWatermark is the offset consumers may read below: the log end while
// the high watermark is not known yet on a single-replica partition is
// never used, as its leader sets it at once.
func (ol *openLog) highWatermark() int64 {
	if hw := ol.repl.hw.Load(); hw >= 0 {
		return min(hw, ol.EndOffset())
	}
	return ol.StartOffset()
}

// setHW records a high watermark this node learnt; retention never
// deletes above it.
func (ol *openLog) setHWLocked(hw int64) {
	if hw == ol.repl.hw.Load() {
		return
	}
	ol.repl.hw.Store(hw)
	ol.SetHighWatermark(hw)
	ol.repl.signalLocked()
}

// lead makes this node the partition's leader at part's epoch, or takes a
// change of its replicas or ISR.
func (n *Node) lead(ol *openLog, part meta.Partition) {
	r := &ol.repl
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	switch {
	case r.leader != nil && r.epoch == part.LeaderEpoch:
		if r.partEpoch != part.PartitionEpoch {
			r.leader.SetReplicas(part.Replicas, part.ISR, now)
			r.partEpoch = part.PartitionEpoch
			r.signalLocked()
		}
	default:
		if r.follower != nil {
			n.unfollowLocked(ol)
		}
		if err := ol.BeginEpoch(part.LeaderEpoch); err != nil {
			n.logger.Warn("record the leader epoch", "topic", part.Topic, "partition", part.Partition, "leader_epoch", part.LeaderEpoch, "error", err)
		}
		hw := max(r.hw.Load(), ol.StartOffset())
		r.leader = replica.NewLeader(n.cfg.ID, part.Replicas, part.ISR, hw, now, n.cfg.ReplicaLagMax)
		r.epoch, r.partEpoch, r.proposing, r.awaitPartEpoch = part.LeaderEpoch, part.PartitionEpoch, false, 0
		// A follower kept its producer state as it appended, unless a
		// truncation cut batches it had recorded: only then is it built
		// again, from the newest snapshot and the batches after it.
		ol.appendMu.Lock()
		if ol.producersStale {
			if ps, at, err := loadProducers(ol.Log); err == nil {
				ol.setProducers(ps, at)
			} else {
				n.logger.Warn("rebuild producer state", "topic", part.Topic, "partition", part.Partition, "error", err)
			}
		}
		ol.appendMu.Unlock()
		n.counts.leaderships.Add(1)
		n.logger.Info("leading partition", "topic", part.Topic, "partition", part.Partition, "leader_epoch", part.LeaderEpoch,
			"isr", part.ISR, "log_end", ol.EndOffset())
		r.signalLocked()
	}
	// The leader's high watermark may start above what this node knew
	// as a follower (a log emptied and restarted at the old leader's log
	// start): take it even when Advance does not move it, or waiters and
	// readers would go by the follower's older figure until the next
	// append, and a producer retrying a batch already written would wait
	// for ever (seeds 14005, 16006, 17009).
	if hw, moved := r.leader.Advance(ol.EndOffset()); moved || r.hw.Load() != hw {
		ol.setHWLocked(hw)
		n.logHWLocked(ol, part.Topic, part.Partition, "replicas", -1, -1)
	}
}

// follow makes this node fetch the partition from part.Leader.
func (n *Node) follow(ol *openLog, part meta.Partition) {
	r := &ol.repl
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.follower != nil && r.epoch == part.LeaderEpoch && r.follower.leader == part.Leader && n.fetcher(part.Leader).Has(r.follower) {
		return
	}
	if r.follower != nil {
		n.unfollowLocked(ol)
	}
	if r.leader != nil {
		n.logger.Info("no longer leading partition", "topic", part.Topic, "partition", part.Partition, "new_leader", part.Leader)
		r.leader = nil
		r.signalLocked() // acks=all waiters learn leadership moved
	}
	r.epoch, r.partEpoch = part.LeaderEpoch, part.PartitionEpoch
	r.follower = &followerLog{node: n, ol: ol, topic: part.Topic, partition: part.Partition, epoch: part.LeaderEpoch, leader: part.Leader}
	n.fetcher(part.Leader).Add(r.follower)
}

// unfollowLocked stops fetching the partition.
func (n *Node) unfollowLocked(ol *openLog) {
	f := ol.repl.follower
	n.replMu.Lock()
	if ft := n.fetchers[f.leader]; ft != nil {
		ft.Remove(f.topic, f.partition)
	}
	n.replMu.Unlock()
	ol.repl.follower = nil
}

// fetcher returns the fetcher of a leader node, starting it.
func (n *Node) fetcher(leader int32) *replica.Fetcher {
	n.replMu.Lock()
	defer n.replMu.Unlock()
	if f := n.fetchers[leader]; f != nil {
		return f
	}
	f := replica.StartFetcher(replica.FetcherConfig{Self: n.cfg.ID, Leader: leader, Send: n.sendFetch,
		MaxWait: n.cfg.ReplicaFetchWait, Logger: n.logger.With("component", "replica"),
		Stale: func(replica.Follower, error) { n.kickRoles() }})
	n.fetchers[leader] = f
	return f
}

// sendFetch sends a follower's fetch to the leader node over NATS.
func (n *Node) sendFetch(ctx context.Context, leader int32, req *kmsg.FetchRequest) (*kmsg.FetchResponse, error) {
	resp, err := n.caller.Kafka(ctx, rpc.KafkaSubject(n.cfg.Cluster, leader), req, rpc.KafkaCall{})
	if err != nil {
		return nil, fmt.Errorf("node %d: %w", leader, err)
	}
	return resp.(*kmsg.FetchResponse), nil
}

// followerLog is a partition this node follows, as its fetcher sees it.
type followerLog struct {
	node      *Node
	ol        *openLog
	topic     string
	partition int32
	epoch     int32
	leader    int32
}

func (f *followerLog) Topic() string       { return f.topic }
func (f *followerLog) Partition() int32    { return f.partition }
func (f *followerLog) LeaderEpoch() int32  { return f.epoch }
func (f *followerLog) LogEndOffset() int64 { return f.ol.EndOffset() }
func (f *followerLog) LastEpoch() int32    { return f.ol.LatestEpoch() }
func (f *followerLog) SetHighWatermark(hw int64) {
	f.ol.repl.mu.Lock()
	defer f.ol.repl.mu.Unlock()
	if f.ol.repl.follower == f {
		f.ol.setHWLocked(hw)
	}
}
func (f *followerLog) EndOffsetForEpoch(epoch int32) (int32, int64) {
	return f.ol.EndOffsetForEpoch(epoch)
}

// AppendReplicated appends the leader's batches and records their
// idempotent producers, so that taking over needs no scan of the log.
func (f *followerLog) AppendReplicated(b []byte) error {
	ol := f.ol
	ol.appendMu.Lock()
	defer ol.appendMu.Unlock()
	from := ol.EndOffset()
	if _, err := ol.Log.AppendReplicated(b); err != nil {
		return err
	}
	if f.node.logger.Enabled(context.Background(), slog.LevelDebug) { // the replication path: no arguments built for nothing
		f.node.logger.Debug("replicated", "topic", f.topic, "partition", f.partition, "leader", f.leader,
			"leader_epoch", f.epoch, "from", from, "to", ol.EndOffset())
	}
	return ol.noteBatches(b)
}

// TruncateTo cuts the log, after removing the producer state snapshots
// past the cut, and marks the producer state stale: it recorded batches
// that are gone.
func (f *followerLog) TruncateTo(offset int64) error {
	return f.ol.truncate(func() error { return f.ol.Log.TruncateTo(offset) }, offset)
}

// TruncateFullyAndStartAt empties the log, and every producer state
// snapshot with it, and starts it at offset, the leader's local log start,
// or a little past it: see tieredStart.
func (f *followerLog) TruncateFullyAndStartAt(offset int64) error {
	start, snap, err := f.node.tieredStart(f.ol, f.topic, f.partition, offset)
	if err != nil {
		return err
	}
	f.node.logger.Info("follower log emptied: starting at the leader's log start", "topic", f.topic, "partition", f.partition,
		"leader_log_start", offset, "start", start, "producer_state", snap != nil)
	return f.ol.truncate(func() error {
		if err := f.ol.Log.TruncateFullyAndStartAt(start); err != nil {
			return err
		}
		if snap != nil {
			return writeSnapshotFile(f.ol.Dir(), start, snap, start)
		}
		return nil
	}, -1)
}

// tieredStart is where a follower whose log is behind the leader's local
// log start (offset) starts its log, and the producer state there. On a
// tiered partition, as Kafka's followers do, that is the end of the
// uploaded segment holding offset-1, with the state uploaded beside it:
// without it, this replica made leader would take a producer's retry of
// a batch from before its log start for a new one. Elsewhere it is offset
// itself, with no state from before.
func (n *Node) tieredStart(ol *openLog, topic string, p int32, offset int64) (int64, []byte, error) {
	if n.cfg.Tier == nil || !ol.tier.enabled.Load() || offset <= 0 {
		return offset, nil, nil
	}
	segs, err := n.manifest(meta.Partition{Topic: topic, Partition: p})
	if err != nil {
		return 0, nil, err
	}
	for _, s := range segs {
		if s.BaseOffset < offset && offset <= s.LastOffset+1 {
			ctx, cancel := context.WithTimeout(n.base, remoteProducersTimeout)
			snap, err := n.remoteProducers(ctx, s)
			cancel()
			if err != nil {
				return 0, nil, err
			}
			return s.LastOffset + 1, snap, nil
		}
	}
	return offset, nil, nil
}

// truncate runs cut after removing the snapshots past keep.
func (ol *openLog) truncate(cut func() error, keep int64) error {
	ol.snapshotMu.Lock() // no snapshot is being written meanwhile
	defer ol.snapshotMu.Unlock()
	ol.appendMu.Lock()
	defer ol.appendMu.Unlock()
	if err := removeProducerSnapshotsAbove(ol.Dir(), keep); err != nil {
		return fmt.Errorf("%w: remove producer state snapshots: %v", plog.ErrIO, err)
	}
	if ol.snapshotAt > keep {
		ol.snapshotAt = -1
	}
	ol.producersStale = true
	ol.tier.forgetProducers()
	if err := cut(); err != nil {
		return err
	}
	// Built again now rather than when this replica leads: meanwhile it
	// records what it appends and snapshots it, so local retention never
	// leaves it with no usable snapshot.
	if ps, at, err := loadProducers(ol.Log); err == nil {
		ol.setProducers(ps, at)
	}
	return nil
}

// replicaFetched is the leader's side of a follower's fetch at offset:
// it records the follower's log end and moves the high watermark. A
// fetch of another epoch is fenced; a fetch whose last epoch ended
// earlier here gets the diverging epoch, so the follower truncates.
func (n *Node) replicaFetched(ol *openLog, part meta.Partition, replicaID int32, rp *kmsg.FetchRequestTopicPartition,
	sp *kmsg.FetchResponseTopicPartition) (ok bool) {
	switch {
	case rp.CurrentLeaderEpoch > part.LeaderEpoch:
		sp.ErrorCode = kerr.UnknownLeaderEpoch.Code
		return false
	case rp.CurrentLeaderEpoch >= 0 && rp.CurrentLeaderEpoch < part.LeaderEpoch:
		sp.ErrorCode = kerr.FencedLeaderEpoch.Code
		return false
	}
	if rp.LastFetchedEpoch >= 0 {
		epoch, end := plog.EndOffsetForEpoch(n.epochHistory(ol, part), rp.LastFetchedEpoch, ol.EndOffset())
		if epoch != rp.LastFetchedEpoch || end < rp.FetchOffset {
			sp.DivergingEpoch.Epoch, sp.DivergingEpoch.EndOffset = epoch, end
			return false
		}
	}
	r := &ol.repl
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leader == nil {
		sp.ErrorCode = kerr.NotLeaderForPartition.Code
		return false
	}
	leo := ol.EndOffset()
	r.leader.Fetched(replicaID, rp.FetchOffset, leo, time.Now())
	if hw, moved := r.leader.Advance(leo); moved {
		ol.setHWLocked(hw)
		n.logHWLocked(ol, part.Topic, part.Partition, "fetch", replicaID, rp.FetchOffset)
	}
	return true
}

// logHWLocked tells, at debug level, how a led partition's high
// watermark moved: what each replica's log end was known to be then.
// Enough to replay any acknowledgement the fault suite doubts.
func (n *Node) logHWLocked(ol *openLog, topic string, partition int32, cause string, replica int32, fetchOffset int64) {
	if !n.logger.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	l := ol.repl.leader
	leos := make([]int64, 0, len(l.Replicas()))
	for _, id := range l.Replicas() {
		leos = append(leos, l.LogEndOffset(id))
	}
	n.logger.Debug("high watermark moved", "topic", topic, "partition", partition, "hw", l.HighWatermark(),
		"log_end", ol.EndOffset(), "cause", cause, "replica", replica, "fetch_offset", fetchOffset,
		"isr", l.ISR(), "adding", l.Adding(), "replicas", l.Replicas(), "replica_log_ends", leos)
}

// isrSize is the led partition's ISR size as last committed (0 when not
// leading).
func (ol *openLog) isrSize() int {
	ol.repl.mu.Lock()
	defer ol.repl.mu.Unlock()
	if ol.repl.leader == nil {
		return 0
	}
	return len(ol.repl.leader.ISR())
}

// appended moves a led partition's high watermark after an append (on a
// single replica it is the log end at once).
func (n *Node) appended(ol *openLog, topic string, partition int32) {
	r := &ol.repl
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leader == nil {
		return
	}
	if hw, moved := r.leader.Advance(ol.EndOffset()); moved {
		ol.setHWLocked(hw)
		n.logHWLocked(ol, topic, partition, "append", -1, -1)
	}
}

// errLeadershipMoved: the leader stopped leading while a produce waited.
var errLeadershipMoved = errors.New("node: leadership moved while waiting for replicas")

// waitReplicated waits until the high watermark passes last (acks=all),
// the ISR shrinks below minISR, leadership moves, or ctx ends.
func (n *Node) waitReplicated(ctx context.Context, ol *openLog, last int64, minISR int, epoch int32) int16 {
	for {
		ch := ol.repl.changedCh()
		ol.repl.mu.Lock()
		leader, hw, leading := ol.repl.leader, ol.repl.hw.Load(), ol.repl.epoch
		isr := 0
		if leader != nil {
			isr = len(leader.ISR())
		}
		ol.repl.mu.Unlock()
		switch {
		case leader == nil || leading != epoch:
			// Leadership moved, perhaps away and back: the offset
			// may hold another record now. The client retries.
			return kerr.NotLeaderForPartition.Code
		case isr < minISR:
			return kerr.NotEnoughReplicasAfterAppend.Code
		case hw > last:
			return 0
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return kerr.RequestTimedOut.Code
		}
	}
}

// rolesLoop brings roles in line with metadata each time this node's
// copy of its topics and partitions changes (offset commits and the like
// do not count), and asks for ISR changes a led partition needs.
func (n *Node) rolesLoop(ctx context.Context) {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.ReplicaCheckInterval)
	defer t.Stop()
	const unseen = ^uint64(0)
	seen := unseen
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.rolesKick:
			seen = unseen
		}
		if !n.caughtUp.Load() {
			// A node just started holds a stale copy of metadata: it
			// would lead partitions that moved on without it.
			if !n.cfg.Meta.Server().CaughtUp() {
				continue
			}
			n.caughtUp.Store(true)
		}
		if v := n.cfg.Meta.Server().FSM().Topology(); v != seen {
			if err := n.syncRoles(); err != nil {
				n.logger.Warn("replication: reading metadata", "error", err)
			} else {
				seen = v
			}
		}
		n.proposeISRChanges(ctx)
	}
}

// kickRoles makes rolesLoop look again now.
func (n *Node) kickRoles() {
	select {
	case n.rolesKick <- struct{}{}:
	default:
	}
}

// syncRoles leads, follows or drops each partition assigned here.
func (n *Node) syncRoles() error {
	v := n.cfg.Meta.Server().FSM().View()
	parts, err := v.AllPartitions()
	v.Close()
	if err != nil {
		return err
	}
	hosted := map[partitionKey]bool{}
	for _, part := range parts {
		if part.Leader != n.cfg.ID && !slices.Contains(part.Replicas, n.cfg.ID) {
			continue
		}
		hosted[partitionKey{part.Topic, part.Partition}] = true
		ol, kerrCode := n.openLog(part.Topic, part.Partition)
		if kerrCode != nil {
			continue
		}
		switch {
		case part.Leader == n.cfg.ID:
			n.lead(ol, part)
		case part.Leader >= 0:
			n.follow(ol, part)
		default:
			n.stopReplicating(ol)
		}
	}
	// Partitions of live topics no longer assigned here moved away: their
	// local copy goes (the tier keeps what was uploaded). Those of deleted
	// topics go with dropDeleted.
	live := map[string]bool{}
	for _, part := range parts {
		live[part.Topic] = true
	}
	fresh := n.cfg.Meta.Server().FSM().View()
	defer fresh.Close()
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, ol := range n.mu.logs {
		if hosted[k] || !live[k.topic] {
			continue
		}
		// Check again on the newest state: the partition may have come
		// back meanwhile.
		if p, ok, err := fresh.Partition(k.topic, k.partition); err != nil || !ok || p.Leader == n.cfg.ID || slices.Contains(p.Replicas, n.cfg.ID) {
			continue
		}
		n.logger.Info("partition moved to other nodes", "topic", k.topic, "partition", k.partition)
		n.dropLocked(k, ol, false)
	}
	return nil
}

// stopReplicating ends both roles (the partition is offline or was moved
// away).
func (n *Node) stopReplicating(ol *openLog) {
	r := &ol.repl
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.follower != nil {
		n.unfollowLocked(ol)
	}
	if r.leader != nil {
		r.leader = nil
		r.signalLocked()
	}
}

// proposeISRChanges asks the controller for the ISR each led partition
// should have now, one proposal in flight per partition. A node cut off
// NATS asks nothing: its followers' silence is its own. Both checks
// count: HearsHeartbeats remembers the others' heartbeats for a session
// timeout after a cut, and a leader that judged its followers by it
// shrank its ISRs to itself before it knew, leaving its partitions no
// other replica to fail over to once the controller moved them off it.
func (n *Node) proposeISRChanges(ctx context.Context) {
	if !n.cfg.Meta.HearsHeartbeats() || !n.cfg.Meta.HearsNATS() {
		return
	}
	logs := n.readyLogs()
	now := time.Now()
	live := map[int32]bool{}
	for _, node := range n.cfg.Meta.LiveNodes() {
		live[node.ID] = true
	}
	for k, ol := range logs {
		r := &ol.repl
		r.mu.Lock()
		if r.leader == nil || r.proposing || now.Before(r.proposeAfter) || r.partEpoch < r.awaitPartEpoch {
			r.mu.Unlock()
			continue
		}
		isr, changed := r.leader.WantISR(now)
		if changed {
			isr, changed = onlyLiveJoin(r.leader.ISR(), isr, live)
		}
		if !changed {
			r.mu.Unlock()
			continue
		}
		r.proposing = true
		r.leader.Proposing(isr) // the high watermark counts the maximal ISR until it resolves
		leader := r.leader
		cmd := &meta.AlterISR{Topic: k.topic, Partition: k.partition, Leader: n.cfg.ID, LeaderEpoch: r.epoch,
			ISR: isr, PartitionEpoch: r.partEpoch}
		from := r.leader.ISR()
		r.mu.Unlock()
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			res, err := n.cfg.Meta.Propose(pctx, cmd)
			rejected := err == nil && res.Err != nil // applied and refused: certainly not made
			if err == nil {
				err = res.Err
			}
			r.mu.Lock()
			r.proposing = false
			if err != nil {
				r.proposeAfter = time.Now().Add(isrRetryBackoff)
			}
			if rejected && r.leader == leader {
				// A proposal whose fate is unknown (a timeout) may yet
				// commit: its replicas keep counting until a committed
				// change arrives by SetReplicas.
				leader.ProposalFailed()
			}
			if err == nil && r.leader == leader {
				// Made: the controller may elect a replica it added at
				// once, before this node's metadata shows the change. Its
				// replicas count until it does, and nothing is proposed
				// from the older view meanwhile.
				leader.ProposalCommitted(isr)
				r.awaitPartEpoch = res.Partition.PartitionEpoch
			}
			r.mu.Unlock()
			switch {
			case errors.Is(err, meta.ErrStaleEpoch):
				// The partition changed meanwhile: the next look uses it.
				n.logger.Debug("replication: ISR change overtaken", "topic", k.topic, "partition", k.partition, "error", err)
				return
			case err != nil:
				n.logger.Warn("replication: ISR change not made; retrying", "topic", k.topic, "partition", k.partition,
					"isr", isr, "retry_in", isrRetryBackoff, "error", err)
				return
			}
			n.logger.Info("ISR changed", "topic", k.topic, "partition", k.partition, "from", from, "to", isr)
			if len(isr) < len(from) {
				n.counts.isrShrinks.Add(1)
			} else {
				n.counts.isrExpands.Add(1)
			}
			n.kickRoles()
		}()
	}
}

// onlyLiveJoin keeps out of a wanted ISR the replicas that would join it
// while the cluster does not count them alive: a node deaf to NATS still
// sends fetches, which can look caught up for a moment, but hears no
// answer; let in, it would leave again at once, over and over.
func onlyLiveJoin(current, want []int32, live map[int32]bool) ([]int32, bool) {
	out := make([]int32, 0, len(want))
	for _, id := range want {
		if slices.Contains(current, id) || live[id] {
			out = append(out, id)
		}
	}
	changed := len(out) != len(current)
	for _, id := range out {
		changed = changed || !slices.Contains(current, id)
	}
	return out, changed
}

// isrRetryBackoff spaces ISR change proposals after one failed.
const isrRetryBackoff = 500 * time.Millisecond

// minInsyncReplicas is a topic's min.insync.replicas (its configs are
// over the node's defaults already).
func minInsyncReplicas(configs map[string]string) int {
	if i, err := strconv.Atoi(configs["min.insync.replicas"]); err == nil {
		return i
	}
	return 1
}
