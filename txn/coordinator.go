// Package txn is Kafka's transaction coordinator. It runs on the
// controller beside the group coordinator, with every transaction's
// state in the metadata Raft group (meta.Transaction), so a new
// controller carries each one on: it writes the markers of every
// prepared transaction and aborts those past their timeout.
package txn

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/meta"
)

// Defaults, as Kafka's.
const (
	// DefaultMaxTimeout is transaction.max.timeout.ms.
	DefaultMaxTimeout = 15 * time.Minute
	// DefaultIDExpiration is transactional.id.expiration.ms: a
	// transactional id idle (at rest) this long is forgotten.
	DefaultIDExpiration = 7 * 24 * time.Hour
	// DefaultInterval is how often the coordinator looks for transactions
	// to complete or expire (Kafka checks expiry every 10 s; completing
	// markers promptly matters more).
	DefaultInterval = 100 * time.Millisecond
)

// Store is the metadata: proposals and reads of the controller's copy.
type Store interface {
	Propose(ctx context.Context, cmd meta.Command) (*meta.ApplyResult, error)
	View() *meta.View
}

// MarkerSender asks a partition leader to write transaction markers.
type MarkerSender func(ctx context.Context, node int32, req *kmsg.WriteTxnMarkersRequest) (*kmsg.WriteTxnMarkersResponse, error)

// MemberCheck fences TxnOffsetCommit by group generation (KIP-447): a
// Kafka error code, 0 when member is in group at generation.
type MemberCheck func(group, member string, generation int32) int16

// Config configures a Coordinator.
type Config struct {
	Store   Store
	Markers MarkerSender
	Members MemberCheck
	// Epoch is the coordinator epoch markers carry: a partition refuses
	// markers of an older one, so a former controller's late marker
	// cannot end a newer transaction.
	Epoch      int32
	MaxTimeout time.Duration
	// IDExpiration: see DefaultIDExpiration.
	IDExpiration time.Duration
	Interval     time.Duration
	Logger       *slog.Logger
}

// Coordinator serves the transactional APIs and completes transactions.
type Coordinator struct {
	cfg    Config
	kick   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu struct {
		sync.Mutex
		inFlight map[string]bool // transactions whose markers are being written
		waiters  map[string][]chan struct{}
	}
}

// New starts a coordinator; Close stops it.
func New(cfg Config) *Coordinator {
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = DefaultMaxTimeout
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.IDExpiration <= 0 {
		cfg.IDExpiration = DefaultIDExpiration
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Coordinator{cfg: cfg, kick: make(chan struct{}, 1), cancel: cancel}
	c.mu.inFlight = map[string]bool{}
	c.mu.waiters = map[string][]chan struct{}{}
	c.wg.Add(1)
	go c.loop(ctx)
	return c
}

// Close stops the coordinator and waits for its work in flight.
func (c *Coordinator) Close() {
	c.cancel()
	c.wg.Wait()
}

func (c *Coordinator) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// propose applies cmd and returns the transaction it answered with; a
// refusal comes back as its error, with the transaction when the
// command changed it anyway (InitTxn aborting an ongoing one).
func (c *Coordinator) propose(ctx context.Context, cmd meta.Command) (*meta.Transaction, error) {
	res, err := c.cfg.Store.Propose(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return res.Txn, res.Err
}

// code maps a transaction command's error to Kafka's: the metadata's
// refusals to theirs, anything else (no longer the controller, a
// timeout) to NOT_COORDINATOR, so the client finds the coordinator
// again and retries.
func code(err error, version int16) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, meta.ErrProducerFenced):
		if version < 3 {
			return kerr.InvalidProducerEpoch.Code
		}
		return kerr.ProducerFenced.Code
	case errors.Is(err, meta.ErrInvalidProducerIDMapping):
		return kerr.InvalidProducerIDMapping.Code
	case errors.Is(err, meta.ErrConcurrentTransactions):
		return kerr.ConcurrentTransactions.Code
	case errors.Is(err, meta.ErrInvalidTxnState):
		return kerr.InvalidTxnState.Code
	case errors.Is(err, meta.ErrUnknownTransactionalID):
		return kerr.TransactionalIDNotFound.Code
	case errors.Is(err, meta.ErrUnknownTopic):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, meta.ErrInvalidRequest):
		return kerr.InvalidRequest.Code
	}
	return kerr.NotCoordinator.Code
}

