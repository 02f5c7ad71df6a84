// Package bufpool reuses the large byte buffers of the data path (fetch
// reads, encoded requests and responses, request frames), so moving a
// megabyte does not also cost allocating and zeroing one, and the
// garbage collector runs less often.
//
// A buffer given back with Put must not be used again by anyone: give
// back only what nothing else can still reference.
package bufpool

import (
	"math/bits"
	"sync"
)

const (
	// minClass and maxClass bound the pooled capacities, as powers of
	// two: smaller buffers are cheap to allocate, larger ones are not
	// kept.
	minClass = 12 // 4 KiB
	maxClass = 26 // 64 MiB
)

var pools [maxClass + 1]sync.Pool

// class is the smallest power of two >= n, as an exponent.
func class(n int) int {
	if n <= 1<<minClass {
		return minClass
	}
	return bits.Len(uint(n - 1))
}

// Get returns an empty buffer with room for at least n bytes.
func Get(n int) []byte {
	c := class(n)
	if c > maxClass {
		return make([]byte, 0, n)
	}
	if b, ok := pools[c].Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 1<<c)
}

// Put gives b back for reuse. Buffers whose capacity is not a pooled
// size (grown by append, say) go to the class below their capacity.
func Put(b []byte) {
	c := bits.Len(uint(cap(b))) - 1 // the largest class that fits
	if c < minClass || c > maxClass {
		return
	}
	b = b[: 0 : 1<<c]
	pools[c].Put(&b)
}
