package node

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/rpc"
	"github.com/strata-io/strata/meta"
)

// collector exports a node's partition and tier figures to Prometheus,
// read at scrape time from the open logs, this node's copy of the
// metadata and the uploader: nothing is kept in step on the data path.
// Per-partition series (log end, high watermark, log start, size,
// segments, upload lag) can be switched off (Config.NoPartitionMetrics);
// the node-wide ones stay.
type collector struct {
	n *Node

	logEnd, hw, logStart, size, segments   *prometheus.Desc
	uploadLagBytes, uploadLagSec, remoteSz *prometheus.Desc
	led, underReplicated, underMinISR      *prometheus.Desc
	lagBytesTotal, uploadedTotal           *prometheus.Desc
	uploadsTotal, uploadErrors             *prometheus.Desc
	cacheHits, cacheMisses, fetchedTotal   *prometheus.Desc
	diskUsed, diskHigh, diskFull, offline  *prometheus.Desc
	isrShrinks, isrExpands, leaderships    *prometheus.Desc
	dirtyRatio, cleanedTo, reclaimed       *prometheus.Desc
	cleans, cleanErrors, cleanedBytes      *prometheus.Desc
	reclaimedTotal                         *prometheus.Desc
	// The remote cleaner's (tiercompact.go).
	remoteDirty, remoteCleanedTo, remoteReclaimed *prometheus.Desc
	remoteCleans, remoteErrors, remoteRead        *prometheus.Desc
	remoteWritten, remoteReclaimedTotal           *prometheus.Desc
}