// InitProducerID gives a transactional producer its id and epoch,
// fencing the one before it; an ongoing transaction of the id is
// aborted first (CONCURRENT_TRANSACTIONS: the client retries).
func (c *Coordinator) InitProducerID(ctx context.Context, req *kmsg.InitProducerIDRequest) *kmsg.InitProducerIDResponse {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	timeout := time.Duration(req.TransactionTimeoutMillis) * time.Millisecond
	if req.TransactionTimeoutMillis <= 0 || timeout > c.cfg.MaxTimeout {
		resp.ErrorCode = kerr.InvalidTransactionTimeout.Code
		return resp
	}
	pid, epoch := int64(-1), int16(-1)
	if req.Version >= 3 {
		pid, epoch = req.ProducerID, req.ProducerEpoch
	}
	t, err := c.propose(ctx, &meta.InitTxn{ID: *req.TransactionalID, TimeoutMs: req.TransactionTimeoutMillis,
		ProducerID: pid, Epoch: epoch, NowMs: time.Now().UnixMilli()})
	if errors.Is(err, meta.ErrConcurrentTransactions) {
		c.wake() // the abort it started, or the one under way
	}
	if resp.ErrorCode = code(err, req.Version); resp.ErrorCode == 0 {
		resp.ProducerID, resp.ProducerEpoch = t.ProducerID, t.Epoch
	}
	return resp
}

// v2 reports whether the cluster runs transactions v2 (KIP-890 part 2).
func (c *Coordinator) v2() bool {
	v := c.cfg.Store.View()
	defer v.Close()
	return v.TxnV2()
}

// partitionsResult answers each partition of topics with code.
type topicPartitions struct {
	topic      string
	partitions []int32
}

// addPartitions adds partitions to a producer's transaction, answering
// per partition as Kafka does: an unknown one gets
// UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED.
func (c *Coordinator) addPartitions(ctx context.Context, id string, pid int64, epoch int16, topics []topicPartitions, verifyOnly bool, version int16) map[string]map[int32]int16 {
	out := map[string]map[int32]int16{}
	set := func(code func(topic string, p int32) int16) {
		for _, t := range topics {
			if out[t.topic] == nil {
				out[t.topic] = map[int32]int16{}
			}
			for _, p := range t.partitions {
				out[t.topic][p] = code(t.topic, p)
			}
		}
	}
	v := c.cfg.Store.View()
	unknown := map[meta.TxnPartition]bool{}
	var add []meta.TxnPartition
	for _, t := range topics {
		for _, p := range t.partitions {
			tp := meta.TxnPartition{Topic: t.topic, Partition: p}
			if _, ok, err := v.Partition(t.topic, p); err != nil || !ok {
				unknown[tp] = true
			}
			add = append(add, tp)
		}
	}
	current, ok, err := v.Transaction(id)
	v.Close()
	if len(unknown) > 0 {
		set(func(topic string, p int32) int16 {
			if unknown[meta.TxnPartition{Topic: topic, Partition: p}] {
				return kerr.UnknownTopicOrPartition.Code
			}
			return kerr.OperationNotAttempted.Code
		})
		return out
	}
	if verifyOnly {
		// A leader asking whether the transaction holds these.
		set(func(topic string, p int32) int16 {
			if err == nil && ok && current.ProducerID == pid && current.Epoch == epoch && current.State == meta.TxnOngoing {
				for _, tp := range current.Partitions {
					if tp.Topic == topic && tp.Partition == p {
						return 0
					}
				}
			}
			return kerr.InvalidTxnState.Code
		})
		return out
	}
	_, err = c.propose(ctx, &meta.AddTxnPartitions{ID: id, ProducerID: pid, Epoch: epoch, Partitions: add, NowMs: time.Now().UnixMilli()})
	ec := code(err, version)
	set(func(string, int32) int16 { return ec })
	return out
}

