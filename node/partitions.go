package node

import (
	"context"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-io/strata/meta"
	plog "github.com/strata-io/strata/node/log"
)

// A partition on this node is one openLog, which owns its log, its
// replication role and high watermark, its idempotent producer state and
// its tier state, each under its own lock. Its life:
//
//   - opening: in Node.mu.logs with ready still open. Requests get
//     NOT_LEADER_OR_FOLLOWER at once (retriable: the gateway asks again
//     within the request's own timeout).
//   - ready: ready closed with Log set; requests use it, the roles loop
//     leads or follows it.
//   - gone: out of the map (its topic deleted or created again, the
//     partition moved away, or its open failed). Whoever took it out
//     closes it and, unless it failed to open, deletes its files, once
//     any open under way has finished.
//
// Node.mu guards only the map. Opening (recovery, metadata reads, the
// producer state) and dropping (closing, removing files) run on their own
// goroutines, tracked by Node.wg, at most maxOpening opens at once, so a
// partition with a long log delays no other partition's requests. An
// open waits for a drop of the same partition still under way (its
// directory is being removed).

// maxOpening bounds the partitions opening at once: each reads its log's
// indexes and its producer state from disk.
const maxOpening = 4

// isReady reports whether the partition's open finished and succeeded.
func (ol *openLog) isReady() bool {
	select {
	case <-ol.ready:
		return ol.Log != nil
	default:
		return false
	}
}

// openLogOf returns the partition if it is open, and otherwise starts
// opening it (if no one has) and answers NOT_LEADER_OR_FOLLOWER at once.
// A partition of an earlier topic of the same name is dropped first.
func (n *Node) openLogOf(t meta.Topic, p int32) (*openLog, *kerr.Error) {
	key := partitionKey{t.Name, p}
	n.mu.Lock()
	if n.mu.closed {
		n.mu.Unlock()
		return nil, kerr.NotLeaderForPartition
	}
	ol := n.mu.logs[key]
	if ol != nil && ol.topicID != t.ID {
		n.dropLocked(key, ol, true) // the topic was deleted and created again
		ol = nil
	}
	if ol == nil {
		ol = &openLog{topicID: t.ID, ready: make(chan struct{}), dropped: make(chan struct{})}
		n.mu.logs[key] = ol
		after := n.mu.dropping[key]
		n.wg.Add(1)
		go n.openPartition(key, t, ol, after)
	}
	n.mu.Unlock()
	select {
	case <-ol.ready:
		if ol.Log == nil {
			return nil, kerr.KafkaStorageError
		}
		return ol, nil
	default:
		return nil, kerr.NotLeaderForPartition
	}
}

// openPartition opens ol's log once the drop before it (after, if any)
// is done, and publishes it.
func (n *Node) openPartition(key partitionKey, t meta.Topic, ol *openLog, after <-chan struct{}) {
	defer n.wg.Done()
	if after != nil {
		<-after
	}
	n.openSlots <- struct{}{}
	start := time.Now()
	l, err := n.openFiles(t, key.partition, ol)
	<-n.openSlots
	n.mu.Lock()
	if err == nil {
		// Published even if the partition was dropped meanwhile: its
		// dropper, or Close, closes it.
		ol.Log = l
	} else if n.mu.logs[key] == ol {
		delete(n.mu.logs, key) // the next request or roles pass tries again
	}
	n.mu.Unlock()
	if err == nil {
		n.logger.Info("partition opened", "topic", key.topic, "partition", key.partition,
			"log_start", l.StartOffset(), "log_end", l.EndOffset(), "took", time.Since(start).Round(time.Millisecond))
	}
	close(ol.ready)
	n.kickRoles()
}

