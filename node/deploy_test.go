package node_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/testenv"
	"github.com/strata-io/strata/tier"
)

// TestDeployFilesNameExportedMetrics: every metric the shipped alert
// rules and dashboard name is exported by a cluster that has done a
// little of everything (tiered produce, a group consume, a commit, an error),
// so neither watches a series that never exists.
func TestDeployFilesNameExportedMetrics(t *testing.T) {
	dir, err := tier.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	c := testenv.InProcess(t, 1, testenv.Options{Tier: dir, MaintainInterval: 50 * time.Millisecond, Registry: reg,
		Gateway: func(cfg *gateway.Config) {
			cfg.Listeners = []gateway.Listener{{Addr: "127.0.0.1:0"}, {Name: "SASL", Addr: "127.0.0.1:0", Protocol: gateway.SASLPlaintext}}
			cfg.Authorizer, cfg.AllowEveryoneIfNoACL = true, true
		}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.DefaultProduceTopic("d"), kgo.ProducerBatchMaxBytes(16<<10),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if r, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"remote.storage.enable": kadm.StringPtr("true"),
		"segment.bytes": kadm.StringPtr("65536")}, "d"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	for range 500 {
		cl.Produce(ctx, &kgo.Record{Value: make([]byte, 500)}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	rc, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.ConsumeTopics("d"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.ConsumerGroup("live"))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	rc.PollFetches(ctx)
	var commit kadm.Offsets
	commit.Add(kadm.Offset{Topic: "d", Partition: 0, At: 1, LeaderEpoch: -1})
	if _, err := adm.CommitOffsets(ctx, "g", commit); err != nil {
		t.Fatal(err)
	}
	adm.ListEndOffsets(ctx, "no-such-topic") // an error code to count
	// A failed authentication and a denied operation, so their counters
	// are there.
	bad, err := kgo.NewClient(kgo.SeedBrokers(c.Gateway.ListenerAddr("SASL")), kgo.RequestRetries(0),
		kgo.SASL(plain.Auth{User: "nobody", Pass: "x"}.AsMechanism()))
	if err != nil {
		t.Fatal(err)
	}
	kadm.NewClient(bad).ListTopics(ctx)
	bad.Close()
	var deny kadm.ACLBuilder
	if _, err := adm.CreateACLs(ctx, deny.Deny("User:ANONYMOUS").DenyHosts().Topics("forbidden").Operations(kadm.OpDescribe)); err != nil {
		t.Fatal(err)
	}
	adm.ListEndOffsets(ctx, "forbidden")
	// An upload, so the tier's counters have moved.
	for {
		if v, _ := metricValue(t, reg, "strata_tier_uploads_total", nil); v > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("nothing uploaded")
		}
		time.Sleep(50 * time.Millisecond)
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]dto.MetricType{}
	for _, mf := range mfs {
		exported[mf.GetName()] = mf.GetType()
	}
	name := regexp.MustCompile(`strata_[a-z0-9_]+`)
	for _, file := range []string{"../deploy/prometheus/strata-alerts.yml", "../deploy/grafana/strata-dashboard.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		names := name.FindAllString(string(b), -1)
		if len(names) < 5 {
			t.Fatalf("%s names %d metrics", file, len(names))
		}
		for _, n := range names {
			if _, ok := exported[n]; ok {
				continue
			}
			base := n
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				base = strings.TrimSuffix(base, suffix)
			}
			if exported[base] == dto.MetricType_HISTOGRAM {
				continue
			}
			t.Errorf("%s names %s, which no process exports", file, n)
		}
	}
}