func newCollector(n *Node) *collector {
	part := []string{"topic", "partition"}
	d := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, prometheus.Labels{"node": strconv.Itoa(int(n.cfg.ID))})
	}
	return &collector{n: n,
		logEnd:               d("strata_partition_log_end_offset", "Offset after the last record in this replica's log.", part),
		hw:                   d("strata_partition_high_watermark", "Offset below which records are replicated and readable (leaders and followers).", part),
		logStart:             d("strata_partition_log_start_offset", "First offset of the partition, uploaded history included.", part),
		size:                 d("strata_partition_size_bytes", "Bytes of this replica's log on local disk.", part),
		segments:             d("strata_partition_segments", "Segments of this replica's log on local disk.", part),
		uploadLagBytes:       d("strata_tier_upload_lag_bytes", "Bytes of closed segments not yet uploaded, on partitions this node leads.", part),
		uploadLagSec:         d("strata_tier_upload_lag_seconds", "Age of the oldest closed segment not yet uploaded (0: none), on partitions this node leads.", part),
		remoteSz:             d("strata_tier_remote_bytes", "Bytes of the partition's uploaded segments, on partitions this node leads.", part),
		led:                  d("strata_partitions_leader", "Partitions this node leads.", nil),
		underReplicated:      d("strata_partitions_under_replicated", "Partitions this node leads with fewer replicas in sync than assigned.", nil),
		underMinISR:          d("strata_partitions_under_min_isr", "Partitions this node leads with fewer replicas in sync than min.insync.replicas: acks=all produce is refused.", nil),
		lagBytesTotal:        d("strata_tier_upload_lag_bytes_sum", "Bytes of closed segments not yet uploaded, over the partitions this node leads.", nil),
		uploadedTotal:        d("strata_tier_uploaded_bytes_total", "Bytes of segments uploaded to the object store by this process.", nil),
		uploadsTotal:         d("strata_tier_uploads_total", "Segments uploaded to the object store by this process.", nil),
		uploadErrors:         d("strata_tier_upload_errors_total", "Segment upload attempts that failed (each is retried).", nil),
		cacheHits:            d("strata_tier_chunk_cache_hits_total", "Remote reads served from the chunk cache.", nil),
		cacheMisses:          d("strata_tier_chunk_cache_misses_total", "Remote reads that had to fetch their chunk from the store.", nil),
		fetchedTotal:         d("strata_tier_fetched_bytes_total", "Bytes fetched from the object store for remote reads.", nil),
		diskUsed:             d("strata_disk_used_ratio", "Fraction of the data disk in use.", nil),
		diskHigh:             d("strata_disk_high_watermark_ratio", "Fraction of the data disk above which produce is refused (--disk-high-watermark).", nil),
		diskFull:             d("strata_disk_full", "1 while the data disk is above its high-water mark and produce is refused.", nil),
		offline:              d("strata_partitions_offline", "Partitions with no leader (reported by the controller).", nil),
		isrShrinks:           d("strata_isr_shrinks_total", "ISR changes this node made as leader that removed lagging replicas (the controller's removals of dead ones: strata_controller_isr_shrinks_total).", nil),
		isrExpands:           d("strata_isr_expands_total", "ISR changes this node made as leader that added caught-up replicas back.", nil),
		leaderships:          d("strata_leader_elections_total", "Times this node began leading a partition (elections and moves).", nil),
		dirtyRatio:           d("strata_log_cleaner_dirty_ratio", "Fraction of the cleanable part of a compacted partition's log not yet cleaned (compared with min.cleanable.dirty.ratio).", part),
		cleanedTo:            d("strata_log_cleaner_cleaned_offset", "The cleaner checkpoint of a compacted partition: below it each key appears once.", part),
		reclaimed:            d("strata_log_cleaner_reclaimed_bytes", "Bytes the cleaner removed from a compacted partition's log since it was opened here.", part),
		cleans:               d("strata_log_cleaner_cleans_total", "Cleans of compacted logs this node ran (each rewrites a log's cleanable segments).", nil),
		cleanErrors:          d("strata_log_cleaner_errors_total", "Cleans that failed or were abandoned (each is tried again).", nil),
		cleanedBytes:         d("strata_log_cleaner_cleaned_bytes_total", "Bytes of segments the cleaner rewrote: its throughput is the rate.", nil),
		reclaimedTotal:       d("strata_log_cleaner_reclaimed_bytes_total", "Bytes the cleaner removed, over every compacted log of this node.", nil),
		remoteDirty:          d("strata_tier_cleaner_dirty_ratio", "Fraction of a tiered compacted partition's cleanable uploaded bytes not yet compacted, on partitions this node leads.", part),
		remoteCleanedTo:      d("strata_tier_cleaner_cleaned_offset", "The remote cleaner checkpoint of a tiered compacted partition: below it each key appears once in the bucket.", part),
		remoteReclaimed:      d("strata_tier_cleaner_reclaimed_bytes", "Bytes compaction removed from a tiered partition's uploaded segments while this node led it.", part),
		remoteCleans:         d("strata_tier_cleaner_cleans_total", "Compactions of uploaded segments this node ran.", nil),
		remoteErrors:         d("strata_tier_cleaner_errors_total", "Compactions of uploaded segments that failed or were abandoned (each is tried again).", nil),
		remoteRead:           d("strata_tier_cleaner_read_bytes_total", "Bytes of uploaded segments the remote cleaner read from the object store (its throughput is the rate).", nil),
		remoteWritten:        d("strata_tier_cleaner_uploaded_bytes_total", "Bytes of compacted segments the remote cleaner uploaded.", nil),
		remoteReclaimedTotal: d("strata_tier_cleaner_reclaimed_bytes_total", "Bytes compaction removed from uploaded segments, over every partition this node led.", nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.logEnd, c.hw, c.logStart, c.size, c.segments, c.uploadLagBytes, c.uploadLagSec,
		c.remoteSz, c.led, c.underReplicated, c.underMinISR, c.lagBytesTotal, c.uploadedTotal, c.uploadsTotal, c.uploadErrors,
		c.diskUsed, c.diskHigh, c.diskFull, c.offline, c.isrShrinks, c.isrExpands, c.leaderships, c.cacheHits, c.cacheMisses, c.fetchedTotal,
		c.dirtyRatio, c.cleanedTo, c.reclaimed, c.cleans, c.cleanErrors, c.cleanedBytes, c.reclaimedTotal,
		c.remoteDirty, c.remoteCleanedTo, c.remoteReclaimed, c.remoteCleans, c.remoteErrors, c.remoteRead, c.remoteWritten, c.remoteReclaimedTotal} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	perPartition := !n.cfg.NoPartitionMetrics
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if used, total, err := n.cfg.DiskUsage(); err == nil && total > 0 {
		gauge(c.diskUsed, float64(used)/float64(total))
	}
	gauge(c.diskHigh, n.cfg.DiskHighWatermark)
	full := 0.0
	if n.diskFull.Load() {
		full = 1
	}
	gauge(c.diskFull, full)
	for _, m := range []struct {
		d *prometheus.Desc
		v *atomic.Int64
	}{{c.isrShrinks, &n.counts.isrShrinks}, {c.isrExpands, &n.counts.isrExpands}, {c.leaderships, &n.counts.leaderships},
		{c.cleans, &n.counts.cleans}, {c.cleanErrors, &n.counts.cleanErrors}, {c.cleanedBytes, &n.counts.cleanedBytes},
		{c.reclaimedTotal, &n.counts.reclaimedBytes}, {c.remoteCleans, &n.counts.remoteCleans},
		{c.remoteErrors, &n.counts.remoteCleanErrors}, {c.remoteRead, &n.counts.remoteReadBytes},
		{c.remoteWritten, &n.counts.remoteWrittenBytes}, {c.remoteReclaimedTotal, &n.counts.remoteReclaimedBytes}} {
		ch <- prometheus.MustNewConstMetric(m.d, prometheus.CounterValue, float64(m.v.Load()))
	}
	v := n.cfg.Meta.Server().FSM().View()
	if n.cfg.Meta.Server().IsLeader() {
		offline := 0
		if ps, err := v.AllPartitions(); err == nil {
			for _, p := range ps {
				if p.Leader < 0 {
					offline++
				}
			}
			gauge(c.offline, float64(offline))
		}
	}
	var led, under, underMin int
	for k, l := range n.readyLogs() {
		part, ok, err := v.Partition(k.topic, k.partition)
		if err != nil || !ok || l.Log == nil {
			continue
		}
		p := strconv.Itoa(int(k.partition))
		if part.Leader == n.cfg.ID {
			led++
			if len(part.ISR) < len(part.Replicas) {
				under++
			}
			if minISR, err := strconv.Atoi(l.configs()["min.insync.replicas"]); err == nil && len(part.ISR) < minISR {
				underMin++
			}
		}
		if !perPartition {
			continue
		}
		gauge(c.logEnd, float64(l.EndOffset()), k.topic, p)
		if hw := l.repl.hw.Load(); hw >= 0 {
			gauge(c.hw, float64(hw), k.topic, p)
		}
		gauge(c.logStart, float64(n.logStartOffset(l, part)), k.topic, p)
		gauge(c.size, float64(l.Size()), k.topic, p)
		gauge(c.segments, float64(len(l.Segments())), k.topic, p)
		if compacted(l.configs()) {
			st := l.cleaner.status()
			gauge(c.dirtyRatio, st.DirtyRatio, k.topic, p)
			gauge(c.cleanedTo, float64(st.CleanedTo), k.topic, p)
			gauge(c.reclaimed, float64(st.BytesReclaimed), k.topic, p)
			if r := st.Remote; r != nil && part.Leader == n.cfg.ID {
				gauge(c.remoteDirty, r.DirtyRatio, k.topic, p)
				gauge(c.remoteCleanedTo, float64(r.CleanedTo), k.topic, p)
				gauge(c.remoteReclaimed, float64(r.BytesReclaimed), k.topic, p)
			}
		}
	}
	v.Close()
	gauge(c.led, float64(led))
	gauge(c.underReplicated, float64(under))
	gauge(c.underMinISR, float64(underMin))
	if n.cfg.Tier == nil {
		return
	}
	st := n.tierStatus()
	var lag int64
	for _, ps := range st.Partitions {
		lag += ps.LagBytes
		if perPartition {
			p := strconv.Itoa(int(ps.Partition))
			gauge(c.uploadLagBytes, float64(ps.LagBytes), ps.Topic, p)
			gauge(c.uploadLagSec, ps.LagSeconds, ps.Topic, p)
			gauge(c.remoteSz, float64(ps.RemoteBytes), ps.Topic, p)
		}
	}
	gauge(c.lagBytesTotal, float64(lag))
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	bytes, segs, failures := n.uploader.Totals()
	counter(c.uploadedTotal, float64(bytes))
	counter(c.uploadsTotal, float64(segs))
	counter(c.uploadErrors, float64(failures))
	counter(c.cacheHits, float64(st.Cache.ChunkHits))
	counter(c.cacheMisses, float64(st.Cache.ChunkMisses))
	counter(c.fetchedTotal, float64(st.Cache.FetchedBytes))
}