// AddPartitionsToTxn adds partitions to transactions: v0-3 one
// transaction, v4+ a batch of them.
func (c *Coordinator) AddPartitionsToTxn(ctx context.Context, req *kmsg.AddPartitionsToTxnRequest) *kmsg.AddPartitionsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	if req.Version < 4 {
		var topics []topicPartitions
		for _, t := range req.Topics {
			topics = append(topics, topicPartitions{t.Topic, t.Partitions})
		}
		for topic, ps := range c.addPartitions(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, topics, false, req.Version) {
			rt := kmsg.NewAddPartitionsToTxnResponseTopic()
			rt.Topic = topic
			for p, ec := range ps {
				rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p, ec
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	for _, tx := range req.Transactions {
		var topics []topicPartitions
		for _, t := range tx.Topics {
			topics = append(topics, topicPartitions{t.Topic, t.Partitions})
		}
		rtx := kmsg.NewAddPartitionsToTxnResponseTransaction()
		rtx.TransactionalID = tx.TransactionalID
		for topic, ps := range c.addPartitions(ctx, tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, topics, tx.VerifyOnly, req.Version) {
			rt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
			rt.Topic = topic
			for p, ec := range ps {
				rp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
				rp.Partition, rp.ErrorCode = p, ec
				rt.Partitions = append(rt.Partitions, rp)
			}
			rtx.Topics = append(rtx.Topics, rt)
		}
		resp.Transactions = append(resp.Transactions, rtx)
	}
	return resp
}

// AddOffsetsToTxn adds a group to the producer's transaction, so that
// TxnOffsetCommit may commit its offsets in it.
func (c *Coordinator) AddOffsetsToTxn(ctx context.Context, req *kmsg.AddOffsetsToTxnRequest) *kmsg.AddOffsetsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	_, err := c.propose(ctx, &meta.AddTxnPartitions{ID: req.TransactionalID, ProducerID: req.ProducerID, Epoch: req.ProducerEpoch,
		Groups: []string{req.Group}, NowMs: time.Now().UnixMilli()})
	resp.ErrorCode = code(err, req.Version)
	return resp
}

// TxnOffsetCommit commits offsets in the producer's transaction: they
// reach the group only if it commits.
func (c *Coordinator) TxnOffsetCommit(ctx context.Context, req *kmsg.TxnOffsetCommitRequest) *kmsg.TxnOffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	ec := int16(0)
	if c.cfg.Members != nil {
		ec = c.cfg.Members(req.Group, req.MemberID, req.Generation)
	}
	var offsets []meta.Offset
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			md := ""
			if p.Metadata != nil {
				md = *p.Metadata
			}
			offsets = append(offsets, meta.Offset{Group: req.Group, Topic: t.Topic, Partition: p.Partition, Offset: p.Offset,
				LeaderEpoch: p.LeaderEpoch, Metadata: md})
		}
	}
	if ec == 0 {
		// From v5 under transactions v2 the commit adds its group to the
		// transaction itself (no AddOffsetsToTxn).
		_, err := c.propose(ctx, &meta.TxnCommitOffsets{ID: req.TransactionalID, ProducerID: req.ProducerID, Epoch: req.ProducerEpoch,
			Group: req.Group, Offsets: offsets, NowMs: time.Now().UnixMilli(), AddGroup: req.Version >= 5 && c.v2()})
		ec = code(err, req.Version)
	}
	for _, t := range req.Topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, ec
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// endWait bounds how long EndTxn waits for the markers before answering:
// the decision is durable once prepared, and a client that sends its
// next transaction's requests early is told CONCURRENT_TRANSACTIONS and
// retries; answering once the markers are written spares it that.
const endWait = 10 * time.Second

