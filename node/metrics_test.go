package node_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
	"github.com/strata-io/strata/tier"
)

// metricValue is the value of the series name with labels (a subset of
// its labels), summed over the series that match; ok false: none.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	ms := series(t, reg, name, labels)
	var sum float64
	for _, m := range ms {
		sum += value(m)
	}
	return sum, len(ms) > 0
}

// series are the series of metric name whose labels include labels.
func series(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) []*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []*dto.Metric
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			out = append(out, m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// TestMetricsAfterWorkload produces to a tiered topic, consumes it all
// from the start (uploaded part and local part) and checks what
// /metrics says against what happened: bytes in equal bytes out equal
// the batches written, the log end and high watermark are the record
// count, every request counted, no error, and the upload lag falls to 0
// once everything closed is uploaded.
func TestMetricsAfterWorkload(t *testing.T) {
	dir, err := tier.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	c := testenv.InProcess(t, 1, testenv.Options{Tier: dir, GatewayTier: true, MaintainInterval: 50 * time.Millisecond, Registry: reg})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.DefaultProduceTopic("m"),
		kgo.ProducerBatchMaxBytes(16<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if r, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, map[string]*string{"remote.storage.enable": kadm.StringPtr("true"),
		"segment.bytes": kadm.StringPtr("65536"), "local.retention.bytes": kadm.StringPtr("131072")}, "m"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	const n = 2000
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		v := make([]byte, 200+rng.IntN(1000))
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		cl.Produce(ctx, &kgo.Record{Value: fmt.Appendf(v[:0:0], "%d-%x", i, v)}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("record %d: %v", i, err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	m := map[string]string{"topic": "m"}
	// Everything closed gets uploaded: the lag goes to 0 and some of
	// the log leaves the disk.
	for {
		lag, ok := metricValue(t, reg, "strata_tier_upload_lag_bytes", m)
		start, _ := metricValue(t, reg, "strata_partition_log_start_offset", m)
		uploads, _ := metricValue(t, reg, "strata_tier_uploads_total", nil)
		local, _ := listOffset(ctx, t, cl, "m", -4)
		if ok && lag == 0 && uploads > 0 && local > 0 && start == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("upload lag %v (%v), %v uploads, local start %d, log start %v", lag, ok, uploads, local, start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rc, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"m": {0: kgo.NewOffset().At(0)}}))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	for got := 0; got < n; {
		fs := rc.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d", got, n)
		}
		got += fs.NumRecords()
	}
	in, _ := metricValue(t, reg, "strata_kafka_bytes_in_total", m)
	out, _ := metricValue(t, reg, "strata_kafka_bytes_out_total", m)
	size, _ := metricValue(t, reg, "strata_partition_size_bytes", m)
	remote, _ := metricValue(t, reg, "strata_tier_remote_bytes", m)
	if in == 0 || in != out {
		t.Fatalf("bytes in %v, bytes out %v: every batch is produced once and fetched once", in, out)
	}
	// The log on disk and in the bucket holds every batch (segments
	// overlap when an active one was uploaded, so at least).
	if size+remote < in {
		t.Fatalf("bytes in %v, but %v on disk and %v uploaded", in, size, remote)
	}
	for name, want := range map[string]float64{"strata_partition_log_end_offset": n, "strata_partition_high_watermark": n} {
		if v, _ := metricValue(t, reg, name, m); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	if v, _ := metricValue(t, reg, "strata_kafka_requests_total", map[string]string{"api": "Produce"}); v == 0 {
		t.Error("no Produce request counted")
	}
	// The replay from offset 0 read uploaded segments: the gateway did,
	// from the bucket.
	if v, _ := metricValue(t, reg, "strata_gateway_remote_read_seconds", nil); v == 0 {
		t.Error("no remote read timed on the gateway")
	}
	if v, _ := metricValue(t, reg, "strata_gateway_tier_fetched_bytes_total", nil); v == 0 {
		t.Error("the gateway fetched no bytes from the bucket")
	}
	if v, _ := metricValue(t, reg, "strata_kafka_request_duration_seconds", map[string]string{"api": "Fetch"}); v == 0 {
		t.Error("no Fetch latency observed")
	}
	if v, ok := metricValue(t, reg, "strata_kafka_request_errors_total", map[string]string{"api": "Produce"}); ok {
		t.Errorf("%v Produce errors", v)
	}
	// A group's lag is the end offset less its commit.
	adm := kadm.NewClient(cl)
	var commit kadm.Offsets
	commit.Add(kadm.Offset{Topic: "m", Partition: 0, At: 1500, LeaderEpoch: -1})
	if r, err := adm.CommitOffsets(ctx, "g", commit); err != nil || r.Error() != nil {
		t.Fatal(err, r.Error())
	}
	g := map[string]string{"group": "g", "topic": "m", "partition": "0"}
	if v, _ := metricValue(t, reg, "strata_consumer_group_committed_offset", g); v != 1500 {
		t.Errorf("committed offset %v, want 1500", v)
	}
	if v, _ := metricValue(t, reg, "strata_consumer_group_lag", g); v != n-1500 {
		t.Errorf("lag %v, want %d", v, n-1500)
	}
	if v, _ := metricValue(t, reg, "strata_consumer_group_topic_lag", map[string]string{"group": "g", "topic": "m"}); v != n-1500 {
		t.Errorf("topic lag %v, want %d", v, n-1500)
	}
	for _, name := range []string{"strata_partitions_leader", "strata_meta_raft_state"} {
		if _, ok := metricValue(t, reg, name, nil); !ok {
			t.Errorf("%s not exported", name)
		}
	}
	if v, _ := metricValue(t, reg, "strata_partitions_leader", nil); v < 1 {
		t.Errorf("leads %v partitions", v)
	}
}

// TestGroupLagAcrossLeaders: the controller computes a group's lag on
// partitions other nodes lead, asking them for their high watermarks.
func TestGroupLagAcrossLeaders(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := testenv.InProcess(t, 3, testenv.Options{Registry: reg})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.DefaultProduceTopic("lag"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if r, err := adm.CreateTopic(ctx, 3, 1, nil, "lag"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	var commit kadm.Offsets
	for p := range int32(3) {
		for i := range 100 + 10*int(p) {
			cl.Produce(ctx, &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "%d", i)}, nil)
		}
		commit.Add(kadm.Offset{Topic: "lag", Partition: p, At: 10, LeaderEpoch: -1})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := adm.CommitOffsets(ctx, "g", commit); err != nil || r.Error() != nil {
		t.Fatal(err, r.Error())
	}
	for p := range 3 {
		labels := map[string]string{"group": "g", "topic": "lag", "partition": fmt.Sprint(p)}
		if v, _ := metricValue(t, reg, "strata_consumer_group_lag", labels); v != float64(90+10*p) {
			t.Errorf("partition %d: lag %v, want %d", p, v, 90+10*p)
		}
	}
	if v, _ := metricValue(t, reg, "strata_consumer_group_topic_lag", map[string]string{"group": "g", "topic": "lag"}); v != 90+100+110 {
		t.Errorf("topic lag %v, want 300", v)
	}
	// The metadata group's own figures: the commit went through the
	// offset batcher as one command of three offsets; every member
	// applied entries; a snapshot taken now has a size.
	ctrl := fmt.Sprint(controller(t, c))
	if n, _ := metricValue(t, reg, "strata_meta_offset_commit_batch_offsets", map[string]string{"node": ctrl}); n != 1 {
		t.Errorf("offset commit batches on the controller: %v, want 1", n)
	}
	if sum := histogramSum(t, reg, "strata_meta_offset_commit_batch_offsets", map[string]string{"node": ctrl}); sum != 3 {
		t.Errorf("offsets committed in batches: %v, want 3", sum)
	}
	for id := range 3 {
		if n, _ := metricValue(t, reg, "strata_meta_apply_seconds", map[string]string{"node": fmt.Sprint(id + 1)}); n == 0 {
			t.Errorf("node %d applied no metadata batch", id+1)
		}
	}
	if err := c.Nodes[controller(t, c)].Member.Server().Raft().Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if v, _ := metricValue(t, reg, "strata_meta_snapshot_bytes", map[string]string{"node": ctrl}); v <= 0 {
		t.Errorf("snapshot size %v after a snapshot", v)
	}
	// The partitions have different leaders: the controller asked
	// others.
	nodes := 0
	for _, id := range []string{"1", "2", "3"} {
		if led, _ := metricValue(t, reg, "strata_partitions_leader", map[string]string{"node": id}); led > 0 {
			nodes++
		}
	}
	if nodes < 2 {
		t.Errorf("the topic's partitions are led by %d node(s); the test needs several", nodes)
	}
}

// TestISRMetrics: a follower stopped leaves the ISR and comes back once
// started again; the shrink and the expansion are counted, and the
// partition shows as under-replicated meanwhile.
func TestISRMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := testenv.InProcess(t, 3, testenv.Options{Registry: reg})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.DefaultProduceTopic("isr"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if r, err := adm.CreateTopic(ctx, 1, 3, nil, "isr"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// Metadata names gateways as leaders: the node leading is the one
	// that says so.
	leader := int32(0)
	for id := int32(1); id <= 3; id++ {
		if v, _ := metricValue(t, reg, "strata_partitions_leader", map[string]string{"node": fmt.Sprint(id)}); v == 1 {
			leader = id
		}
	}
	follower := int32(1)
	for follower == leader {
		follower++
	}
	// Records keep coming, so a stopped follower falls behind.
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			if ctx.Err() != nil {
				t.Fatalf("never: %s", what)
			}
			cl.Produce(ctx, &kgo.Record{Value: []byte("x")}, nil)
			time.Sleep(50 * time.Millisecond)
		}
	}
	l := map[string]string{"node": fmt.Sprint(leader)}
	if v, _ := metricValue(t, reg, "strata_leader_elections_total", l); v < 1 {
		t.Fatalf("the leader counts %v elections", v)
	}
	c.StopNode(follower)
	waitFor("the ISR shrinks", func() bool {
		// The leader removes a lagging follower, the controller a dead
		// one: whichever came first counts.
		v, _ := metricValue(t, reg, "strata_isr_shrinks_total", l)
		cv, _ := metricValue(t, reg, "strata_controller_isr_shrinks_total", nil)
		u, _ := metricValue(t, reg, "strata_partitions_under_replicated", l)
		return v+cv >= 1 && u == 1
	})
	c.StartNode(follower)
	waitFor("the ISR expands", func() bool {
		v, _ := metricValue(t, reg, "strata_isr_expands_total", l)
		u, _ := metricValue(t, reg, "strata_partitions_under_replicated", l)
		return v >= 1 && u == 0
	})
	// Where the leader's requests spent their time: every stage seen.
	for _, s := range [][2]string{{"Produce", "append"}, {"Produce", "replicate"}, {"Produce", "respond"},
		{"ReplicaFetch", "read"}, {"ReplicaFetch", "wait"}, {"ReplicaFetch", "respond"}} {
		if n, _ := metricValue(t, reg, "strata_node_request_stage_seconds", map[string]string{"node": fmt.Sprint(leader),
			"api": s[0], "stage": s[1]}); n == 0 {
			t.Errorf("no %s %s stage timed on the leader", s[0], s[1])
		}
	}
}

// TestGroupStateMetrics: a group's members, state, generation and
// rebalances follow two consumers joining and leaving.
func TestGroupStateMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := testenv.InProcess(t, 1, testenv.Options{Registry: reg})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := newClient(t, c)
	createTopic(ctx, t, adm, 2, 1, nil, "gs")
	g := map[string]string{"group": "live"}
	waitMetric := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			if ctx.Err() != nil {
				t.Fatalf("%s: members %v, rebalances %v", what, must(metricValue(t, reg, "strata_consumer_group_members", g)),
					must(metricValue(t, reg, "strata_consumer_group_rebalances_total", g)))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	members := func() float64 { return must(metricValue(t, reg, "strata_consumer_group_members", g)) }
	stable := func() bool {
		v, _ := metricValue(t, reg, "strata_consumer_group_state", map[string]string{"group": "live", "state": "Stable"})
		return v == 1
	}
	join := func() *kgo.Client {
		cl := newClient(t, c, kgo.ConsumeTopics("gs"), kgo.ConsumerGroup("live"))
		go func() {
			for ctx.Err() == nil && !cl.PollFetches(ctx).IsClientClosed() {
			}
		}()
		return cl
	}
	first := join()
	waitMetric("one member, stable", func() bool { return members() == 1 && stable() })
	second := join()
	waitMetric("two members, stable", func() bool { return members() == 2 && stable() })
	if r := must(metricValue(t, reg, "strata_consumer_group_rebalances_total", g)); r < 2 {
		t.Errorf("rebalances %v after two joins, want at least 2", r)
	}
	if gen := must(metricValue(t, reg, "strata_consumer_group_generation", g)); gen < 2 {
		t.Errorf("generation %v after two joins, want at least 2", gen)
	}
	first.Close()
	second.Close()
	waitMetric("empty", func() bool {
		v, _ := metricValue(t, reg, "strata_consumer_group_state", map[string]string{"group": "live", "state": "Empty"})
		return v == 1 && members() == 0
	})
}

func must(v float64, _ bool) float64 { return v }

// histogramSum is the sum of the observations of the histogram series
// matching labels.
func histogramSum(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	var sum float64
	for _, m := range series(t, reg, name, labels) {
		sum += m.GetHistogram().GetSampleSum()
	}
	return sum
}
