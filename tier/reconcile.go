package tier

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Orphans are objects no manifest references: a segment uploaded by a
// node killed before it recorded the entry, uploaded again under a new
// leader epoch, or left when deleting it failed halfway; every object of
// a topic this cluster deleted. The reconciler finds them by listing the
// store against the cluster's metadata and removes those older than a
// grace period, so an upload still on its way to the manifest is never
// taken.

// ReconcileState is what the cluster's metadata says should be in the
// store.
type ReconcileState struct {
	// Live are the topics that exist, by id; Referenced the object keys
	// their manifests hold (the .log key of each entry; its index, time
	// index and epochs objects sit beside it).
	Live       map[[16]byte]bool
	Referenced map[string]bool
	// Deleted are topics deleted from this cluster: all of their objects
	// go.
	Deleted map[[16]byte]bool
}

// ReconcileResult reports one pass.
type ReconcileResult struct {
	Listed  int
	Removed int
	// RemovedBytes is what the removed objects held.
	RemovedBytes int64
	// Young are orphans kept because they are inside the grace period.
	Young int
	// DeletedEmpty are deleted topics with no object left.
	DeletedEmpty [][16]byte
	// Partial is the number of unfinished writes swept.
	Partial int
}

// segmentSuffixes are the objects of one uploaded segment. The
// .producers object is missing from segments uploaded before it existed,
// the .txnindex object from every segment without an aborted transaction.
var segmentSuffixes = []string{".log", ".index", ".timeindex", ".epochs", ProducersSuffix, TxnIndexSuffix}

// SegmentObjects are the keys of every object of the segment whose .log
// object is logKey.
func SegmentObjects(logKey string) []string {
	stem := strings.TrimSuffix(logKey, ".log")
	keys := make([]string, len(segmentSuffixes))
	for i, s := range segmentSuffixes {
		keys[i] = stem + s
	}
	return keys
}

// ParseObjectKey splits a key of this cluster's layout into its topic id
// and the key of the segment's .log object; ok is false for a key of
// another layout (another tool's object in a shared bucket) and for
// manifests.
func ParseObjectKey(key string) (id [16]byte, logKey string, ok bool) {
	id, ok = topicID(key)
	if !ok || IsManifestKey(key) {
		return id, "", false
	}
	for _, s := range segmentSuffixes {
		if strings.HasSuffix(key, s) {
			return id, strings.TrimSuffix(key, s) + ".log", true
		}
	}
	return id, "", false
}

// topicID reads the id from a key's first element, manifests included.
func topicID(key string) (id [16]byte, ok bool) {
	dir, _, found := strings.Cut(key, "/")
	i := strings.LastIndexByte(dir, '-')
	if !found || i < 0 || len(dir)-i-1 != 2*len(id) {
		return id, false
	}
	_, err := hex.Decode(id[:], []byte(dir[i+1:]))
	return id, err == nil
}

// Reconcile lists the store and removes orphans last modified before
// before. Objects of topics neither live nor deleted here are left alone:
// they may be another cluster's, or waiting to be restored.
func Reconcile(ctx context.Context, store Store, state ReconcileState, before time.Time) (ReconcileResult, error) {
	var res ReconcileResult
	var doomed []Object
	remaining := map[[16]byte]bool{} // deleted topics with objects kept
	err := store.List(ctx, "", func(o Object) error {
		res.Listed++
		id, ok := topicID(o.Key)
		if !ok {
			return nil
		}
		switch {
		case state.Deleted[id]:
		case state.Live[id]:
			if _, logKey, ok := ParseObjectKey(o.Key); !ok || state.Referenced[logKey] {
				return nil // a manifest, or a recorded segment
			}
		default:
			return nil
		}
		if !o.Modified.Before(before) {
			res.Young++
			remaining[id] = true
			return nil
		}
		doomed = append(doomed, o)
		return nil
	})
	if err != nil {
		return res, err
	}
	for len(doomed) > 0 {
		batch := doomed[:min(len(doomed), 1000)]
		doomed = doomed[len(batch):]
		keys := make([]string, len(batch))
		for i, o := range batch {
			keys[i] = o.Key
		}
		if err := store.Delete(ctx, keys...); err != nil {
			return res, fmt.Errorf("tier: reconcile: %w", err)
		}
		for _, o := range batch {
			res.Removed++
			res.RemovedBytes += o.Size
		}
	}
	for id := range state.Deleted {
		if !remaining[id] {
			res.DeletedEmpty = append(res.DeletedEmpty, id)
		}
	}
	if s, ok := store.(PartialSweeper); ok {
		if res.Partial, err = s.SweepPartial(ctx, before); err != nil {
			return res, err
		}
	}
	return res, nil
}
