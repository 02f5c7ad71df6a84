package replica

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// stub is a follower with an empty log.
type stub struct {
	topic     string
	partition int32
}

func (s *stub) Topic() string                          { return s.topic }
func (s *stub) Partition() int32                       { return s.partition }
func (s *stub) LeaderEpoch() int32                     { return 0 }
func (s *stub) LogEndOffset() int64                    { return 0 }
func (s *stub) LastEpoch() int32                       { return -1 }
func (s *stub) EndOffsetForEpoch(int32) (int32, int64) { return -1, -1 }
func (s *stub) AppendReplicated([]byte) error          { return nil }
func (s *stub) TruncateTo(int64) error                 { return nil }
func (s *stub) TruncateFullyAndStartAt(int64) error    { return nil }
func (s *stub) SetHighWatermark(int64)                 {}

// TestAddedPartitionFetchedAtOnce: a partition added while the fetch in
// flight long-polls an idle leader is asked for at once, not after the
// long poll (here a minute). A new topic's first acks=all produce, or a
// partition whose leader moved, waited out the poll before.
func TestAddedPartitionFetchedAtOnce(t *testing.T) {
	asked := make(chan []string, 16)
	f := StartFetcher(FetcherConfig{Self: 2, Leader: 1, MaxWait: time.Minute,
		Send: func(ctx context.Context, _ int32, req *kmsg.FetchRequest) (*kmsg.FetchResponse, error) {
			var names []string
			for _, rt := range req.Topics {
				names = append(names, rt.Topic)
			}
			slices.Sort(names)
			asked <- names
			<-ctx.Done() // the leader has nothing new: it long-polls
			return nil, ctx.Err()
		}})
	defer f.Close()
	next := func() []string {
		t.Helper()
		select {
		case names := <-asked:
			return names
		case <-time.After(10 * time.Second):
			t.Fatal("no fetch sent")
			return nil
		}
	}
	f.Add(&stub{"a", 0})
	if got := next(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("first fetch asks for %v", got)
	}
	f.Add(&stub{"b", 0})
	if got := next(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("fetch after adding b asks for %v", got)
	}
}

// TestAddBurstCoalesced: partitions added one after another (roles are
// synced a partition at a time; a node starting follows hundreds) cost a
// few fetches, not one abandoned long poll on the leader per partition.
func TestAddBurstCoalesced(t *testing.T) {
	const n = 200
	asked := make(chan int, 4*n)
	f := StartFetcher(FetcherConfig{Self: 2, Leader: 1, MaxWait: time.Minute,
		Send: func(ctx context.Context, _ int32, req *kmsg.FetchRequest) (*kmsg.FetchResponse, error) {
			asked <- len(req.Topics)
			<-ctx.Done()
			return nil, ctx.Err()
		}})
	defer f.Close()
	start := time.Now()
	pauses := 0 // gaps between adds long enough to end a burst
	last := start
	for i := range n {
		if now := time.Now(); now.Sub(last) > addQuiet {
			pauses++ // a loaded machine (the race detector, CI) paused the adder
		}
		f.Add(&stub{fmt.Sprint("t", i), 0})
		last = time.Now()
		time.Sleep(50 * time.Microsecond) // opening each partition's log
	}
	// One fetch per addBurst of the burst, one per pause that ended a
	// burst early, and a few more.
	most := int(time.Since(start)/addBurst) + pauses + 4
	sent := 0
	for {
		select {
		case got := <-asked:
			sent++
			if got == n {
				t.Logf("%d fetches sent for %d partitions added (%d pauses)", sent, n, pauses)
				if sent > most {
					t.Fatalf("%d fetches sent for a burst of %d partitions added (at most %d)", sent, n, most)
				}
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no fetch for all %d partitions (%d sent)", n, sent)
		}
	}
}
