package gateway_test

import (
	"context"
	"crypto/rand"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
)

// txnBenchRecords of txnBenchSize bytes are produced by each producer of
// BenchmarkTransactions.
const (
	txnBenchRecords = 100_000
	txnBenchSize    = 1024
)

// BenchmarkTransactions measures, in one run on one cluster (a node and
// a gateway in one process, over the node's stream, as strata node
// serves gateways by default): an idempotent producer's throughput (the
// baseline), then a transactional producer's with transactions of 100
// records and of 10,000, each committing; the commit latency (EndTxn)
// of the 100-record transactions; then read_committed against
// read_uncommitted consumption of the same topic, a tenth of whose
// transactions aborted. One partition, acks=all, 1 KiB records, not
// compressed (they are one random value repeated).
//
//	go test -run '^$' -bench Transactions -benchtime 1x ./gateway
func BenchmarkTransactions(b *testing.B) {
	payload := make([]byte, txnBenchSize)
	rand.Read(payload)
	mb := func(n int, d time.Duration) float64 { return float64(n*txnBenchSize) / d.Seconds() / 1e6 }
	for range b.N {
		c := testenv.InProcess(b, 1, testenv.Options{Streams: true})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		adm := kadm.NewClient(newClient(b, c.Addr()))
		for _, topic := range []string{"idem", "txn100", "txn10k"} {
			if r, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil || r.Err != nil {
				b.Fatal(err, r.Err)
			}
		}
		// The baseline: idempotent, as fast as acknowledgements allow.
		idem, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.DefaultProduceTopic("idem"), kgo.ProducerBatchCompression(kgo.NoCompression()))
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for range txnBenchRecords {
			idem.Produce(ctx, &kgo.Record{Value: payload}, func(_ *kgo.Record, err error) {
				if err != nil {
					b.Error(err)
				}
			})
		}
		if err := idem.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		idemRate := mb(txnBenchRecords, time.Since(start))
		idem.Close()

		b.ResetTimer()
		txnRun := func(topic string, perTxn int, abortEvery int) (float64, []time.Duration) {
			p, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.DefaultProduceTopic(topic), kgo.TransactionalID("bench-"+topic),
				kgo.ProducerBatchCompression(kgo.NoCompression()))
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			var commits []time.Duration
			start := time.Now()
			for i := 0; i < txnBenchRecords/perTxn; i++ {
				if err := p.BeginTransaction(); err != nil {
					b.Fatal(err)
				}
				for range perTxn {
					p.Produce(ctx, &kgo.Record{Value: payload}, func(_ *kgo.Record, err error) {
						if err != nil {
							b.Error(err)
						}
					})
				}
				if err := p.Flush(ctx); err != nil {
					b.Fatal(err)
				}
				commit := abortEvery == 0 || i%abortEvery != abortEvery-1
				t0 := time.Now()
				if err := p.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
					b.Fatal(err)
				}
				commits = append(commits, time.Since(t0))
			}
			return mb(txnBenchRecords, time.Since(start)), commits
		}
		rate100, commits := txnRun("txn100", 100, 10)
		rate10k, _ := txnRun("txn10k", 10_000, 0)

		// Read the 100-record topic back both ways.
		read := func(level kgo.IsolationLevel) (float64, int) {
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.ConsumeTopics("txn100"), kgo.FetchIsolationLevel(level),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxPartitionBytes(1<<20))
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			want := txnBenchRecords
			if level == kgo.ReadCommitted() {
				want -= txnBenchRecords / 10
			}
			n := 0
			start := time.Now()
			for n < want {
				fs := cl.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					b.Fatal(err)
				}
				n += fs.NumRecords()
			}
			return mb(n, time.Since(start)), n
		}
		unc, _ := read(kgo.ReadUncommitted())
		com, n := read(kgo.ReadCommitted())
		b.StopTimer()
		slices.Sort(commits)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		b.ReportMetric(idemRate, "idempotent-MB/s")
		b.ReportMetric(rate100, "txn100-MB/s")
		b.ReportMetric(rate100/idemRate, "txn100/idempotent")
		b.ReportMetric(rate10k, "txn10k-MB/s")
		b.ReportMetric(rate10k/idemRate, "txn10k/idempotent")
		b.ReportMetric(ms(commits[len(commits)/2]), "commit-p50-ms")
		b.ReportMetric(ms(commits[len(commits)*99/100]), "commit-p99-ms")
		b.ReportMetric(unc, "read-uncommitted-MB/s")
		b.ReportMetric(com, "read-committed-MB/s")
		b.ReportMetric(com/unc, "committed/uncommitted")
		b.Logf("read_committed read %s records (the aborted tenth skipped)", strconv.Itoa(n))
		cancel()
	}
}
