package meta

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// latencies collects durations and reports percentiles.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	pct := func(p float64) float64 { return float64(l.d[int(p*float64(len(l.d)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkProposals3Voters proposes small commands to a three-voter group
// on loopback from concurrent proposers and reports proposals per second
// and the p50/p99 latency from Apply to the result.
func BenchmarkProposals3Voters(b *testing.B) {
	for _, proposers := range []int{1, 16} {
		b.Run(fmt.Sprintf("proposers=%d", proposers), func(b *testing.B) {
			benchProposals(b, proposers)
		})
	}
}

// BenchmarkProposalsPipelined is BenchmarkProposals3Voters with and
// without Raft's pipelined replication, which Strata turns off (see
// raftRPCsInFlight): what that costs, measured side by side.
func BenchmarkProposalsPipelined(b *testing.B) {
	defer func(v int) { raftRPCsInFlight = v }(raftRPCsInFlight)
	for _, proposers := range []int{1, 16} {
		for _, inFlight := range []int{1, 2} {
			b.Run(fmt.Sprintf("proposers=%d/rpcs-in-flight=%d", proposers, inFlight), func(b *testing.B) {
				raftRPCsInFlight = inFlight
				benchProposals(b, proposers)
			})
		}
	}
}

func benchProposals(b *testing.B, proposers int) {
	g := startGroup(b, 3, nil)
	leader := g.leader()
	ctx := context.Background()
	var lat latencies
	var next atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for range proposers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				res, err := leader.Propose(ctx, &RegisterNode{Node: Node{ID: int32(next.Load() % 100), RaftAddr: "127.0.0.1:1"}})
				if err != nil || res.Err != nil {
					b.Error(err, res)
					return
				}
				lat.add(time.Since(t0))
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "proposals/s")
	lat.report(b)
}

// BenchmarkOffsetCommits commits one offset per call from many concurrent
// committers on a three-voter group, through the batcher: directly on the
// controller, and over NATS through any member as a gateway would.
func BenchmarkOffsetCommits(b *testing.B) {
	for _, path := range []string{"direct", "nats"} {
		b.Run(path, func(b *testing.B) {
			c := startCluster(b, 3, 3)
			ctrl := c.controller()
			ctx := context.Background()
			const committers = 256
			var lat latencies
			var next atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := range committers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						off := []Offset{{Group: fmt.Sprintf("g%d", w%16), Topic: "t", Partition: int32(w), Offset: i}}
						t0 := time.Now()
						var err error
						if path == "direct" {
							_, err = ctrl.Propose(ctx, &CommitOffsets{Offsets: off})
						} else {
							var res *ApplyResult
							res, err = c.client.Propose(ctx, &CommitOffsets{Offsets: off})
							if err == nil {
								err = res.Err
							}
						}
						if err != nil {
							b.Error(err)
							return
						}
						lat.add(time.Since(t0))
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
			lat.report(b)
		})
	}
}

// BenchmarkOneMillionOffsets commits 1,000,000 distinct offsets (1,000
// groups x 1,000 partitions) to a single voter in batches of 4,096, then
// reports the Badger footprint on disk and how long the member takes to
// restart and serve a consistent read.
func BenchmarkOneMillionOffsets(b *testing.B) {
	for range b.N {
		dir := b.TempDir()
		open := func() *Server {
			cfg := ServerConfig{NodeID: 1, DataDir: dir, RaftAddr: "127.0.0.1:0"}
			fastConfig(&cfg)
			s, err := OpenServer(cfg)
			if err != nil {
				b.Fatal(err)
			}
			return s
		}
		s := open()
		if err := s.Bootstrap(map[int32]string{1: s.Addr()}); err != nil {
			b.Fatal(err)
		}
		for !s.IsLeader() {
			time.Sleep(5 * time.Millisecond)
		}
		ctx := context.Background()
		total, batch := benchOffsetsTotal, 4096
		t0 := time.Now()
		offs := make([]Offset, 0, batch)
		for i := range total {
			offs = append(offs, Offset{Group: fmt.Sprintf("group-%d", i/1000), Topic: "orders", Partition: int32(i % 1000), Offset: int64(i), CommitTimeMs: 1700000000000})
			if len(offs) == batch || i == total-1 {
				res, err := s.Propose(ctx, &CommitOffsets{Offsets: offs})
				if err != nil || res.Err != nil {
					b.Fatal(err, res)
				}
				offs = offs[:0]
			}
		}
		commit := time.Since(t0)
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		size := dirBytes(b, dir)
		stateSize, raftSize := dirBytes(b, filepath.Join(dir, "state")), dirBytes(b, filepath.Join(dir, "raft"))
		t1 := time.Now()
		s = open()
		for !s.IsLeader() {
			time.Sleep(time.Millisecond)
		}
		v, err := s.ConsistentView(ctx)
		if err != nil {
			b.Fatal(err)
		}
		got, _ := v.GroupOffsets("group-999")
		v.Close()
		restart := time.Since(t1)
		s.Close()
		if len(got) != 1000 {
			b.Fatalf("group-999 has %d offsets after restart", len(got))
		}
		b.ReportMetric(float64(total)/commit.Seconds(), "commits/s")
		b.ReportMetric(float64(size)/(1<<20), "disk-MiB")
		b.ReportMetric(float64(stateSize)/(1<<20), "state-MiB")
		b.ReportMetric(float64(raftSize)/(1<<20), "raftlog-MiB")
		b.ReportMetric(restart.Seconds()*1000, "restart-ms")
	}
}

func dirBytes(b *testing.B, dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// benchOffsetsTotal is how many offsets BenchmarkOneMillionOffsets
// commits; tests of the benchmark itself lower it.
var benchOffsetsTotal = 1_000_000
