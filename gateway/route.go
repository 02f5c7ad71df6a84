package gateway

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/stream"
)

// leaderWait is how long a request without a timeout of its own waits
// for a partition's leadership to settle.
const leaderWait = 5 * time.Second

// partRef is one partition of a client request: its name and its place
// (topic index i, partition index j) in the request and response.
type partRef struct {
	topic     string
	partition int32
	slot
}

// route sends each partition to its leader node: build makes the request
// for one node's partitions, merge copies a node's answers back in the
// client's order and returns the partitions the node says it does not
// lead, fail marks partitions that could not be asked. Requests to
// different nodes run at once.
//
// A partition whose node answers that it does not lead it, whose node is
// not there, or that has no leader, is asked again after a metadata
// refresh, then after each metadata change, for up to wait: a leader
// change completes inside one request, and clients never see it (kgo, for
// one, refreshes its metadata at most every 5 s). A node that does not
// answer in time, or whose stream drops with the request out, is not
// asked again, since it may have acted on the request; its partitions get
// REQUEST_TIMED_OUT.
//
// appended, when not nil, is called as soon as every node asked first
// has appended all its partitions (a produce's interim reply) or
// answered, with none to ask again; a partition asked again leaves it to
// the caller, after route returns. A partition whose leader moves while
// it waits for replicas is asked again after appended was called, so it
// may land after the connection's next produce: as in Kafka, order
// across a leader change with several requests in flight rests on the
// idempotent producer's sequence numbers, which the new leader checks.
func (g *Gateway) route(ctx context.Context, wait time.Duration, refs []partRef, appended func(),
	build func(refs []partRef) kmsg.Request,
	merge func(resp kmsg.Response, refs []partRef) (notLeader []partRef),
	fail func(ref partRef, code int16),
) {
	deadline := time.Now().Add(wait)
	for attempt := 0; len(refs) > 0; attempt++ {
		if attempt > 1 {
			// Wait for the controller to move leadership.
			select {
			case <-g.cache.changedCh():
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
			}
		}
		last := attempt > 0 && (!time.Now().Before(deadline) || ctx.Err() != nil)
		snap, err := g.cache.get(ctx, attempt > 0)
		byNode := map[int32][]partRef{}
		var retry []partRef
		for _, r := range refs {
			p, ok := snap.partitionOrZero(err, r.topic, r.partition)
			switch {
			case (err != nil || (ok && p.Leader < 0)) && !last:
				retry = append(retry, r)
			case err != nil || (ok && p.Leader < 0):
				fail(r, kerr.NotLeaderForPartition.Code)
			case !ok:
				fail(r, kerr.UnknownTopicOrPartition.Code)
			default:
				byNode[p.Leader] = append(byNode[p.Leader], r)
			}
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		// Early release of appended: first attempt only, nothing retried.
		unsettled := len(byNode)
		early := appended != nil && attempt == 0 && len(retry) == 0
		watch := early     // early may turn false meanwhile; watch does not
		settle := func() { // with mu held
			if unsettled--; unsettled == 0 && early {
				appended()
			}
		}
		for nodeID, rs := range byNode {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var progress func()
				if watch {
					progress = sync.OnceFunc(func() {
						mu.Lock()
						defer mu.Unlock()
						settle()
					})
				}
				resp, err := g.forward(ctx, nodeID, build(rs), progress)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					if again := merge(resp, rs); len(again) > 0 {
						g.cache.invalidate()
						early = false
						if !last {
							retry = append(retry, again...)
						}
					}
				case errors.Is(err, nats.ErrNoResponders) && !last:
					g.cache.invalidate()
					early = false
					retry = append(retry, rs...)
				default:
					g.logger.Warn("forward failed", "node", nodeID, "error", err)
					g.cache.invalidate()
					code := kerr.NotLeaderForPartition.Code
					// A node that may have acted (no answer in time, a
					// stream lost with the request out) is not asked again:
					// the client retries, without waiting for new metadata.
					if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, stream.ErrConnLost) {
						code = kerr.RequestTimedOut.Code
					}
					for _, r := range rs {
						fail(r, code)
					}
				}
				if progress != nil {
					mu.Unlock()
					progress() // answered: settled, if the interim reply did not come
					mu.Lock()
				}
			}()
		}
		wg.Wait()
		refs = retry
	}
}

// takeParts is route's merge for node answers whose k-th topic holds the
// k-th partition asked: parts(k) lists that topic's partitions, dst is the
// client's slot for ref, code its error code field.
func takeParts[P any](rs []partRef, topics int, parts func(k int) []P, dst func(partRef) *P, code func(*P) *int16) []partRef {
	return notLeaders(rs, func(k int, ref partRef) int16 {
		d := dst(ref)
		if k >= topics || len(parts(k)) != 1 {
			*code(d) = kerr.UnknownServerError.Code
		} else {
			*d = parts(k)[0]
		}
		return *code(d)
	})
}

// notLeaders calls set for each partition of a node's answer (k is its
// place there) and collects those the node says it does not lead:
// NOT_LEADER_OR_FOLLOWER, or UNKNOWN_TOPIC_OR_PARTITION from a node whose
// view of the metadata is behind the gateway's.
func notLeaders(rs []partRef, set func(k int, ref partRef) (code int16)) []partRef {
	var again []partRef
	for k, ref := range rs {
		if c := set(k, ref); c == kerr.NotLeaderForPartition.Code || c == kerr.UnknownTopicOrPartition.Code {
			again = append(again, ref)
		}
	}
	return again
}
