package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/rpc"
	"github.com/strata-io/strata/meta"
	plog "github.com/strata-io/strata/node/log"
	"github.com/strata-io/strata/node/replica"
	"github.com/strata-io/strata/tier"
)

// Config configures a node.
type Config struct {
	// Registry, when set, gets the node's Prometheus metrics (see
	// collector); NoPartitionMetrics leaves out the per-partition series.
	Registry           prometheus.Registerer
	NoPartitionMetrics bool
	ID                 int32
	Cluster            string
	DataDir            string // partition logs live in DataDir/<topic>-<partition>
	Conn               *nats.Conn
	// Meta is this node's member of the metadata group: the node reads
	// leadership and topic configs from its local copy.
	Meta        *meta.Member
	LogDefaults plog.Config
	// TopicDefaults are the broker-level topic configs LogDefaults came
	// from (local.retention.*, remote.storage.enable apply per topic).
	TopicDefaults map[string]string
	// Tier, when set, receives the closed segments of topics with
	// remote.storage.enable=true.
	Tier tier.Store
	// TierCacheDir holds chunks of remote segments being read (default
	// DataDir/.tier-cache); TierCacheBytes bounds it (default 1 GiB).
	TierCacheDir   string
	TierCacheBytes int64
	// TierOrphanGrace is how old an object no manifest references must be
	// before the reconciler removes it (default 1h); it must well exceed
	// the time a segment upload takes. TierReconcileInterval is how often
	// the metadata leader looks (default 10m).
	TierOrphanGrace       time.Duration
	TierReconcileInterval time.Duration
	// DiskHighWatermark is the fraction of the data disk in use above
	// which produce is refused with a retriable error (default 0.95);
	// DiskUsage reports the disk's use (default: statfs of DataDir).
	DiskHighWatermark float64
	DiskUsage         func() (used, total uint64, err error)
	// ReplicaLagMax is replica.lag.time.max.ms: a follower not caught up
	// for longer leaves the ISR (default 30s). ReplicaFetchWait is a
	// follower fetch's long poll (default 500ms). ReplicaCheckInterval is
	// how often roles and ISRs are checked (default 50ms).
	ReplicaLagMax        time.Duration
	ReplicaFetchWait     time.Duration
	ReplicaCheckInterval time.Duration
	// ShareIdle is how long a share-partition with nothing in flight
	// stays in memory unused (default 10 min); its state stays in the
	// metadata, and the next fetch loads it again.
	ShareIdle time.Duration
	Logger    *slog.Logger
	// MaintainInterval is how often logs roll, retain and flush by time
	// (default 1s).
	MaintainInterval time.Duration
	// Cleaner configures log compaction (cleaner.go).
	Cleaner CleanerSettings
}

// Node serves Kafka requests for the partitions it leads, over NATS.
type Node struct {
	cfg        Config
	logger     *slog.Logger
	collectors []prometheus.Collector // registered on cfg.Registry
	stages     *stages
	// counts are event counters for metrics.
	counts struct {
		isrShrinks, isrExpands, leaderships atomic.Int64
		// The cleaner's (cleaner.go).
		cleans, cleanErrors, cleanedBytes, reclaimedBytes atomic.Int64
		// The remote cleaner's (tiercompact.go).
		remoteCleans, remoteCleanErrors, remoteReadBytes atomic.Int64
		remoteWrittenBytes, remoteReclaimedBytes         atomic.Int64
		// Share groups' (share.go): state writes, records acquired,
		// acknowledgements by type.
		shareWrites, shareAcquired              atomic.Int64
		shareAcks                               [5]atomic.Int64
		shareDeadLetters, shareDeadLetterErrors atomic.Int64
	}
	sub *nats.Subscription
	// tierSubs answer tier admin requests (tiersvc.go).
	tierSubs []*nats.Subscription
	// base is cancelled by Close: long-polling fetches return at once.
	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// uploader copies closed segments of tiered topics to cfg.Tier.
	uploader *tier.Uploader
	// remote reads what was uploaded, for fetches below the local log.
	remote *tier.Reader
	// remoteTxnIdx caches uploaded segments' aborted transaction
	// indexes for read_committed reads of the tier (txn.go).
	remoteTxnIdx remoteTxnIndexes
	// reconciler is owned by reconcileLoop.
	reconciler reconciler
	// diskFull: the data disk is above its high-water mark (disk.go).
	diskFull atomic.Bool
	// caller sends node-to-node requests (follower fetches).
	caller *rpc.Caller
	// fetchers pull from each leader node (replication.go).
	replMu   sync.Mutex
	fetchers map[int32]*replica.Fetcher
	// rolesKick wakes rolesLoop; caughtUp is set by it once the metadata
	// copy was current, and read by requests, which a node does not
	// serve before (partition).
	rolesKick chan struct{}
	caughtUp  atomic.Bool
	// handlers answers each request on its own goroutine, so a
	// long-polling fetch does not hold up a produce.
	handlers *rpc.Pool
	// metas keeps what partition read of each partition and its topic
	// (partitionKey -> partMeta) at topology metasAt; it is emptied when
	// the topology moves.
	metas   sync.Map
	metasAt atomic.Uint64
	// topicIDs resolves topic ids for share requests (share.go).
	topicIDs atomic.Pointer[topicIDs]

	// shares are the share-partitions of the partitions this node leads
	// (share.go).
	shares shares

	// openSlots bounds the partitions opening at once (partitions.go).
	openSlots chan struct{}

	// mu guards the partition map and the append broadcast, and nothing
	// else: no disk or network I/O happens under it.
	mu struct {
		sync.Mutex
		logs map[partitionKey]*openLog
		// dropping holds, per partition being dropped, the channel
		// closed once its files are gone.
		dropping map[partitionKey]chan struct{}
		closed   bool // Close began: nothing opens any more
		// appended is closed and replaced on every append, waking
		// long-polling fetches.
		appended chan struct{}
	}
}