// EndTxn commits or aborts the producer's transaction: the decision is
// recorded (PrepareCommit or PrepareAbort), then the coordinator writes
// the markers and completes it. From v5 under transactions v2 the epoch
// is bumped and the answer carries the producer id and epoch to use
// next.
func (c *Coordinator) EndTxn(ctx context.Context, req *kmsg.EndTxnRequest) *kmsg.EndTxnResponse {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	v2 := req.Version >= 5 && c.v2()
	t, err := c.propose(ctx, &meta.EndTxn{ID: req.TransactionalID, ProducerID: req.ProducerID, Epoch: req.ProducerEpoch,
		Commit: req.Commit, NowMs: time.Now().UnixMilli(), V2: v2})
	if err != nil {
		resp.ErrorCode = code(err, req.Version)
		return resp
	}
	if v2 {
		resp.ProducerID, resp.ProducerEpoch = t.ClientProducer()
	}
	var done chan struct{}
	if t.State == meta.TxnPrepareCommit || t.State == meta.TxnPrepareAbort {
		done = c.waitFor(t.ID)
		c.wake()
	}
	if done != nil {
		wctx, cancel := context.WithTimeout(ctx, endWait)
		defer cancel()
		select {
		case <-done:
		case <-wctx.Done():
		}
	}
	return resp
}

// waitFor returns a channel closed once transaction id completes.
func (c *Coordinator) waitFor(id string) chan struct{} {
	ch := make(chan struct{})
	c.mu.Lock()
	c.mu.waiters[id] = append(c.mu.waiters[id], ch)
	c.mu.Unlock()
	return ch
}

func (c *Coordinator) completed(id string) {
	c.mu.Lock()
	ws := c.mu.waiters[id]
	delete(c.mu.waiters, id)
	delete(c.mu.inFlight, id)
	c.mu.Unlock()
	for _, ch := range ws {
		close(ch)
	}
}

// loop completes prepared transactions and expires those past their
// timeout.
func (c *Coordinator) loop(ctx context.Context) {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.kick:
		}
		c.tick(ctx)
	}
}

func (c *Coordinator) tick(ctx context.Context) {
	v := c.cfg.Store.View()
	txns, err := v.Transactions()
	v.Close()
	if err != nil {
		c.cfg.Logger.Warn("transactions unreadable", "error", err)
		return
	}
	now := time.Now().UnixMilli()
	for _, t := range txns {
		switch t.State {
		case meta.TxnPrepareCommit, meta.TxnPrepareAbort:
			c.mu.Lock()
			busy := c.mu.inFlight[t.ID]
			c.mu.inFlight[t.ID] = true
			c.mu.Unlock()
			if !busy {
				c.wg.Add(1)
				go func() {
					defer c.wg.Done()
					c.complete(ctx, t)
				}()
			}
		case meta.TxnEmpty, meta.TxnCompleteCommit, meta.TxnCompleteAbort:
			if now-t.UpdateMs > c.cfg.IDExpiration.Milliseconds() {
				c.cfg.Logger.Info("transactional id idle past transactional.id.expiration.ms: forgetting it", "transactional_id", t.ID,
					"producer_id", t.ProducerID, "idle", (time.Duration(now-t.UpdateMs) * time.Millisecond).Round(time.Second))
				c.propose(ctx, &meta.ForgetTxn{ID: t.ID, UpdateMs: t.UpdateMs})
			}
		case meta.TxnOngoing:
			if now-t.StartMs > int64(t.TimeoutMs) {
				c.cfg.Logger.Info("transaction timed out: aborting it", "transactional_id", t.ID, "producer_id", t.ProducerID,
					"epoch", t.Epoch, "timeout_ms", t.TimeoutMs)
				if _, err := c.propose(ctx, &meta.ExpireTxn{ID: t.ID, ProducerID: t.ProducerID, Epoch: t.Epoch, NowMs: now}); err == nil {
					c.wake()
				}
			}
		}
	}
}

