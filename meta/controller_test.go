package meta

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestAssignReplicasOracle checks AssignReplicas on random clusters
// against what a naive oracle says every assignment must satisfy.
func TestAssignReplicasOracle(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d (rerun: set it in the test)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for round := range 2000 {
		n := 1 + rng.IntN(9)
		racks := rng.IntN(4) // 0: no racks
		nodes := make([]Node, n)
		perm := rng.Perm(100)
		for i := range nodes {
			nodes[i] = Node{ID: int32(perm[i])}
			if racks > 0 {
				nodes[i].Rack = fmt.Sprintf("r%d", rng.IntN(racks))
			}
		}
		rf := 1 + rng.IntN(n)
		parts := 1 + rng.IntN(30)
		topic := fmt.Sprintf("t%d", round)
		got, err := AssignReplicas(topic, nodes, 0, parts, rf, nil)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		checkAssignment(t, round, nodes, got, rf)
		// Adding partitions later extends the same balance.
		more, err := AssignReplicas(topic, nodes, parts, 1+rng.IntN(10), rf, got)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for _, r := range more {
			if len(r) != rf {
				t.Fatalf("round %d: added partition %v", round, r)
			}
		}
	}
	if _, err := AssignReplicas("t", []Node{{ID: 1}}, 0, 1, 2, nil); err == nil {
		t.Fatal("rf 2 on one node accepted")
	}
}

// checkAssignment is the oracle: counted by brute force, no cleverness.
func checkAssignment(t *testing.T, round int, nodes []Node, a [][]int32, rf int) {
	t.Helper()
	ids := map[int32]string{}
	rackSet := map[string]bool{}
	for _, n := range nodes {
		ids[n.ID] = n.Rack
		rackSet[n.Rack] = true
	}
	leaders := map[int32]int{}
	replicas := map[int32]int{}
	for _, n := range nodes {
		leaders[n.ID], replicas[n.ID] = 0, 0
	}
	for p, r := range a {
		if len(r) != rf {
			t.Fatalf("round %d partition %d: %d replicas, want %d", round, p, len(r), rf)
		}
		racksUsed := map[string]bool{}
		for i, id := range r {
			if _, ok := ids[id]; !ok || slices.Contains(r[:i], id) {
				t.Fatalf("round %d partition %d: replicas %v not distinct live nodes", round, p, r)
			}
			racksUsed[ids[id]] = true
			replicas[id]++
		}
		if want := min(rf, len(rackSet)); len(racksUsed) != want {
			t.Fatalf("round %d partition %d: replicas %v span %d racks, want %d", round, p, r, len(racksUsed), want)
		}
		leaders[r[0]]++
	}
	spread := func(m map[int32]int) int {
		lo, hi := 1<<30, 0
		for _, c := range m {
			lo, hi = min(lo, c), max(hi, c)
		}
		return hi - lo
	}
	if s := spread(leaders); s > 1 {
		t.Fatalf("round %d: leader counts %v differ by %d", round, leaders, s)
	}
	if len(rackSet) == 1 {
		if s := spread(replicas); s > 1 {
			t.Fatalf("round %d: replica counts %v differ by %d", round, replicas, s)
		}
	}
}

// TestElectLeaderModel drives partitions through random node deaths and
// returns, applying each election the way the FSM would, and checks every
// decision against a naive oracle: who may lead, and that no clean
// election loses what the ISR held.
func TestElectLeaderModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for round := range 500 {
		n := 1 + rng.IntN(5)
		var nodes []Node
		for i := range n {
			nodes = append(nodes, Node{ID: int32(i)})
		}
		rf := 1 + rng.IntN(n)
		unclean := rng.IntN(4) == 0
		assign, _ := AssignReplicas("t", nodes, 0, 4, rf, nil)
		parts := make([]Partition, len(assign))
		for i, r := range assign {
			parts[i] = Partition{Topic: "t", Partition: int32(i), Replicas: r, Leader: r[0], ISR: r}
		}
		alive := map[int32]bool{}
		for _, nd := range nodes {
			alive[nd.ID] = true
		}
		isAlive := func(id int32) bool { return alive[id] }
		for step := range 40 {
			victim := int32(rng.IntN(n))
			alive[victim] = !alive[victim]
			for i := range parts {
				p := parts[i]
				c, changed := ElectLeader(p, isAlive, unclean)
				// Oracle: the acceptable leaders.
				var clean, any []int32
				for _, r := range p.Replicas {
					if alive[r] && slices.Contains(p.ISR, r) {
						clean = append(clean, r)
					}
					if alive[r] {
						any = append(any, r)
					}
				}
				next := p
				if changed {
					if c.PartitionEpoch != p.PartitionEpoch {
						t.Fatalf("seed %d round %d step %d: election from epoch %d, partition at %d", seed, round, step, c.PartitionEpoch, p.PartitionEpoch)
					}
					if c.Leader != p.Leader {
						next.LeaderEpoch++
					}
					next.Leader, next.ISR = c.Leader, c.ISR
					next.PartitionEpoch++
				}
				switch {
				case len(clean) > 0:
					if next.Leader != clean[0] {
						t.Fatalf("seed %d round %d step %d: %+v -> leader %d, want first live ISR member %d", seed, round, step, p, next.Leader, clean[0])
					}
				case unclean && len(any) > 0:
					if next.Leader != any[0] {
						t.Fatalf("seed %d round %d step %d: unclean %+v -> leader %d, want %d", seed, round, step, p, next.Leader, any[0])
					}
				default:
					if next.Leader != -1 {
						t.Fatalf("seed %d round %d step %d: %+v -> leader %d with no live ISR member", seed, round, step, p, next.Leader)
					}
				}
				if len(next.ISR) == 0 || !subset(next.ISR, next.Replicas) ||
					(next.Leader != -1 && !slices.Contains(next.ISR, next.Leader)) {
					t.Fatalf("seed %d round %d step %d: bad result %+v", seed, round, step, next)
				}
				// A clean election keeps the ISR within the old one: no
				// replica that may lack committed data gets in.
				if !unclean && !subset(next.ISR, p.ISR) {
					t.Fatalf("seed %d round %d step %d: ISR %v grew from %v", seed, round, step, next.ISR, p.ISR)
				}
				parts[i] = next
			}
		}
	}
}