type partitionKey struct {
	topic     string
	partition int32
}

// openLog is an open partition log and the id of the topic it belongs to:
// a topic deleted and created again under the same name is another topic.
type openLog struct {
	*plog.Log // set before ready is closed; nil if the open failed
	topicID   [16]byte
	// ready is closed once the open finished; dropped once a drop did
	// (partitions.go).
	ready, dropped chan struct{}

	// appendMu makes an idempotent producer's sequence check and its
	// append one step; producers is what the check consults. Every batch
	// below the log end is in producers, unless producersStale (a
	// truncation cut batches it had recorded; the next leadership
	// rebuilds it).
	appendMu       sync.Mutex
	producers      producerStates // guarded by appendMu
	producersStale bool           // guarded by appendMu
	// snapshotAt is the offset of the newest producer state snapshot on
	// disk, -1 none (prodsnap.go). snapshotMu is held while one is
	// written, and by truncation, so that no snapshot written before a
	// cut lands after it. Lock order: snapshotMu, then appendMu.
	snapshotAt int64 // guarded by appendMu
	snapshotMu sync.Mutex
	// firstUnstable is producers.firstUnstable(), kept for fetches: the
	// first offset of the earliest open transaction (math.MaxInt64:
	// none). Written with appendMu held.
	firstUnstable atomic.Int64

	// configsP holds the topic configs the log was last set to (never
	// changed in place: a change stores a new map); configs reads them.
	configsP atomic.Pointer[map[string]string]
	tier     tierState
	repl     replState
	cleaner  cleanerStats
}

const maxConcurrentRequests = 1024

