package meta

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// offsetBatcher gathers offset commits into few Raft proposals: the first
// commit to arrive waits up to window for others (or until max offsets),
// then all of them go in one CommitOffsets command. Up to maxInFlight
// proposals run at once, so gathering the next batch overlaps the
// previous one's commit. A commit returns once its batch is applied, so
// an OffsetFetch after it always sees it.
//
// Commits are applied in the order they reach the batcher, and a commit
// whose caller has given up is dropped rather than applied: one loop
// checks each batch's callers and hands the batch to Raft, so no batch
// checked earlier takes a later log entry. Without that, a commit that
// timed out for its client could land after the newer commit the client
// sent next and move the group's offset back.
type offsetBatcher struct {
	server *Server
	window time.Duration
	max    int
	reqs   chan *offsetReq
	slots  chan struct{} // proposals in flight
	done   chan struct{}
	wg     sync.WaitGroup
}

const offsetProposalsInFlight = 4

type offsetReq struct {
	ctx     context.Context
	offsets []Offset
	err     chan error
}

func newOffsetBatcher(s *Server, window time.Duration, max int) *offsetBatcher {
	b := &offsetBatcher{server: s, window: window, max: max,
		reqs: make(chan *offsetReq, 1024), slots: make(chan struct{}, offsetProposalsInFlight), done: make(chan struct{})}
	b.wg.Add(1)
	go b.run()
	return b
}

// commit records offsets and waits until they are applied. Once ctx ends
// they are either applied already or never will be.
func (b *offsetBatcher) commit(ctx context.Context, offsets []Offset) error {
	r := &offsetReq{ctx: ctx, offsets: offsets, err: make(chan error, 1)}
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.done:
		return fmt.Errorf("%w: shutting down", ErrNotLeader)
	}
	// The batcher answers every request it took, at the latest when the
	// caller's context ends and the batch is dropped or proposed.
	return <-r.err
}

func (b *offsetBatcher) run() {
	defer b.wg.Done()
	for {
		var first *offsetReq
		select {
		case first = <-b.reqs:
		case <-b.done:
			return
		}
		batch := []*offsetReq{first}
		n := len(first.offsets)
		timer := time.NewTimer(b.window)
	gather:
		for n < b.max {
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
				n += len(r.offsets)
			case <-timer.C:
				break gather
			case <-b.done:
				break gather
			}
		}
		timer.Stop()
		b.slots <- struct{}{}
		b.propose(batch, n)
	}
}

// propose drops the requests whose callers gave up, enqueues the rest as
// one command, and waits for it in the background.
func (b *offsetBatcher) propose(batch []*offsetReq, n int) {
	all := make([]Offset, 0, n)
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err <- err
			continue
		}
		all = append(all, r.offsets...)
		live = append(live, r)
	}
	if len(live) == 0 {
		<-b.slots
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	cmd := &CommitOffsets{Offsets: all}
	b.server.fsm.metrics.offsetBatch.Observe(float64(len(all)))
	f := b.server.enqueue(ctx, cmd)
	b.wg.Add(1)
	go func(f raft.ApplyFuture) {
		defer b.wg.Done()
		defer func() { <-b.slots }()
		defer cancel()
		res, err := b.server.result(f, cmd)
		if err == nil {
			err = res.Err
		}
		for _, r := range live {
			r.err <- err
		}
	}(f)
}

func (b *offsetBatcher) close() {
	close(b.done)
	b.wg.Wait()
	// Answer anything still queued.
	for {
		select {
		case r := <-b.reqs:
			r.err <- fmt.Errorf("%w: shutting down", ErrNotLeader)
		default:
			return
		}
	}
}
