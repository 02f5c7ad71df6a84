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

// ProcessCPU is a reading of one process's CPU time (user and system,
// all its threads), from /proc/<pid>/stat; zero where there is none.
// Benchmarks use it to tell which process a machine's busy cores went to.
func ProcessCPU(pid int) ProcessReading {
	return ProcessReading{pid: pid, ticks: processTicks(pid), machine: MachineCPU()}
}

// ProcessReading is one ProcessCPU reading.
type ProcessReading struct {
	pid     int
	ticks   int64
	machine CPUReading
}

// Cores is how many cores the process kept busy, on average, since the
// reading.
func (r ProcessReading) Cores() float64 {
	ticks, now := processTicks(r.pid), MachineCPU()
	if now.total == r.machine.total {
		return 0
	}
	// /proc/stat's total counts every core's ticks, in the same unit.
	return float64(ticks-r.ticks) / float64(now.total-r.machine.total) * float64(runtime.NumCPU())
}

func processTicks(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from after its closing one. utime and stime are fields 14 and 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}