// Start subscribes the node to its Kafka subject and starts its
// maintenance loop.
func Start(cfg Config) (*Node, error) {
	if cfg.Conn == nil || cfg.Meta == nil {
		return nil, errors.New("node: needs a NATS connection and a metadata member")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaintainInterval <= 0 {
		cfg.MaintainInterval = time.Second
	}
	if cfg.Cleaner.Interval <= 0 {
		cfg.Cleaner.Interval = DefaultCleanerInterval
	}
	if cfg.Cleaner.DedupeBytes <= 0 {
		cfg.Cleaner.DedupeBytes = DefaultCleanerDedupeBytes
	}
	if cfg.TierOrphanGrace <= 0 {
		cfg.TierOrphanGrace = time.Hour
	}
	if cfg.TierReconcileInterval <= 0 {
		cfg.TierReconcileInterval = 10 * time.Minute
	}
	if cfg.DiskHighWatermark <= 0 {
		cfg.DiskHighWatermark = 0.95
	}
	if cfg.DiskUsage == nil {
		cfg.DiskUsage = statfsUsage(cfg.DataDir)
	}
	if cfg.ReplicaLagMax <= 0 {
		cfg.ReplicaLagMax = 30 * time.Second
	}
	if cfg.ShareIdle <= 0 {
		cfg.ShareIdle = defaultShareIdle
	}
	if cfg.ReplicaFetchWait <= 0 {
		cfg.ReplicaFetchWait = 500 * time.Millisecond
	}
	if cfg.ReplicaCheckInterval <= 0 {
		cfg.ReplicaCheckInterval = 50 * time.Millisecond
	}
	n := &Node{cfg: cfg, logger: cfg.Logger.With("node", cfg.ID), handlers: rpc.NewPool(maxConcurrentRequests),
		stages: newStages(strconv.Itoa(int(cfg.ID)))}
	n.mu.logs = map[partitionKey]*openLog{}
	n.mu.dropping = map[partitionKey]chan struct{}{}
	n.openSlots = make(chan struct{}, maxOpening)
	n.mu.appended = make(chan struct{})
	n.fetchers = map[int32]*replica.Fetcher{}
	n.shares.parts = map[sharePartKey]*sharePart{}
	n.rolesKick = make(chan struct{}, 1)
	caller, err := rpc.NewCaller(cfg.Conn)
	if err != nil {
		return nil, err
	}
	n.caller = caller
	sub, err := cfg.Conn.Subscribe(rpc.KafkaSubject(cfg.Cluster, cfg.ID), rpc.Gather(n.logger, n.handlers.Wrap(n.handle)))
	if err != nil {
		return nil, fmt.Errorf("node: subscribe: %w", err)
	}
	n.sub = sub
	n.base, n.cancel = context.WithCancel(context.Background())
	if cfg.Tier != nil {
		if n.cfg.TierCacheDir == "" {
			n.cfg.TierCacheDir = filepath.Join(cfg.DataDir, ".tier-cache")
		}
		r, err := tier.NewReader(tier.ReaderConfig{Store: cfg.Tier, CacheDir: n.cfg.TierCacheDir, CacheBytes: cfg.TierCacheBytes,
			Logger: n.logger.With("component", "tier")})
		if err != nil {
			sub.Unsubscribe()
			n.cancel()
			return nil, err
		}
		n.remote = r
		n.uploader = tier.NewUploader(tier.UploaderConfig{Store: cfg.Tier, Recorder: tierRecorder{cfg.Meta},
			MaxAttemptAge: n.cfg.TierOrphanGrace / 2, Logger: n.logger.With("component", "tier")})
	}
	if n.tierSubs, err = n.subscribeTier(); err != nil {
		sub.Unsubscribe()
		n.cancel()
		if n.remote != nil {
			n.remote.Close()
			n.uploader.Close()
		}
		return nil, err
	}
	n.checkDisk()
	n.wg.Add(4)
	go n.shareLoop(n.base)
	go n.maintainLoop(n.base)
	go n.rolesLoop(n.base)
	go n.cleanerLoop(n.base)
	if cfg.Tier != nil {
		n.wg.Add(1)
		go n.reconcileLoop(n.base)
	}
	if cfg.Registry != nil {
		n.collectors = []prometheus.Collector{newCollector(n), newGroupCollector(n), newShareCollector(n), n.stages.vec}
		for i, c := range n.collectors {
			if err := cfg.Registry.Register(c); err != nil {
				n.logger.Warn("metrics not registered", "error", err)
				n.collectors = n.collectors[:i]
				break
			}
		}
	}
	return n, nil
}

// Close stops serving and closes every log cleanly.
func (n *Node) Close() error {
	for _, c := range n.collectors {
		n.cfg.Registry.Unregister(c)
	}
	n.mu.Lock()
	n.mu.closed = true
	n.mu.Unlock()
	n.sub.Unsubscribe()
	for _, s := range n.tierSubs {
		s.Unsubscribe()
	}
	n.cancel()
	n.handlers.Close()
	n.wg.Wait()
	n.replMu.Lock()
	for _, f := range n.fetchers {
		f.Close()
	}
	n.replMu.Unlock()
	n.caller.Close()
	// Opens and drops under way have finished (n.wg): every partition in
	// the map is open or failed.
	logs := n.readyLogs()
	for _, l := range logs {
		l.tier.stop()
	}
	if n.uploader != nil {
		n.uploader.Close()
		n.remote.Close()
	}
	var err error
	for k, l := range logs {
		if e := l.Close(); e != nil {
			err = errors.Join(err, fmt.Errorf("%s-%d: %w", k.topic, k.partition, e))
		}
	}
	return err
}

// handle decodes a Kafka request body from NATS, serves it and replies
// with the response body at the same version.
func (n *Node) handle(msg *nats.Msg) {
	req, err := rpc.ReadKafka(msg)
	if err != nil {
		rpc.RespondError(n.cfg.Conn, msg, fmt.Errorf("node: %w", err))
		return
	}
	ctx, cancel := context.WithTimeout(n.base, 30*time.Second)
	defer cancel()
	appended := func() {
		if _, err := rpc.Progress(n.cfg.Conn, msg, rpc.ProgressAppended); err != nil {
			n.logger.Debug("interim produce reply failed", "error", err)
		}
	}
	resp, release, err := n.ServeKafka(ctx, req, msg.Header.Get(rpc.HeaderTierRead) != "", appended)
	if err != nil {
		rpc.RespondError(n.cfg.Conn, msg, err)
		return
	}
	// release: the response is encoded, its record data copied.
	start := time.Now()
	if err := rpc.RespondKafka(n.cfg.Conn, msg, req, resp, release); err != nil {
		n.logger.Warn("reply failed", "api", kmsg.NameForKey(req.Key()), "error", err)
	}
	n.stages.responded(req, time.Since(start))
}

// Responded records how long a response to req took to encode and send,
// for a transport outside the node (internal/stream).
func (n *Node) Responded(req kmsg.Request, took time.Duration) { n.stages.responded(req, took) }

// Ready reports whether the node serves: connected to NATS and caught
// up with the metadata, so it has taken up the roles it holds (leading
// or following each partition).
func (n *Node) Ready() error {
	if !n.cfg.Conn.IsConnected() {
		return errors.New("not connected to NATS")
	}
	if !n.caughtUp.Load() {
		return errors.New("catching up with the metadata")
	}
	return nil
}

// ServeKafka answers a Kafka request as the node's NATS subject does, for
// a gateway in the same process (strata dev): nothing is encoded and
// nothing crosses NATS. tierRead is rpc.HeaderTierRead; appended is called
// once every partition of a produce is appended. release, never nil,
// must be called once the response's record data is no longer used.
func (n *Node) ServeKafka(ctx context.Context, req kmsg.Request, tierRead bool, appended func()) (kmsg.Response, func(), error) {
	release := func() {}
	if appended == nil {
		appended = func() {}
	}
	var resp kmsg.Response
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		resp = n.produce(ctx, r, appended)
	case *kmsg.FetchRequest:
		resp, release = n.fetch(ctx, r, tierRead)
	case *kmsg.ListOffsetsRequest:
		resp = n.listOffsets(ctx, r)
	case *kmsg.DeleteRecordsRequest:
		resp = n.deleteRecords(ctx, r)
	case *kmsg.OffsetForLeaderEpochRequest:
		resp = n.offsetForLeaderEpoch(r)
	case *kmsg.DescribeLogDirsRequest:
		resp = n.describeLogDirs(r)
	case *kmsg.WriteTxnMarkersRequest:
		resp = n.writeTxnMarkers(ctx, r)
	case *kmsg.DescribeProducersRequest:
		resp = n.describeProducers(r)
	case *kmsg.ShareFetchRequest:
		resp = n.shareFetch(ctx, r)
	case *kmsg.ShareAcknowledgeRequest:
		resp = n.shareAcknowledge(ctx, r)
	default:
		return nil, release, fmt.Errorf("node: %s is not served by nodes", kmsg.NameForKey(req.Key()))
	}
	resp.SetVersion(req.GetVersion())
	return resp, release, nil
}

