package gateway_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
)

func TestAdminAPIs(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClient(t, c.Addr()))
	if res, err := adm.CreateTopic(ctx, 2, 1, map[string]*string{"retention.ms": kadm.StringPtr("3600000")}, "cfg"); err != nil || res.Err != nil {
		t.Fatal(err, res.Err)
	}

	// Configs: describe shows set values and defaults; alter sets and
	// deletes; a bad key is INVALID_CONFIG.
	value := func(name string) (string, bool) {
		t.Helper()
		rcs, err := adm.DescribeTopicConfigs(ctx, "cfg")
		if err != nil {
			t.Fatal(err)
		}
		rc, err := rcs.On("cfg", nil)
		if err != nil || rc.Err != nil {
			t.Fatal(err, rc.Err)
		}
		for _, cfg := range rc.Configs {
			if cfg.Key == name {
				return cfg.MaybeValue(), cfg.Source == 1 // DYNAMIC_TOPIC_CONFIG
			}
		}
		t.Fatalf("config %s not described", name)
		return "", false
	}
	if v, set := value("retention.ms"); v != "3600000" || !set {
		t.Fatalf("retention.ms %q set=%v", v, set)
	}
	if v, set := value("segment.bytes"); v != "1073741824" || set {
		t.Fatalf("default segment.bytes %q set=%v", v, set)
	}
	resps, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "segment.bytes", Value: kadm.StringPtr("1048576")},
		{Op: kadm.DeleteConfig, Name: "retention.ms"},
	}, "cfg")
	if err != nil || resps[0].Err != nil {
		t.Fatal(err, resps[0].Err)
	}
	if v, _ := value("segment.bytes"); v != "1048576" {
		t.Fatalf("segment.bytes after alter %q", v)
	}
	if v, set := value("retention.ms"); v != "604800000" || set {
		t.Fatalf("retention.ms after delete %q set=%v", v, set)
	}
	resps, _ = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "bogus.key", Value: kadm.StringPtr("1")}}, "cfg")
	if !errors.Is(resps[0].Err, kerr.InvalidConfig) {
		t.Fatalf("bad key: %v", resps[0].Err)
	}

	// Partitions can grow, not shrink.
	if r, err := adm.UpdatePartitions(ctx, 4, "cfg"); err != nil || r["cfg"].Err != nil {
		t.Fatal(err, r["cfg"].Err)
	}
	if r, _ := adm.UpdatePartitions(ctx, 3, "cfg"); !errors.Is(r["cfg"].Err, kerr.InvalidPartitions) {
		t.Fatalf("shrink: %v", r["cfg"].Err)
	}
	md, err := adm.Metadata(ctx, "cfg")
	if err != nil || len(md.Topics["cfg"].Partitions) != 4 {
		t.Fatalf("partitions after grow: %v %d", err, len(md.Topics["cfg"].Partitions))
	}

	// Delete and create again: the new topic starts empty.
	prod := newClient(t, c.Addr(), kgo.DefaultProduceTopic("cfg"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("old"), Partition: 0}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if r, err := adm.DeleteTopics(ctx, "cfg"); err != nil || r["cfg"].Err != nil {
		t.Fatal(err, r["cfg"].Err)
	}
	if r, _ := adm.DeleteTopics(ctx, "cfg"); !errors.Is(r["cfg"].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("delete again: %v", r["cfg"].Err)
	}
	if res, err := adm.CreateTopic(ctx, 1, 1, nil, "cfg"); err != nil || res.Err != nil {
		t.Fatal(err, res.Err)
	}
	var ends kadm.ListedOffsets
	deadline := time.Now().Add(10 * time.Second)
	for {
		ends, err = adm.ListEndOffsets(ctx, "cfg")
		if err == nil && ends.Error() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err, ends.Error())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if o, _ := ends.Lookup("cfg", 0); o.Offset != 0 {
		t.Fatalf("re-created topic starts at %d: old data leaked", o.Offset)
	}
}
