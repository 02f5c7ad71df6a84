package testenv

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"syscall"
	"time"
)

// ChildProfileEnv names a directory: each child then writes CPU
// profiles there, one file per window, <role>-<id>-<pid>.<n>.pprof. A window
// ends, and the next begins, at SIGUSR1 (Procs.CutProfiles) and at a
// clean stop; a killed child's open window is lost. For finding where a
// benchmark's cores go in processes other than the test's. With
// ChildTraceEnv set too, the windows are execution traces instead
// (<n>.trace: go tool trace), for where a request waits.
const (
	ChildProfileEnv = "STRATA_CHILD_CPUPROFILE"
	ChildTraceEnv   = "STRATA_CHILD_TRACE"
)

// profileWindows starts a child's CPU profiles if ChildProfileEnv asks;
// the returned func ends the last window.
func profileWindows(s childSpec) func() {
	dir := os.Getenv(ChildProfileEnv)
	if dir == "" {
		return func() {}
	}
	n := 0
	ext, begin, stop := "pprof", pprof.StartCPUProfile, pprof.StopCPUProfile
	if os.Getenv(ChildTraceEnv) != "" {
		ext, begin, stop = "trace", trace.Start, trace.Stop
	}
	start := func() *os.File {
		n++
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d-%d.%d.%s", s.Role, s.ID, os.Getpid(), n, ext)))
		if err != nil {
			fmt.Fprintf(os.Stderr, "testenv child profile: %v\n", err)
			return nil
		}
		if err := begin(f); err != nil {
			fmt.Fprintf(os.Stderr, "testenv child profile: %v\n", err)
			f.Close()
			return nil
		}
		return f
	}
	end := func(f *os.File) {
		if f != nil {
			stop()
			f.Close()
		}
	}
	cur := start()
	cut := make(chan os.Signal, 1)
	signal.Notify(cut, syscall.SIGUSR1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range cut {
			end(cur)
			cur = start()
		}
	}()
	return func() {
		signal.Stop(cut)
		close(cut)
		<-done
		end(cur)
	}
}

// CutProfiles ends every running child's profile window and begins the
// next (see ChildProfileEnv), and waits until each has (a child killed
// at once would lose the window).
func (c *Procs) CutProfiles() {
	dir := os.Getenv(ChildProfileEnv)
	if dir == "" {
		return
	}
	count := func(p *proc) int {
		m, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf("%s-%d-%d.*", p.spec.Role, p.spec.ID, p.pid())))
		return len(m)
	}
	running := c.signalRunning(0) // the running children, unsignalled
	before := make([]int, len(running))
	for i, p := range running {
		before[i] = count(p)
	}
	c.signalRunning(syscall.SIGUSR1)
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; i < len(running) && time.Now().Before(deadline); {
		if count(running[i]) > before[i] {
			i++
			continue
		}
		time.Sleep(10 * time.Millisecond)
	}
}
