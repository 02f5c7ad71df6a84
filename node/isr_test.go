package node

import (
	"slices"
	"testing"
)

func TestOnlyLiveJoin(t *testing.T) {
	live := map[int32]bool{1: true, 2: true}
	for _, tc := range []struct {
		current, want, out []int32
		changed            bool
	}{
		{[]int32{1, 2}, []int32{1, 2, 3}, []int32{1, 2}, false},   // 3 is not alive: it stays out
		{[]int32{1}, []int32{1, 2, 3}, []int32{1, 2}, true},       // 2 joins, 3 does not
		{[]int32{1, 3}, []int32{1, 3}, []int32{1, 3}, false},      // a member is never dropped for being silent here
		{[]int32{1, 2, 3}, []int32{1, 2}, []int32{1, 2}, true},    // leaving is always allowed
		{[]int32{2, 1}, []int32{1, 2}, []int32{1, 2}, false},      // order alone is no change
		{[]int32{3, 1}, []int32{1, 3, 2}, []int32{1, 3, 2}, true}, // a live joiner next to a deaf member
	} {
		out, changed := onlyLiveJoin(tc.current, tc.want, live)
		if !slices.Equal(out, tc.out) || changed != tc.changed {
			t.Errorf("onlyLiveJoin(%v, %v) = %v, %v; want %v, %v", tc.current, tc.want, out, changed, tc.out, tc.changed)
		}
	}
}
