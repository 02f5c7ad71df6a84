package testenv

import (
	"os"
	"runtime"
	"strconv"
	"strings"
)

// MachineCPU is a reading of every process's CPU use (MinIO, NATS and
// child processes run apart from the test process), from /proc/stat;
// zero where there is none. Benchmarks report Cores since a reading.
func MachineCPU() CPUReading {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return CPUReading{}
	}
	var r CPUReading
	line, _, _ := strings.Cut(string(b), "\n")
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseInt(f, 10, 64)
		r.total += v
		if i != 3 && i != 4 { // idle and iowait
			r.busy += v
		}
	}
	return r
}

// CPUReading is one MachineCPU reading.
type CPUReading struct{ busy, total int64 }

// Cores is how many of the machine's cores were busy, on average, since
// the reading.
func (r CPUReading) Cores() float64 {
	now := MachineCPU()
	if now.total == r.total {
		return 0
	}
	return float64(now.busy-r.busy) / float64(now.total-r.total) * float64(runtime.NumCPU())
}
