package node_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/meta"
	"github.com/strata-io/strata/testenv"
)

// BenchmarkTierReplay measures, in one run against one MinIO, on the same
// objects:
//   - upload: closed segments a node uploads once tiering is switched on
//     (the uploader, 2 workers) against minio-go PutObject of the same
//     files, 2 at a time;
//   - replay: a consumer reading the uploaded part of a topic from offset
//     0 through the gateway (cold cache) against minio-go GetObject of the
//     same .log objects, one after another;
//   - the same replay through a second gateway that reads the store
//     itself (gw-*), cold and warm;
//   - time to first record of that cold replay, and the chunk cache's hit
//     ratio on a second replay;
//   - the cores the whole machine kept busy during the raw GETs and the
//     cold replay (MinIO is a process of its own).
//
// Run with: go test -run '^$' -bench TierReplay -benchtime 1x ./node
func BenchmarkTierReplay(b *testing.B) {
	mb := func(bytes int64, d time.Duration) float64 { return float64(bytes) / d.Seconds() / 1e6 }
	for range b.N {
		m := testenv.StartMinIO(b)
		store := m.Store("tier", "")
		raw, err := minio.New(m.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.Secret, "")})
		if err != nil {
			b.Fatal(err)
		}
		const total, segment = 384 << 20, 32 << 20
		c := testenv.InProcess(b, 1, testenv.Options{Tier: store, MaintainInterval: 100 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.ProducerBatchCompression(kgo.NoCompression()),
			kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(5*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		adm := kadm.NewClient(cl)
		if r, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{
			"segment.bytes":         kadm.StringPtr(fmt.Sprint(segment)),
			"local.retention.bytes": kadm.StringPtr("1"),
		}, "bench"); err != nil || r.Err != nil {
			b.Fatal(err, r.Err)
		}
		value := make([]byte, 16<<10)
		for i := range value {
			value[i] = byte(rand.Uint32())
		}
		for range total / len(value) {
			cl.Produce(ctx, &kgo.Record{Topic: "bench", Value: value}, nil)
		}
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		// Tiering switched on once the segments are closed: the upload
		// rate is over the time from the switch to the last one recorded.
		uploadStart := time.Now()
		if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "remote.storage.enable", Value: kadm.StringPtr("true")}}, "bench"); err != nil {
			b.Fatal(err)
		}
		var segs []meta.TierSegment
		for {
			v := c.Nodes[1].Member.Server().FSM().View()
			segs, _ = v.TierSegments("bench", 0)
			v.Close()
			if len(segs) >= total/segment-1 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		lastRecorded := time.Now()
		// Local retention then empties the disk: wait for it, so the
		// replay below reads from the store.
		for {
			if local, _ := listOffset(ctx, b, cl, "bench", -4); local > segs[len(segs)-1].LastOffset {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		var uploaded int64
		for _, s := range segs {
			uploaded += s.SizeBytes
		}
		uploadRate := mb(uploaded, lastRecorded.Sub(uploadStart))

		// Raw GET of the uploaded .log objects, one after another.
		getCPU := testenv.MachineCPU()
		getStart := time.Now()
		var got int64
		for _, s := range segs {
			o, err := raw.GetObject(ctx, "tier", s.ObjectKey, minio.GetObjectOptions{})
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, o)
			o.Close()
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
		getRate := mb(got, time.Since(getStart))
		getCores := getCPU.Cores()

		// Raw PUT of the same segments from local files, two at a time
		// (the uploader's workers), to another bucket. The files are
		// copies: local retention deleted the originals once uploaded.
		tmp := b.TempDir()
		var files []string
		for _, s := range segs {
			if err := raw.FGetObject(ctx, "tier", s.ObjectKey, filepath.Join(tmp, filepath.Base(s.ObjectKey)), minio.GetObjectOptions{}); err != nil {
				b.Fatal(err)
			}
			files = append(files, filepath.Join(tmp, filepath.Base(s.ObjectKey)))
		}
		m.CreateBucket("raw")
		var putBytes int64
		putStart := time.Now()
		sem := make(chan struct{}, 2)
		errs := make(chan error, len(files))
		for _, f := range files {
			sem <- struct{}{}
			go func() {
				defer func() { <-sem }()
				fh, err := os.Open(f)
				if err == nil {
					fi, _ := fh.Stat()
					_, err = raw.PutObject(ctx, "raw", filepath.Base(f), fh, fi.Size(), minio.PutObjectOptions{PartSize: 16 << 20, NumThreads: 4})
					fh.Close()
				}
				errs <- err
			}()
			fi, _ := os.Stat(f)
			putBytes += fi.Size()
		}
		for range files {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
		putRate := mb(putBytes, time.Since(putStart))

		// Replay the uploaded part through the gateway, twice.
		end := segs[len(segs)-1].LastOffset + 1
		replay := func(addr string) (time.Duration, time.Duration) {
			rc, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
				"bench": {0: kgo.NewOffset().At(0)}}), kgo.FetchMaxPartitionBytes(8<<20), kgo.FetchMaxBytes(64<<20))
			if err != nil {
				b.Fatal(err)
			}
			defer rc.Close()
			start := time.Now()
			var ttfb time.Duration
			for next := int64(0); next < end; {
				fs := rc.PollFetches(ctx)
				if ctx.Err() != nil {
					b.Fatalf("replay stopped at %d of %d", next, end)
				}
				fs.EachRecord(func(r *kgo.Record) {
					if ttfb == 0 {
						ttfb = time.Since(start)
					}
					next = r.Offset + 1
				})
			}
			return time.Since(start), ttfb
		}
		before := c.Nodes[1].Node.RemoteReadStats()
		var prof *os.File
		if path := os.Getenv("STRATA_REPLAY_PROFILE"); path != "" {
			prof, _ = os.Create(path)
			pprof.StartCPUProfile(prof)
		}
		coldCPU := testenv.MachineCPU()
		cold, ttfb := replay(c.Addr())
		coldCores := coldCPU.Cores()
		if prof != nil {
			pprof.StopCPUProfile()
			prof.Close()
		}
		mid := c.Nodes[1].Node.RemoteReadStats()
		warm, _ := replay(c.Addr())
		after := c.Nodes[1].Node.RemoteReadStats()
		hits, misses := after.ChunkHits-mid.ChunkHits, after.ChunkMisses-mid.ChunkMisses

		// The same replays through a gateway that reads the store itself
		// (strata gateway --tier-url): the bytes skip the node and NATS.
		gw, err := gateway.Start(gateway.Config{Cluster: "test", Conn: c.Conn(), ID: 1, Addr: "127.0.0.1:0", Tier: store})
		if err != nil {
			b.Fatal(err)
		}
		gwCPU := testenv.MachineCPU()
		gwCold, gwTTFB := replay(gw.Addr())
		gwCores := gwCPU.Cores()
		gwWarm, _ := replay(gw.Addr())
		gwStats, _ := gw.RemoteReadStats()
		gw.Close()
		if nodeAfter := c.Nodes[1].Node.RemoteReadStats(); nodeAfter.ChunkHits+nodeAfter.ChunkMisses != after.ChunkHits+after.ChunkMisses {
			b.Fatalf("the node read for a gateway that reads the store itself: %+v then %+v", after, nodeAfter)
		}

		b.ReportMetric(uploadRate, "upload-MB/s")
		b.ReportMetric(putRate, "rawput-MB/s")
		b.ReportMetric(uploadRate/putRate, "upload/put")
		b.ReportMetric(mb(uploaded, cold), "replay-MB/s")
		b.ReportMetric(getRate, "rawget-MB/s")
		b.ReportMetric(coldCores, "replay-cores")
		b.ReportMetric(getCores, "rawget-cores")
		b.ReportMetric(mb(uploaded, cold)/getRate, "replay/get")
		b.ReportMetric(float64(ttfb.Microseconds())/1000, "cold-ttfb-ms")
		b.ReportMetric(mb(uploaded, warm), "warm-replay-MB/s")
		b.ReportMetric(mb(uploaded, gwCold), "gw-replay-MB/s")
		b.ReportMetric(mb(uploaded, gwCold)/getRate, "gw-replay/get")
		b.ReportMetric(gwCores, "gw-replay-cores")
		b.ReportMetric(float64(gwTTFB.Microseconds())/1000, "gw-cold-ttfb-ms")
		b.ReportMetric(mb(uploaded, gwWarm), "gw-warm-replay-MB/s")
		b.ReportMetric(float64(hits)/float64(hits+misses), "warm-hit-ratio")
		b.Logf("%d segments, %d MiB uploaded; cold replay fetched %d MiB from the store, the gateway's %d MiB",
			len(segs), uploaded>>20, (mid.FetchedBytes-before.FetchedBytes)>>20, gwStats.FetchedBytes>>20)
		if strings.Contains(os.Getenv("STRATA_BENCH_VERBOSE"), "1") {
			b.Logf("stats before %+v mid %+v after %+v", before, mid, after)
		}
		cl.Close()
		cancel()
	}
}
