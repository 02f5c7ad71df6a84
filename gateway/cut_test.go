package gateway_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/testenv"
)

// TestConnectionCutsMidTransfer produces and consumes through a proxy
// that cuts every client connection after a random number of bytes in
// either direction, so requests and responses break off mid-frame: an
// idempotent producer's records must all land once and in order, and a
// consumer must read them back intact. On each data path.
func TestConnectionCutsMidTransfer(t *testing.T) {
	for _, path := range dataPaths {
		t.Run(path.name, func(t *testing.T) { testConnectionCutsMidTransfer(t, path.opts) })
	}
}

func testConnectionCutsMidTransfer(t *testing.T, opts testenv.Options) {
	seed := testenv.Seed(t)
	// On the stream path, a second cutter sits between the gateway and
	// the node, so the node's answers break off too.
	var nodeCutter *cutter
	var target atomic.Value // the node's stream address, once it listens
	if opts.Streams {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		nodeCutter = startCutter(ln, func() string { s, _ := target.Load().(string); return s }, seed+1)
		defer nodeCutter.close()
		opts.StreamAdvertised = map[int32]string{1: ln.Addr().String()}
	}
	// Every gateway lists the gateways as brokers (as behind a load
	// balancer), so that no Metadata answer sends a client past the proxy.
	opts.Gateway = func(cfg *gateway.Config) { cfg.BrokersAreGateways = true }
	c := testenv.InProcess(t, 1, opts)
	if opts.Streams {
		target.Store(c.Nodes[1].Stream.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var nodes map[int32]gateway.LocalNode
	if opts.LocalPath {
		nodes = map[int32]gateway.LocalNode{1: c.Nodes[1].Node}
	}
	// A gateway of its own, advertising the proxy, so that every
	// connection a client makes goes through it.
	gw, err := gateway.Start(gateway.Config{Cluster: "test", Conn: c.Conn(), ID: 7, Addr: "127.0.0.1:0",
		AdvertisedAddr: ln.Addr().String(), Local: nodes, BrokersAreGateways: true})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	if opts.Streams {
		testenv.WaitStreams(t, gw, 1)
	}
	cp := startCutter(ln, func() string { return gw.Addr() }, seed)
	defer cp.close()

	adm := kadm.NewClient(newClient(t, c.Addr()))
	if r, err := adm.CreateTopic(ctx, 1, 1, nil, "cut"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(ln.Addr().String()), kgo.DefaultProduceTopic("cut"),
		kgo.ProducerLinger(time.Millisecond), kgo.ProducerBatchMaxBytes(16<<10),
		kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	rng := rand.New(rand.NewPCG(seed, 1))
	const n = 3000
	values := make([][]byte, n)
	var failed atomic.Int64
	for i := range values {
		v := make([]byte, 200+rng.IntN(1800)) // random: compression keeps its size
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		values[i] = fmt.Appendf(nil, "%06d-%s", i, v)
		prod.Produce(ctx, &kgo.Record{Value: values[i]}, func(_ *kgo.Record, err error) {
			if err != nil && failed.Add(1) == 1 {
				t.Errorf("record %d: %v", i, err)
			}
		})
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if failed.Load() > 0 {
		t.Fatalf("%d records failed", failed.Load())
	}
	produceCuts := cp.cuts.Load()

	cons, err := kgo.NewClient(kgo.SeedBrokers(ln.Addr().String()), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		"cut": {0: kgo.NewOffset().At(0)}}), kgo.FetchMaxPartitionBytes(128<<10),
		kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for next := int64(0); next < n; {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records", next, n)
		}
		for _, r := range fs.Records() {
			if r.Offset != next || string(r.Value) != string(values[next]) {
				t.Fatalf("offset %d holds %.6q, want record %d", r.Offset, r.Value, next)
			}
			next++
		}
	}
	if end, err := adm.ListEndOffsets(ctx, "cut"); err != nil || end[`cut`][0].Offset != n {
		t.Fatalf("end offset %v, %v: want %d (a record landed twice)", end, err, n)
	}
	// Enough cuts on each side to have broken frames off midway.
	if produceCuts < 5 || cp.cuts.Load()-produceCuts < 3 {
		t.Fatalf("only %d cuts while producing and %d while consuming", produceCuts, cp.cuts.Load()-produceCuts)
	}
	t.Logf("%d cuts while producing, %d while consuming", produceCuts, cp.cuts.Load()-produceCuts)
	if opts.Streams {
		// The gateway asked the node over its stream, and that broke off
		// midway too.
		if served := c.Nodes[1].Stream.Served(); served == 0 || nodeCutter.cuts.Load() < 3 {
			t.Fatalf("the node's stream served %d requests and was cut %d times", served, nodeCutter.cuts.Load())
		}
		t.Logf("the node's stream served %d requests and was cut %d times", c.Nodes[1].Stream.Served(), nodeCutter.cuts.Load())
	}
}

// cutter forwards connections to target and closes each, both ways, once
// it has carried a random number of bytes (up to 256 KiB up, 512 KiB down,
// several requests and responses of the test's clients)
// in either direction, in the middle of whatever it was writing.
type cutter struct {
	ln     net.Listener
	target func() string
	cuts   atomic.Int64
	mu     sync.Mutex
	rng    *rand.Rand
	live   map[net.Conn]bool
	wg     sync.WaitGroup
}

func startCutter(ln net.Listener, target func() string, seed uint64) *cutter {
	c := &cutter{ln: ln, target: target, rng: rand.New(rand.NewPCG(seed, 2)), live: map[net.Conn]bool{}}
	c.wg.Add(1)
	go c.accept()
	return c
}

func (c *cutter) accept() {
	defer c.wg.Done()
	for {
		down, err := c.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", c.target())
		if err != nil {
			down.Close()
			continue
		}
		c.mu.Lock()
		upBudget, downBudget := 1+c.rng.Int64N(256<<10), 1+c.rng.Int64N(512<<10)
		c.live[up], c.live[down] = true, true
		c.mu.Unlock()
		var once sync.Once
		cut := func() {
			once.Do(func() {
				up.Close()
				down.Close()
				c.mu.Lock()
				delete(c.live, up)
				delete(c.live, down)
				c.mu.Unlock()
			})
		}
		c.wg.Add(2)
		go c.pipe(up, down, upBudget, cut)
		go c.pipe(down, up, downBudget, cut)
	}
}

// pipe copies src to dst until budget bytes have gone, then cuts (and
// counts the cut); a side that closes first closes the other.
func (c *cutter) pipe(dst, src net.Conn, budget int64, cut func()) {
	defer c.wg.Done()
	if n, _ := io.Copy(dst, io.LimitReader(src, budget)); n == budget {
		c.cuts.Add(1)
	}
	cut()
}

func (c *cutter) close() {
	c.ln.Close()
	c.mu.Lock()
	for conn := range c.live {
		conn.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
}
