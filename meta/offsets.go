package meta

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// offsetBatcher gathers offset commits into few Raft proposals: the first
// commit to arrive waits up to window for others (or until max offsets),
// then all of them go in one CommitOffsets command. Up to maxInFlight
// proposals run at once, so gathering the next batch overlaps the
// previous one's commit. A commit returns once its batch is applied, so
// an OffsetFetch after it always sees it.
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

// commit records offsets and waits until they are applied.
func (b *offsetBatcher) commit(ctx context.Context, offsets []Offset) error {
	r := &offsetReq{offsets: offsets, err: make(chan error, 1)}
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.done:
		return fmt.Errorf("%w: shutting down", ErrNotLeader)
	}
	select {
	case err := <-r.err:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
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
		b.wg.Add(1)
		go b.propose(batch, n)
	}
}

func (b *offsetBatcher) propose(batch []*offsetReq, n int) {
	defer b.wg.Done()
	defer func() { <-b.slots }()
	all := make([]Offset, 0, n)
	for _, r := range batch {
		all = append(all, r.offsets...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := b.server.Propose(ctx, &CommitOffsets{Offsets: all})
	if err == nil {
		err = res.Err
	}
	for _, r := range batch {
		r.err <- err
	}
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
