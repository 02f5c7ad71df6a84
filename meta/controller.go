package meta

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"slices"
)

// This file holds the controller's decisions as pure functions, so they
// can be tested against a naive oracle: replica assignment and leader
// election. The controller loop (Raft leader) feeds them the live nodes
// and proposes what they return.

// AssignReplicas places partitions [first, first+count) of a topic on the
// live nodes with rf replicas each; existing holds the topic's current
// assignment, so added partitions keep the balance.
//
// Leaders go round-robin over the nodes, in an order that alternates
// racks and starts at a point picked by the topic's name, so leader counts
// differ by at most one between nodes and spread across racks. Followers
// then water-fill: each is the node whose eventual replica count (what it
// holds plus the leaderships still to come in this assignment) is lowest,
// among nodes on a rack the partition does not use yet (any rack once all
// are used); ties go to the node after the leader. Without racks, replica
// counts end up differing by at most one; with racks, every partition
// spans min(rf, racks) racks.
func AssignReplicas(topic string, nodes []Node, first, count int, rf int, existing [][]int32) ([][]int32, error) {
	if rf < 1 || rf > len(nodes) {
		return nil, fmt.Errorf("%w: replication factor %d with %d live nodes", ErrNotEnoughNodes, rf, len(nodes))
	}
	order := rackAlternated(nodes)
	pos := make(map[int32]int, len(order))
	rack := make(map[int32]string, len(order))
	for i, n := range order {
		pos[n.ID] = i
		rack[n.ID] = n.Rack
	}
	h := fnv.New32a()
	h.Write([]byte(topic))
	start := int(h.Sum32() % uint32(len(order)))
	leaderOf := func(i int) int32 { return order[(start+first+i)%len(order)].ID }
	// eventual: replicas held now plus leaderships still to come.
	eventual := map[int32]int{}
	for _, replicas := range existing {
		for _, r := range replicas {
			eventual[r]++
		}
	}
	for i := range count {
		eventual[leaderOf(i)]++
	}
	out := make([][]int32, count)
	for i := range count {
		leader := leaderOf(i)
		replicas := []int32{leader}
		usedRacks := map[string]bool{rack[leader]: true}
		for len(replicas) < rf {
			var best int32 = -1
			bestFresh := false
			for k := 1; k < len(order); k++ {
				c := order[(pos[leader]+k)%len(order)].ID
				if slices.Contains(replicas, c) {
					continue
				}
				fresh := !usedRacks[rack[c]]
				if best == -1 || (fresh && !bestFresh) || (fresh == bestFresh && eventual[c] < eventual[best]) {
					best, bestFresh = c, fresh
				}
			}
			replicas = append(replicas, best)
			usedRacks[rack[best]] = true
			eventual[best]++
		}
		out[i] = replicas
	}
	return out, nil
}

// rackAlternated orders nodes by id within each rack, then interleaves
// racks: a1, b1, c1, a2, b2, ... (Kafka's rack-alternated broker list).
func rackAlternated(nodes []Node) []Node {
	byRack := map[string][]Node{}
	var racks []string
	for _, n := range nodes {
		if _, ok := byRack[n.Rack]; !ok {
			racks = append(racks, n.Rack)
		}
		byRack[n.Rack] = append(byRack[n.Rack], n)
	}
	slices.Sort(racks)
	for _, r := range racks {
		slices.SortFunc(byRack[r], func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	}
	out := make([]Node, 0, len(nodes))
	for i := 0; len(out) < len(nodes); i++ {
		for _, r := range racks {
			if i < len(byRack[r]) {
				out = append(out, byRack[r][i])
			}
		}
	}
	return out
}

// ElectLeader decides a partition's leadership given which nodes are
// alive. It returns the change to propose, or ok=false when the partition
// is fine as it is.
//
// The leader must be a live replica in the ISR, preferring replica order
// (the first replica is the preferred leader). Dead members leave the
// ISR, except the last one: a partition whose whole ISR is dead keeps its
// last member there, so it comes back clean when that node returns. With
// no live ISR member the partition goes offline (leader -1) unless unclean
// election is allowed, which picks the first live replica and loses what
// only the ISR had.
func ElectLeader(p Partition, alive func(int32) bool, unclean bool) (ChangeLeader, bool) {
	var isr []int32
	for _, r := range p.ISR {
		if alive(r) {
			isr = append(isr, r)
		}
	}
	leader := int32(-1)
	for _, r := range p.Replicas {
		if slices.Contains(isr, r) {
			leader = r
			break
		}
	}
	if leader == -1 {
		isr = p.ISR
		if len(isr) > 1 {
			// Keep the last member standing: the one that may hold
			// everything committed.
			isr = []int32{p.ISR[0]}
			if slices.Contains(p.ISR, p.Leader) {
				isr = []int32{p.Leader}
			}
		}
		if unclean {
			for _, r := range p.Replicas {
				if alive(r) {
					leader, isr = r, []int32{r}
					break
				}
			}
		}
	}
	if leader == p.Leader && slices.Equal(isr, p.ISR) {
		return ChangeLeader{}, false
	}
	return ChangeLeader{Topic: p.Topic, Partition: p.Partition, Leader: leader, ISR: isr, PartitionEpoch: p.PartitionEpoch}, true
}
