package console_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/console"
	"github.com/strata-io/strata/testenv"
	"github.com/strata-io/strata/tier"
)

// site is a cluster with data behind a console: a tiered topic with
// uploaded segments, a plain one, and a group that consumed part of the
// first (its members gone).
type site struct {
	url     string
	cluster *testenv.Cluster
}

func newSite(t *testing.T) site { return newSiteOf(t, 1) }

// newSiteOf is newSite on n nodes, its topics replicated n times.
func newSiteOf(t *testing.T, n int) site {
	t.Helper()
	store, err := tier.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := testenv.InProcess(t, n, testenv.Options{Tier: store, MaintainInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(8<<10), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if r, err := adm.CreateTopic(ctx, 2, int16(n), map[string]*string{"remote.storage.enable": kadm.StringPtr("true"),
		"segment.bytes": kadm.StringPtr("16384")}, "orders"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	if r, err := adm.CreateTopic(ctx, 1, int16(n), nil, "audit"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	for i := range 2000 {
		cl.Produce(ctx, &kgo.Record{Topic: "orders", Partition: int32(i % 2), Key: fmt.Appendf(nil, "customer-%d", i%7),
			Value: fmt.Appendf(nil, `{"order":%d,"total":%d.50}`, i, 10+i), Headers: []kgo.RecordHeader{{Key: "source", Value: []byte("web")}}}, nil)
	}
	cl.Produce(ctx, &kgo.Record{Topic: "audit", Value: []byte{0xff, 0x00, 0x10}}, nil)
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// The group committed offset 150 of each partition.
	var commit kadm.Offsets
	commit.Add(kadm.Offset{Topic: "orders", Partition: 0, At: 150, LeaderEpoch: -1})
	commit.Add(kadm.Offset{Topic: "orders", Partition: 1, At: 150, LeaderEpoch: -1})
	if r, err := adm.CommitOffsets(ctx, "billing", commit); err != nil || r.Error() != nil {
		t.Fatal(err, r.Error())
	}
	for { // uploads
		segs, err := c.Gateway.TierLs(ctx, "orders")
		if err == nil && len(segs.Partitions) == 2 && len(segs.Partitions[0].Segments) > 0 && len(segs.Partitions[1].Segments) > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("nothing uploaded: %v %+v", err, segs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	con, err := console.New(c.Gateway, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(con.Close)
	mux := http.NewServeMux()
	con.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return site{url: srv.URL, cluster: c}
}

// pages are what each page must show, with the data of newSite.
var pages = []struct {
	path string
	want []string
}{
	{"/", []string{"Controller", "node 1", "live", "1 / 1", "Under-replicated", "Gateways"}},
	{"/topics", []string{"orders", "tiered", "audit", "2000"}},
	{"/topics/orders", []string{"Topic orders", "remote.storage.enable", "segment.bytes", "16384", "Log end", "browse"}},
	{"/groups", []string{"billing", "Empty", "1700"}},
	{"/groups/billing", []string{"Consumer group billing", "orders", "150", "1000", "850"}},
	{"/tier", []string{"orders", "file://", "Last upload"}},
	{"/tier/orders", []string{"Uploaded segments of orders", "Partition 0", "Partition 1", ".log"}},
	{"/browse?topic=orders&partition=1&offset=3&limit=4", []string{"4 records of orders-1 from offset 3", "customer-", `&#34;order&#34;:7,`, "source=web"}},
	{"/browse?topic=audit&partition=0", []string{"0xff0010"}},
}

// TestPages: every page answers 200 with its data (no browser needed).
func TestPages(t *testing.T) {
	s := newSite(t)
	for _, p := range pages {
		code, body := get(t, s.url+p.path)
		if code != http.StatusOK {
			t.Errorf("%s: status %d\n%s", p.path, code, body)
			continue
		}
		for _, w := range p.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s lacks %q", p.path, w)
			}
		}
	}
	for _, path := range []string{"/topics/nope", "/groups/nope", "/tier/nope"} {
		if code, body := get(t, s.url+path); code != http.StatusNotFound || !strings.Contains(body, "not found") {
			t.Errorf("%s: status %d, want 404 saying not found", path, code)
		}
	}
	if code, body := get(t, s.url+"/browse?topic=orders&offset=x"); code == http.StatusOK || !strings.Contains(body, "a number from 0") {
		t.Errorf("a bad offset: status %d", code)
	}
	// The lag sampler began with the first page: its sample and the lag
	// read now draw a sparkline.
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, body := get(t, s.url+"/groups")
		if strings.Contains(body, `<svg class="spark"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no lag sparkline:\n%s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPagesThreeNodes: the same pages on a cluster of three nodes, with
// every partition on all three.
func TestPagesThreeNodes(t *testing.T) {
	s := newSiteOf(t, 3)
	for _, p := range pages {
		code, body := get(t, s.url+p.path)
		if code != http.StatusOK {
			t.Errorf("%s: status %d\n%s", p.path, code, body)
			continue
		}
		want := p.want
		if p.path == "/" {
			want = []string{"Controller", "3 / 3", "node 1", "node 2", "node 3"}
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s lacks %q", p.path, w)
			}
		}
	}
	// Each partition of orders shows three replicas.
	_, body := get(t, s.url+"/topics/orders")
	if n := len(regexp.MustCompile(`<td>[123], [123], [123]</td>`).FindAllString(body, -1)); n < 2 {
		t.Errorf("/topics/orders shows three replicas for %d partitions, want 2:\n%s", n, body)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
