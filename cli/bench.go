package cli

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	ucli "github.com/urfave/cli/v2"
)

func benchCommand() *ucli.Command {
	common := []ucli.Flag{brokersFlag,
		&ucli.StringFlag{Name: "topic", Aliases: []string{"t"}, Value: "strata-bench", EnvVars: envVars("topic"), Usage: "topic (created if missing)"},
		&ucli.IntFlag{Name: "records", Aliases: []string{"n"}, Value: 1_000_000, EnvVars: envVars("records"), Usage: "records to send or read"},
		&ucli.IntFlag{Name: "size", Aliases: []string{"s"}, Value: 1024, EnvVars: envVars("size"), Usage: "record value bytes"},
		&ucli.IntFlag{Name: "partitions", Aliases: []string{"p"}, Value: 6, EnvVars: envVars("partitions"), Usage: "partitions when creating the topic"},
		&ucli.StringFlag{Name: "acks", Value: "all", EnvVars: envVars("acks"), Usage: "all, 1 or 0"},
		&ucli.IntFlag{Name: "rate", EnvVars: envVars("rate"), Usage: "records per second to aim for (0: as fast as possible)"},
		&ucli.StringFlag{Name: "compression", Value: "none", EnvVars: envVars("compression"), Usage: "none, gzip, snappy, lz4 or zstd (values are random bytes)"},
		&ucli.IntFlag{Name: "max-inflight", Value: 5, EnvVars: envVars("max-inflight"), Usage: "produce requests in flight per broker with --acks 1 or 0 (max.in.flight.requests.per.connection; idempotent acks=all always uses 5)"},
	}
	return &ucli.Command{
		Name:  "bench",
		Usage: "measure produce, consume and end-to-end throughput and latency",
		Subcommands: []*ucli.Command{
			{Name: "produce", Usage: "produce records; report MB/s, records/s and latency percentiles", Flags: common, Action: benchProduce},
			{Name: "consume", Usage: "read records from the start; report MB/s and records/s", Flags: common, Action: benchConsume},
			{Name: "e2e", Usage: "produce and consume at once; report end-to-end latency percentiles", Flags: common, Action: benchE2E},
		},
	}
}

// percentiles summarizes latencies.
func percentiles(d []time.Duration) string {
	if len(d) == 0 {
		return "no samples"
	}
	slices.Sort(d)
	p := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	return fmt.Sprintf("p50 %v p99 %v p999 %v max %v", p(0.50).Round(time.Microsecond), p(0.99).Round(time.Microsecond),
		p(0.999).Round(time.Microsecond), d[len(d)-1].Round(time.Microsecond))
}

// progress prints a line a second until stop is closed.
func progress(w io.Writer, what string, count func() int64, total int, size int, stop <-chan struct{}) {
	start := time.Now()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			n := count()
			secs := time.Since(start).Seconds()
			fmt.Fprintf(w, "%s %d/%d records, %.0f records/s, %.1f MB/s\n", what, n, total, float64(n)/secs, float64(n)*float64(size)/secs/1e6)
		}
	}
}

func ensureBenchTopic(c *ucli.Context, cl *kgo.Client) error {
	adm := kadm.NewClient(cl)
	r, err := adm.CreateTopic(c.Context, int32(c.Int("partitions")), 1, nil, c.String("topic"))
	if err == nil {
		err = r.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return err
	}
	return nil
}

func benchProducerOpts(c *ucli.Context) ([]kgo.Opt, error) {
	codec, ok := map[string]kgo.CompressionCodec{"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(),
		"snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()}[c.String("compression")]
	if !ok {
		return nil, fmt.Errorf("--compression %q must be none, gzip, snappy, lz4 or zstd", c.String("compression"))
	}
	opts := []kgo.Opt{kgo.DefaultProduceTopic(c.String("topic")), kgo.ProducerLinger(5 * time.Millisecond),
		kgo.MaxBufferedRecords(100_000), kgo.ProducerBatchCompression(codec)}
	// Without idempotence kgo keeps one produce request in flight per
	// broker unless told otherwise; the Java client's default is 5, and
	// acks=1 measured at one in flight trails acks=all at five.
	if c.Int("max-inflight") < 1 {
		return nil, fmt.Errorf("--max-inflight %d must be at least 1", c.Int("max-inflight"))
	}
	switch c.String("acks") {
	case "all", "-1":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(c.Int("max-inflight")))
	case "0":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(c.Int("max-inflight")))
	default:
		return nil, fmt.Errorf("--acks %q must be all, 1 or 0", c.String("acks"))
	}
	return opts, nil
}

// produceN sends n records of size bytes (the first 8 the send time in
// nanoseconds), paced to rate records/s if set, and returns the per-record
// acknowledgement latencies.
func produceN(c *ucli.Context, cl *kgo.Client, n, size, rate int, sent *int64, mu *sync.Mutex) ([]time.Duration, error) {
	lat := make([]time.Duration, 0, n)
	// Random values, so compression cannot flatter the figures.
	noise := make([]byte, max(size, 8)+4096)
	rand.Read(noise)
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		if rate > 0 {
			if wait := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); wait > 0 {
				time.Sleep(wait)
			}
		}
		v := make([]byte, max(size, 8))
		copy(v, noise[i%4096:])
		t0 := time.Now()
		binary.BigEndian.PutUint64(v, uint64(t0.UnixNano()))
		wg.Add(1)
		cl.Produce(c.Context, &kgo.Record{Value: v}, func(_ *kgo.Record, err error) {
			d := time.Since(t0)
			mu.Lock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			lat = append(lat, d)
			*sent++
			mu.Unlock()
			wg.Done()
		})
	}
	wg.Wait()
	return lat, firstErr
}

