package gateway_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/internal/natstest"
	"github.com/strata-io/strata/testenv"
)

// claimBig opens a connection that claims a request of claim bytes,
// sends the header and 4 KiB of it, and waits.
func claimBig(t *testing.T, addr string, claim int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4+4096)
	binary.BigEndian.PutUint32(b, uint32(claim))
	binary.BigEndian.PutUint16(b[4:], 0) // Produce
	binary.BigEndian.PutUint16(b[6:], 9)
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	return c
}

// heapInUse is the heap in use after a collection, in bytes.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// residentBytes is this process's resident set (VmRSS), 0 where /proc
// does not say.
func residentBytes() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestClaimedSizesCostNothing: 60 connections each claim a 100 MB request
// and send 4 KiB of it (the attack that took a gateway from 154 MB to
// 1.56 GB). Memory stays within a bound, other clients are served
// meanwhile, and each claimant is closed once its request stalls. The
// request budget is set above every claim, so that what bounds memory
// here is allocating as bytes arrive.
func TestClaimedSizesCostNothing(t *testing.T) {
	reg := prometheus.NewRegistry()
	gw := testenv.InProcess(t, 1, testenv.Options{Registry: reg, Gateway: func(cfg *gateway.Config) {
		cfg.QueuedMaxRequestBytes, cfg.StallTimeout = 8<<30, 3*time.Second
	}}).Gateway
	adm := kadm.NewClient(newClient(t, gw.Addr()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := adm.ListTopics(ctx); err != nil { // warm up: connections, caches
		t.Fatal(err)
	}
	heap0, rss0 := heapInUse(), residentBytes()

	const claimants, claim = 60, 100 << 20
	conns := make([]net.Conn, claimants)
	for i := range conns {
		conns[i] = claimBig(t, gw.Addr(), claim)
	}
	// Every claim charged: each connection is reading its request's body.
	waitGauge(t, reg, "strata_kafka_request_queue_bytes", claimants*claim)
	time.Sleep(100 * time.Millisecond) // and has its 4 KiB in

	// A bound: 64 KiB read buffer and 64 KiB first chunk per connection,
	// goroutines, with room to spare: far below one claimed request.
	const bound = 48 << 20
	heap1, rss1 := heapInUse(), residentBytes()
	t.Logf("heap in use %d MiB -> %d MiB; resident %d MiB -> %d MiB, with %d connections claiming %d MiB each",
		heap0>>20, heap1>>20, rss0>>20, rss1>>20, claimants, claim>>20)
	if heap1 > heap0+bound {
		t.Errorf("heap in use grew by %d MiB, bound %d MiB", (heap1-heap0)>>20, bound>>20)
	}
	if rss0 > 0 && rss1 > rss0+2*bound {
		t.Errorf("resident memory grew by %d MiB, bound %d MiB", (rss1-rss0)>>20, 2*bound>>20)
	}

	// Others are served meanwhile: metadata, topic creation.
	start := time.Now()
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "while-claimed"); err != nil {
		t.Fatalf("create a topic while the claimants wait: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("creating a topic took %s while the claimants waited", d)
	}

	// Each claimant is closed once its request has stalled.
	var wg sync.WaitGroup
	for _, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.Copy(io.Discard, conn); err != nil {
				t.Errorf("a stalled claimant was not closed: %v", err)
			}
		}()
	}
	wg.Wait()
}

// TestConnectionsPerIP: past max.connections.per.ip a new connection
// from the address is closed at once, and one closing makes room.
func TestConnectionsPerIP(t *testing.T) {
	gw := testenv.InProcess(t, 1, testenv.Options{Gateway: func(cfg *gateway.Config) { cfg.MaxConnectionsPerIP = 3 }}).Gateway
	var held []net.Conn
	for range 3 {
		conn, err := net.Dial("tcp", gw.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		held = append(held, conn)
	}
	closedAtOnce := func() bool {
		conn, err := net.Dial("tcp", gw.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(time.Second))
		_, err = conn.Read(make([]byte, 1))
		return err == io.EOF || (err != nil && !strings.Contains(err.Error(), "timeout"))
	}
	if !closedAtOnce() {
		t.Fatal("a fourth connection from one address was kept, max.connections.per.ip is 3")
	}
	held[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for closedAtOnce() {
		if time.Now().After(deadline) {
			t.Fatal("no room after one of three connections closed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRequestBudgetWaits: with queued.max.request.bytes taken by a
// claimant that stalls, a client's large produce waits (its connection
// unread) instead of failing, and lands once the claimant is closed.
func TestRequestBudgetWaits(t *testing.T) {
	reg := prometheus.NewRegistry()
	gw := testenv.InProcess(t, 1, testenv.Options{Registry: reg, Gateway: func(cfg *gateway.Config) {
		cfg.QueuedMaxRequestBytes, cfg.StallTimeout = 4<<20, 2*time.Second
	}}).Gateway
	cl := newClient(t, gw.Addr(), kgo.ProducerBatchMaxBytes(8<<20), kgo.RequestTimeoutOverhead(30*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "big"); err != nil {
		t.Fatal(err)
	}
	claimant := claimBig(t, gw.Addr(), 4<<20)
	defer claimant.Close()
	waitGauge(t, reg, "strata_kafka_request_queue_bytes", 4<<20) // the claimant holds the budget
	start := time.Now()
	value := make([]byte, 3<<20)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "big", Value: value}).FirstErr(); err != nil {
		t.Fatalf("a produce behind a full request budget: %v", err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("the produce took %s: it did not wait for the claimant's budget", d)
	}
}

// TestCloseWithoutNATS: a gateway stopping while NATS is away stops at
// once, without waiting to say goodbye.
func TestCloseWithoutNATS(t *testing.T) {
	ns := natstest.Start(t)
	nc := ns.Connect(t)
	gw, err := gateway.Start(gateway.Config{Cluster: "test", Conn: nc, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ns.Shutdown()
	for deadline := time.Now().Add(5 * time.Second); nc.IsConnected(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the connection did not notice NATS go")
		}
	}
	start := time.Now()
	gw.Close()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Close took %s with NATS down", d)
	}
}

// waitGauge waits (up to 10 s) until the gauge name in reg reads want.
func waitGauge(t *testing.T, reg *prometheus.Registry, name string, want float64) {
	t.Helper()
	var got float64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name && len(mf.GetMetric()) > 0 {
				got = mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		if got == want {
			return
		}
	}
	t.Fatalf("%s is %v, want %v", name, got, want)
}