// partition returns the log of a partition this node leads, opening it on
// first use, with its metadata.
func (n *Node) partition(topic string, p int32) (*openLog, meta.Partition, *kerr.Error) {
	m, err := n.partitionMeta(topic, p)
	part, t := m.part, m.topic
	switch {
	case err != nil:
		return nil, part, kerr.UnknownServerError
	case !m.ok:
		return nil, part, kerr.UnknownTopicOrPartition
	case part.Leader != n.cfg.ID:
		return nil, part, kerr.NotLeaderForPartition
	case !n.caughtUp.Load():
		// A node just started reads a stale copy of metadata: the
		// leadership it shows may have moved on, and the log behind it
		// may lack what the real leader acknowledged since. Clients
		// ask again.
		return nil, part, kerr.NotLeaderForPartition
	}
	ol, kerrCode := n.openLogOf(t, p)
	if kerrCode != nil {
		return nil, part, kerrCode
	}
	ol.repl.mu.Lock()
	current := ol.repl.leader != nil && ol.repl.epoch == part.LeaderEpoch
	ol.repl.mu.Unlock()
	if !current {
		n.lead(ol, part) // before rolesLoop got to it
	}
	return ol, part, nil
}

// partMeta is a partition and its topic as the metadata had them at a
// topology version (ok: both exist). Shared: read only.
type partMeta struct {
	topology uint64
	part     meta.Partition
	topic    meta.Topic
	ok       bool
}