func benchProduce(c *ucli.Context) error {
	opts, err := benchProducerOpts(c)
	if err != nil {
		return fmt.Errorf("bench produce: %w", err)
	}
	cl, err := newKafkaClient(c, opts...)
	if err != nil {
		return fmt.Errorf("bench produce: %w", err)
	}
	defer cl.Close()
	if err := ensureBenchTopic(c, cl); err != nil {
		return fmt.Errorf("bench produce: %w", err)
	}
	n, size := c.Int("records"), c.Int("size")
	var mu sync.Mutex
	var sent int64
	stop := make(chan struct{})
	go progress(c.App.ErrWriter, "produced", func() int64 { mu.Lock(); defer mu.Unlock(); return sent }, n, size, stop)
	start := time.Now()
	lat, err := produceN(c, cl, n, size, c.Int("rate"), &sent, &mu)
	elapsed := time.Since(start)
	close(stop)
	if err != nil {
		return fmt.Errorf("bench produce: %w", err)
	}
	fmt.Fprintf(c.App.Writer, "produce: %d records of %d bytes in %v: %.0f records/s, %.1f MB/s; latency %s\n",
		n, size, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), float64(n)*float64(size)/elapsed.Seconds()/1e6, percentiles(lat))
	return nil
}

func benchConsume(c *ucli.Context) error {
	cl, err := newKafkaClient(c, kgo.ConsumeTopics(c.String("topic")), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(16<<20))
	if err != nil {
		return fmt.Errorf("bench consume: %w", err)
	}
	defer cl.Close()
	n := c.Int("records")
	var got, bytes int64
	var mu sync.Mutex
	stop := make(chan struct{})
	go progress(c.App.ErrWriter, "consumed", func() int64 { mu.Lock(); defer mu.Unlock(); return got }, n, c.Int("size"), stop)
	start := time.Now()
	for got < int64(n) {
		fs := cl.PollFetches(c.Context)
		if err := fs.Err0(); err != nil {
			close(stop)
			return fmt.Errorf("bench consume: %w", err)
		}
		mu.Lock()
		fs.EachRecord(func(r *kgo.Record) { got++; bytes += int64(len(r.Value)) })
		mu.Unlock()
	}
	elapsed := time.Since(start)
	close(stop)
	fmt.Fprintf(c.App.Writer, "consume: %d records, %d bytes in %v: %.0f records/s, %.1f MB/s\n",
		got, bytes, elapsed.Round(time.Millisecond), float64(got)/elapsed.Seconds(), float64(bytes)/elapsed.Seconds()/1e6)
	return nil
}

func benchE2E(c *ucli.Context) error {
	opts, err := benchProducerOpts(c)
	if err != nil {
		return fmt.Errorf("bench e2e: %w", err)
	}
	prod, err := newKafkaClient(c, opts...)
	if err != nil {
		return fmt.Errorf("bench e2e: %w", err)
	}
	defer prod.Close()
	if err := ensureBenchTopic(c, prod); err != nil {
		return fmt.Errorf("bench e2e: %w", err)
	}
	// Start exactly at today's log ends, so every record produced below is
	// read and nothing older is.
	ends, err := kadm.NewClient(prod).ListEndOffsets(c.Context, c.String("topic"))
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("bench e2e: %w", err)
	}
	at := map[string]map[int32]kgo.Offset{c.String("topic"): {}}
	ends.Each(func(o kadm.ListedOffset) { at[o.Topic][o.Partition] = kgo.NewOffset().At(o.Offset) })
	cons, err := newKafkaClient(c, kgo.ConsumePartitions(at), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return fmt.Errorf("bench e2e: %w", err)
	}
	defer cons.Close()
	n := c.Int("records")
	e2e := make([]time.Duration, 0, n)
	done := make(chan error, 1)
	go func() {
		for len(e2e) < n {
			fs := cons.PollFetches(c.Context)
			if err := fs.Err0(); err != nil {
				done <- err
				return
			}
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				if len(r.Value) >= 8 {
					e2e = append(e2e, now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(r.Value)))))
				}
			})
		}
		done <- nil
	}()
	var mu sync.Mutex
	var sent int64
	stop := make(chan struct{})
	go progress(c.App.ErrWriter, "produced", func() int64 { mu.Lock(); defer mu.Unlock(); return sent }, n, c.Int("size"), stop)
	start := time.Now()
	if _, err := produceN(c, prod, n, c.Int("size"), c.Int("rate"), &sent, &mu); err != nil {
		close(stop)
		return fmt.Errorf("bench e2e: %w", err)
	}
	err = <-done
	close(stop)
	if err != nil {
		return fmt.Errorf("bench e2e: %w", err)
	}
	elapsed := time.Since(start)
	fmt.Fprintf(c.App.Writer, "e2e: %d records of %d bytes in %v: %.0f records/s; produce-to-consume latency %s\n",
		n, c.Int("size"), elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), percentiles(e2e))
	return nil
}