// raftCollector exports the metadata Raft member's state: hashicorp/raft's
// own figures, read at scrape time.
type raftCollector struct {
	p                                  *Process
	state, term, commit, applied, last *prometheus.Desc
	fsmApplied, elections, isrShrinks  *prometheus.Desc
}

func newRaftCollector(p *Process, id int32) *raftCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, prometheus.Labels{"node": strconv.Itoa(int(id))})
	}
	return &raftCollector{p: p,
		state:      d("strata_meta_raft_state", "1 for this member's Raft state (follower, candidate, leader, shutdown), 0 for the others.", "state"),
		term:       d("strata_meta_raft_term", "Current Raft term of the metadata group, as this member knows it."),
		commit:     d("strata_meta_raft_commit_index", "Highest Raft log index known committed."),
		applied:    d("strata_meta_raft_applied_index", "Highest Raft log index applied by this member."),
		last:       d("strata_meta_raft_last_log_index", "Highest index in this member's Raft log."),
		fsmApplied: d("strata_meta_applied_index", "Highest Raft index the metadata state machine applied (what reads see)."),
		elections:  d("strata_controller_leader_elections_total", "Partition leaders this node changed while it was the controller (a leader dead or moved back)."),
		isrShrinks: d("strata_controller_isr_shrinks_total", "ISRs this node shrank while it was the controller (dead replicas removed)."),
	}
}