// partitionMeta reads a partition and its topic, from metas while the
// metadata's topology has not moved: every request reads them, and a
// Badger read and decode each time showed in profiles.
func (n *Node) partitionMeta(topic string, p int32) (partMeta, error) {
	fsm := n.cfg.Meta.Server().FSM()
	topology := fsm.Topology() // before the view: see FSM.Topology
	if at := n.metasAt.Load(); at != topology && n.metasAt.CompareAndSwap(at, topology) {
		n.metas.Clear() // drops deleted topics' partitions too
	}
	key := partitionKey{topic, p}
	if c, ok := n.metas.Load(key); ok && c.(partMeta).topology == topology {
		return c.(partMeta), nil
	}
	m := partMeta{topology: topology}
	v := fsm.View()
	part, ok, err := v.Partition(topic, p)
	var t meta.Topic
	if err == nil && ok {
		t, ok, err = v.Topic(topic)
	}
	v.Close()
	if err != nil {
		return m, err
	}
	m.part, m.topic, m.ok = part, t, ok
	if ok { // a name no topic has is not kept: clients may send any
		n.metas.Store(key, m)
	}
	return m, nil
}

// openLog returns a hosted partition's log, opening it on first use.
func (n *Node) openLog(topic string, p int32) (*openLog, *kerr.Error) {
	m, err := n.partitionMeta(topic, p)
	switch {
	case err != nil:
		return nil, kerr.UnknownServerError
	case !m.ok:
		return nil, kerr.UnknownTopicOrPartition
	}
	return n.openLogOf(m.topic, p)
}

func (n *Node) partitionDir(topic string, p int32) string {
	return filepath.Join(n.cfg.DataDir, fmt.Sprintf("%s-%d", topic, p))
}

// partitionMetadataFile names the topic id a partition directory belongs
// to (Kafka's partition.metadata).
const partitionMetadataFile = "partition.metadata"

// claimPartitionDir makes dir belong to the topic with id: a directory
// left by an earlier topic of the same name is emptied first.
func claimPartitionDir(dir string, id [16]byte) error {
	want := "version: 0\ntopic_id: " + hex.EncodeToString(id[:]) + "\n"
	path := filepath.Join(dir, partitionMetadataFile)
	got, err := os.ReadFile(path)
	if err == nil && string(got) == want {
		return nil
	}
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(want), 0o644)
}

func (n *Node) notifyAppended() {
	n.mu.Lock()
	close(n.mu.appended)
	n.mu.appended = make(chan struct{})
	n.mu.Unlock()
}

func (n *Node) appendedCh() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.appended
}

func (n *Node) maintainLoop(ctx context.Context) {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.MaintainInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n.checkDisk()
		n.dropDeleted()
		logs := n.readyLogs()
		n.refreshConfigs(logs)
		for k, l := range logs {
			n.enqueueUploads(k, l)
			if err := n.retainRemote(ctx, k, l); err != nil {
				n.logger.Warn("tier: retention", "topic", k.topic, "partition", k.partition, "error", err)
			}
			if err := n.deleteRetired(ctx, k, l); err != nil {
				n.logger.Warn("tier: deleting replaced segments", "topic", k.topic, "partition", k.partition, "error", err)
			}
			if err := n.writeManifest(ctx, k, l); err != nil {
				n.logger.Warn("tier: writing the partition's manifest to the store", "topic", k.topic, "partition", k.partition, "error", err)
			}
			if err := l.snapshotProducers(); err != nil {
				n.logger.Warn("producer state snapshot", "topic", k.topic, "partition", k.partition, "error", err)
			}
			if deleted, err := l.Maintain(); err != nil {
				n.logger.Warn("log maintenance", "topic", k.topic, "partition", k.partition, "error", err)
			} else if deleted > 0 {
				n.logger.Debug("retention deleted segments", "topic", k.topic, "partition", k.partition, "segments", deleted)
			}
		}
	}
}

// dropDeleted closes and deletes the logs of topics that no longer exist.
func (n *Node) dropDeleted() {
	v := n.cfg.Meta.Server().FSM().View()
	defer v.Close()
	n.mu.Lock()
	defer n.mu.Unlock()
	for key, l := range n.mu.logs {
		t, ok, err := v.Topic(key.topic)
		if err == nil && (!ok || t.ID != l.topicID) {
			n.dropLocked(key, l, true)
		}
	}
}

// configs are the topic configs the log was last set to.
func (ol *openLog) configs() map[string]string {
	if p := ol.configsP.Load(); p != nil {
		return *p
	}
	return nil
}

func (ol *openLog) setConfigs(c map[string]string) { ol.configsP.Store(&c) }