// complete writes a prepared transaction's markers, each partition to
// its leader, then records it complete. A partition that fails is tried
// again on a later tick; one whose topic is gone needs none.
func (c *Coordinator) complete(ctx context.Context, t meta.Transaction) {
	defer func() {
		c.mu.Lock()
		delete(c.mu.inFlight, t.ID)
		c.mu.Unlock()
	}()
	byLeader := map[int32][]meta.TxnPartition{}
	v := c.cfg.Store.View()
	// The tick that started this read the transactions before an earlier
	// completion of this one may have been applied: markers written
	// again now would end the producer's next transaction on the
	// partitions it has already reached (the epoch is the same).
	now, ok, err := v.Transaction(t.ID)
	if err != nil || !ok || now.ProducerID != t.ProducerID || now.Epoch != t.Epoch || now.State != t.State || now.UpdateMs != t.UpdateMs {
		v.Close()
		return
	}
	for _, tp := range t.Partitions {
		p, ok, err := v.Partition(tp.Topic, tp.Partition)
		switch {
		case err != nil:
			v.Close()
			return
		case !ok:
			continue // deleted: nothing to mark
		case p.Leader < 0:
			v.Close()
			return // offline: try again later
		}
		byLeader[p.Leader] = append(byLeader[p.Leader], tp)
	}
	v.Close()
	commit := t.State == meta.TxnPrepareCommit
	ok = true
	var mu sync.Mutex
	var wg sync.WaitGroup
	for leader, tps := range byLeader {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.writeMarkers(ctx, leader, t, commit, tps); err != nil {
				c.cfg.Logger.Debug("transaction markers not written yet", "transactional_id", t.ID, "leader", leader, "error", err)
				mu.Lock()
				ok = false
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if !ok {
		return
	}
	res, err := c.cfg.Store.Propose(ctx, &meta.CompleteTxn{ID: t.ID, ProducerID: t.ProducerID, Epoch: t.Epoch, NowMs: time.Now().UnixMilli()})
	if err == nil && res.Err == nil {
		c.completed(t.ID)
	}
}

// markerTimeout bounds one WriteTxnMarkers request.
const markerTimeout = 30 * time.Second

func (c *Coordinator) writeMarkers(ctx context.Context, leader int32, t meta.Transaction, commit bool, tps []meta.TxnPartition) error {
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch = t.ProducerID, t.Epoch, commit, c.cfg.Epoch
	byTopic := map[string]int{}
	for _, tp := range tps {
		i, ok := byTopic[tp.Topic]
		if !ok {
			i = len(m.Topics)
			byTopic[tp.Topic] = i
			mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
			mt.Topic = tp.Topic
			m.Topics = append(m.Topics, mt)
		}
		m.Topics[i].Partitions = append(m.Topics[i].Partitions, tp.Partition)
	}
	req.Markers = append(req.Markers, m)
	rctx, cancel := context.WithTimeout(ctx, markerTimeout)
	defer cancel()
	resp, err := c.cfg.Markers(rctx, leader, req)
	if err != nil {
		return err
	}
	for _, rm := range resp.Markers {
		for _, rt := range rm.Topics {
			for _, rp := range rt.Partitions {
				if rp.ErrorCode != 0 && rp.ErrorCode != kerr.UnknownTopicOrPartition.Code {
					return kerr.ErrorForCode(rp.ErrorCode)
				}
			}
		}
	}
	return nil
}

// EpochOf turns a Raft term into a coordinator epoch.
func EpochOf(term uint64) int32 { return int32(min(term, math.MaxInt32)) }