func (c *raftCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.state, c.term, c.commit, c.applied, c.last, c.fsmApplied, c.elections, c.isrShrinks} {
		ch <- d
	}
}

func (c *raftCollector) Collect(ch chan<- prometheus.Metric) {
	srv := c.p.Member.Server()
	r := srv.Raft()
	state := r.State().String()
	for _, s := range []string{"Follower", "Candidate", "Leader", "Shutdown"} {
		v := 0.0
		if s == state {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, strings.ToLower(s))
	}
	stats := r.Stats()
	for _, m := range []struct {
		d   *prometheus.Desc
		key string
	}{{c.term, "term"}, {c.commit, "commit_index"}, {c.applied, "applied_index"}, {c.last, "last_log_index"}} {
		if v, err := strconv.ParseUint(stats[m.key], 10, 64); err == nil {
			ch <- prometheus.MustNewConstMetric(m.d, prometheus.GaugeValue, float64(v))
		}
	}
	ch <- prometheus.MustNewConstMetric(c.fsmApplied, prometheus.GaugeValue, float64(srv.FSM().Applied()))
	elections, shrinks := c.p.Member.ControllerCounts()
	ch <- prometheus.MustNewConstMetric(c.elections, prometheus.CounterValue, float64(elections))
	ch <- prometheus.MustNewConstMetric(c.isrShrinks, prometheus.CounterValue, float64(shrinks))
}

// groupCollector exports consumer group offsets and lag, computed on the
// controller (only the controller's node reports them, so a cluster
// exports each once): committed offsets from the metadata, end offsets
// (high watermarks) from each partition's leader, asked at scrape time.
type groupCollector struct {
	n              *Node
	committed, lag *prometheus.Desc
	topicLag       *prometheus.Desc
}

func newGroupCollector(n *Node) *groupCollector {
	gtp := []string{"group", "topic", "partition"}
	// The node label names the controller that computed the figures.
	node := prometheus.Labels{"node": strconv.Itoa(int(n.cfg.ID))}
	return &groupCollector{n: n,
		committed: prometheus.NewDesc("strata_consumer_group_committed_offset", "Offset a consumer group committed for a partition (reported by the controller).", gtp, node),
		lag:       prometheus.NewDesc("strata_consumer_group_lag", "Records between a group's committed offset and the partition's high watermark (reported by the controller).", gtp, node),
		topicLag:  prometheus.NewDesc("strata_consumer_group_topic_lag", "A group's lag summed over a topic's partitions (reported by the controller).", []string{"group", "topic"}, node),
	}
}

