package bufpool

import "testing"

func TestGetPut(t *testing.T) {
	for _, n := range []int{0, 1, 4096, 4097, 1 << 20, 1<<20 + 1, 3 << 20, 1 << 26, 1<<26 + 1} {
		b := Get(n)
		if len(b) != 0 || cap(b) < n {
			t.Fatalf("Get(%d): len %d cap %d", n, len(b), cap(b))
		}
		Put(append(b, make([]byte, n)...))
	}
	// A buffer whose capacity is not a class serves the class below it.
	Put(make([]byte, 0, 3<<20))
	for range 4 {
		if b := Get(2 << 20); cap(b) < 2<<20 {
			t.Fatalf("Get(2 MiB) after Put(3 MiB): cap %d", cap(b))
		}
	}
	Put(nil)
	Put(make([]byte, 10))
}

func BenchmarkGetPut1MiB(b *testing.B) {
	for range b.N {
		buf := Get(1 << 20)
		buf = append(buf, 1)
		Put(buf)
	}
}
