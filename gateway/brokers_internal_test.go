package gateway

import (
	"fmt"
	"math"
	"testing"
)

// TestRendezvousSpread measures how node ports spread over gateways: over
// 1,000 client hosts, each connecting once to every node, each gateway
// takes close to an even share; and a gateway that leaves moves only the
// connections it had.
func TestRendezvousSpread(t *testing.T) {
	choose := func(client string, gws []int32, node int32) int32 {
		var best uint64
		at := int32(-1)
		for _, g := range gws {
			if w := rendezvous(client, g, node); at < 0 || w > best {
				best, at = w, g
			}
		}
		return at
	}
	for _, gwCount := range []int{2, 3, 8} {
		for _, nodes := range []int32{3, 12} {
			var gws []int32
			for i := range gwCount {
				gws = append(gws, int32(i))
			}
			count := map[int32]int{}
			total := 0
			for h := range 1000 {
				client := fmt.Sprintf("10.%d.%d.%d", h/65536, h/256%256, h%256)
				for n := int32(1); n <= nodes; n++ {
					count[choose(client, gws, n)]++
					total++
				}
			}
			even := float64(total) / float64(gwCount)
			worst := 0.0
			for _, g := range gws {
				if d := (float64(count[g]) - even) / even; d > worst || -d > worst {
					worst = max(d, -d)
				}
			}
			// A fair coin per connection would stray by binomial noise:
			// allow four standard deviations of it.
			p := 1 / float64(gwCount)
			bound := 4 * math.Sqrt(float64(total)*p*(1-p)) / even
			t.Logf("%d gateways, %d nodes: worst share %.1f%% off even (noise bound %.1f%%)", gwCount, nodes, 100*worst, 100*bound)
			if worst > bound {
				t.Errorf("%d gateways, %d nodes: a gateway's share is %.1f%% off even: %v", gwCount, nodes, 100*worst, count)
			}
			// The last gateway leaves: only its connections move.
			rest := gws[:len(gws)-1]
			for h := range 1000 {
				client := fmt.Sprintf("10.%d.%d.%d", h/65536, h/256%256, h%256)
				for n := int32(1); n <= nodes; n++ {
					if before := choose(client, gws, n); before != gws[len(gws)-1] && choose(client, rest, n) != before {
						t.Fatalf("client %s, node %d moved from gateway %d though it stayed", client, n, before)
					}
				}
			}
		}
	}
}