func (c *groupCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.committed
	ch <- c.lag
	ch <- c.topicLag
}

// scrapeTimeout bounds the leaders' answers during one scrape.
const scrapeTimeout = 2 * time.Second

func (c *groupCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	if !n.cfg.Meta.Server().IsLeader() {
		return
	}
	v := n.cfg.Meta.Server().FSM().View()
	groups, err := v.OffsetGroups()
	var offsets []meta.Offset
	leaders := map[partitionKey]int32{}
	for _, g := range groups {
		os, _ := v.GroupOffsets(g)
		for _, o := range os {
			k := partitionKey{o.Topic, o.Partition}
			if _, ok := leaders[k]; !ok {
				if p, ok, _ := v.Partition(o.Topic, o.Partition); ok {
					leaders[k] = p.Leader
				} else {
					continue // the topic is gone; its offsets with it
				}
			}
			offsets = append(offsets, o)
		}
	}
	v.Close()
	if err != nil || len(offsets) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(n.base, scrapeTimeout)
	defer cancel()
	ends := n.highWatermarks(ctx, leaders)
	topicLag := map[[2]string]float64{}
	for _, o := range offsets {
		p := strconv.Itoa(int(o.Partition))
		ch <- prometheus.MustNewConstMetric(c.committed, prometheus.GaugeValue, float64(o.Offset), o.Group, o.Topic, p)
		end, ok := ends[partitionKey{o.Topic, o.Partition}]
		if !ok {
			continue // the leader did not answer: no figure rather than a wrong one
		}
		lag := float64(max(0, end-o.Offset))
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, lag, o.Group, o.Topic, p)
		topicLag[[2]string{o.Group, o.Topic}] += lag
	}
	for k, lag := range topicLag {
		ch <- prometheus.MustNewConstMetric(c.topicLag, prometheus.GaugeValue, lag, k[0], k[1])
	}
}

// highWatermarks asks each partition's leader for its high watermark
// (ListOffsets, latest), one request per leader, at once; partitions
// whose leader does not answer are left out.
func (n *Node) highWatermarks(ctx context.Context, leaders map[partitionKey]int32) map[partitionKey]int64 {
	byLeader := map[int32][]partitionKey{}
	for k, l := range leaders {
		if l >= 0 {
			byLeader[l] = append(byLeader[l], k)
		}
	}
	out := map[partitionKey]int64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for leader, keys := range byLeader {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := kmsg.NewPtrListOffsetsRequest()
			req.SetVersion(4)
			req.ReplicaID = -1
			byTopic := map[string]int{}
			for _, k := range keys {
				i, ok := byTopic[k.topic]
				if !ok {
					i = len(req.Topics)
					byTopic[k.topic] = i
					t := kmsg.NewListOffsetsRequestTopic()
					t.Topic = k.topic
					req.Topics = append(req.Topics, t)
				}
				p := kmsg.NewListOffsetsRequestTopicPartition()
				p.Partition, p.Timestamp, p.CurrentLeaderEpoch = k.partition, -1, -1
				req.Topics[i].Partitions = append(req.Topics[i].Partitions, p)
			}
			var resp kmsg.Response
			var err error
			if leader == n.cfg.ID {
				var release func()
				resp, release, err = n.ServeKafka(ctx, req, false, nil)
				release()
			} else {
				resp, err = n.caller.Kafka(ctx, rpc.KafkaSubject(n.cfg.Cluster, leader), req, rpc.KafkaCall{})
			}
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, t := range resp.(*kmsg.ListOffsetsResponse).Topics {
				for _, p := range t.Partitions {
					if p.ErrorCode == 0 && p.Offset >= 0 {
						out[partitionKey{t.Topic, p.Partition}] = p.Offset
					}
				}
			}
		}()
	}
	wg.Wait()
	return out
}