// openFiles opens a partition's log and reads what it needs: its tier
// span and producer state. ol is not yet shared with requests.
func (n *Node) openFiles(t meta.Topic, p int32, ol *openLog) (*plog.Log, error) {
	topic := t.Name
	dir := n.partitionDir(topic, p)
	if err := claimPartitionDir(dir, t.ID); err != nil {
		n.logger.Error("prepare partition directory", "topic", topic, "partition", p, "error", err)
		return nil, err
	}
	ol.setConfigs(n.topicConfigs(t))
	ol.tier.init(n.base, n.uploader != nil && tiered(ol.configs()))
	l, err := plog.Open(dir, logConfig(n.cfg.LogDefaults, ol.configs()), plog.Options{Logger: n.logger.With("topic", topic, "partition", p),
		Removable: n.removable(topic, p, ol)})
	if err != nil {
		n.logger.Error("open partition log", "topic", topic, "partition", p, "error", err)
		return nil, err
	}
	// A log behind its manifest (a topic restored from the store, a lost
	// disk) continues after the uploaded segments.
	// The producer state as of that point comes from the store first: a
	// log already moved on would not be opened this way again.
	if span, err := n.tierSpan(topic, p); err == nil && span.ok && l.EndOffset() <= span.last.LastOffset {
		start := span.last.LastOffset + 1
		ctx, cancel := context.WithTimeout(n.base, remoteProducersTimeout)
		snap, err := n.remoteProducers(ctx, span.last)
		cancel()
		if err == nil {
			err = removeProducerSnapshotsAbove(dir, -1)
		}
		if err == nil {
			err = l.TruncateFullyAndStartAt(start)
		}
		if err == nil && snap != nil {
			err = writeSnapshotFile(dir, start, snap, start)
		}
		if err != nil {
			l.Close()
			n.logger.Error("start the log after its uploaded segments", "topic", topic, "partition", p, "error", err)
			return nil, err
		}
		n.logger.Info("local log starts after the uploaded segments", "topic", topic, "partition", p, "offset", span.last.LastOffset+1)
	}
	producers, snapshotAt, err := loadProducersWith(l, n.uploadedProducers(topic, p))
	if err != nil {
		l.Close()
		n.logger.Error("rebuild producer state", "topic", topic, "partition", p, "error", err)
		return nil, err
	}
	ol.appendMu.Lock()
	ol.setProducers(producers, snapshotAt)
	ol.appendMu.Unlock()
	ol.repl.init()
	return l, nil
}

// dropLocked takes a partition out of the map and drops it on its own
// goroutine: its topic is gone or was created again (remote: its tier
// objects go too), or it moved to other nodes. Opens of the same
// partition wait until its files are gone.
func (n *Node) dropLocked(key partitionKey, ol *openLog, remote bool) {
	if n.mu.logs[key] == ol {
		delete(n.mu.logs, key)
	}
	before := n.mu.dropping[key]
	n.mu.dropping[key] = ol.dropped
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer func() {
			n.mu.Lock()
			if n.mu.dropping[key] == ol.dropped {
				delete(n.mu.dropping, key)
			}
			n.mu.Unlock()
			close(ol.dropped)
		}()
		if before != nil {
			<-before
		}
		<-ol.ready
		if ol.Log != nil { // nil: its open failed
			n.stopReplicating(ol)
			ol.tier.stop()
			if err := ol.Close(); err != nil {
				n.logger.Warn("close partition", "topic", key.topic, "partition", key.partition, "error", err)
			}
		}
		if err := os.RemoveAll(n.partitionDir(key.topic, key.partition)); err != nil {
			n.logger.Warn("remove partition data", "topic", key.topic, "partition", key.partition, "error", err)
		}
		n.logger.Info("deleted partition data", "topic", key.topic, "partition", key.partition)
		if remote && n.cfg.Tier != nil {
			ctx, cancel := context.WithTimeout(n.base, time.Minute)
			defer cancel()
			n.deleteRemotePartition(ctx, key.topic, ol.topicID, key.partition)
		}
	}()
}

// readyLogs copies the map's open partitions, for loops that visit them
// without holding Node.mu.
func (n *Node) readyLogs() map[partitionKey]*openLog {
	n.mu.Lock()
	defer n.mu.Unlock()
	logs := make(map[partitionKey]*openLog, len(n.mu.logs))
	for k, l := range n.mu.logs {
		if l.isReady() {
			logs[k] = l
		}
	}
	return logs
}
