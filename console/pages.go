package console

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/tier"
)

// clusterView is the front page.
type clusterView struct {
	Status gateway.ClusterStatus
	Topics int
	Groups int
}

func (c *Console) cluster(ctx context.Context, _ *http.Request) (any, error) {
	st, err := c.src.ClusterStatus(ctx)
	if err != nil {
		return nil, err
	}
	v := clusterView{Status: st}
	if _, adm, err := c.client(); err == nil {
		if ts, err := adm.ListTopics(ctx); err == nil {
			v.Topics = len(ts.TopicsList())
		}
		if gs, err := adm.ListGroups(ctx); err == nil {
			v.Groups = len(gs)
		}
	}
	return v, nil
}

// topicRow is one topic in the list.
type topicRow struct {
	Name                     string
	Partitions, Replicas     int
	Records                  int64 // end offsets less start offsets
	LocalBytes, RemoteBytes  int64
	Tiered                   bool
	UnderReplicated, Offline int
}

func (c *Console) topics(ctx context.Context, _ *http.Request) (any, error) {
	_, adm, err := c.client()
	if err != nil {
		return nil, err
	}
	td, err := adm.ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	names := td.Names()
	starts, _ := adm.ListStartOffsets(ctx, names...)
	ends, _ := adm.ListEndOffsets(ctx, names...)
	sizes := c.sizes(ctx)
	var rows []topicRow
	for _, t := range td.Sorted() {
		row := topicRow{Name: t.Topic, Partitions: len(t.Partitions)}
		for _, p := range t.Partitions {
			row.Replicas = max(row.Replicas, len(p.Replicas))
			s, ok1 := starts.Lookup(t.Topic, p.Partition)
			e, ok2 := ends.Lookup(t.Topic, p.Partition)
			if ok1 && ok2 && s.Err == nil && e.Err == nil {
				row.Records += e.Offset - s.Offset
			}
			sz := sizes[partKey{t.Topic, p.Partition}]
			row.LocalBytes += sz.local
			row.RemoteBytes += sz.remote
			row.Tiered = row.Tiered || sz.tiered
			switch {
			case p.Leader < 0:
				row.Offline++
			case len(p.ISR) < len(p.Replicas):
				row.UnderReplicated++
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

type partKey struct {
	topic     string
	partition int32
}

type partSize struct {
	local, remote int64
	tiered        bool
}

// sizes are each partition's bytes on its leader's disk and in the
// bucket: from the tier status for tiered partitions, from the log
// directories (DescribeLogDirs) for the rest.
func (c *Console) sizes(ctx context.Context) map[partKey]partSize {
	out := map[partKey]partSize{}
	if _, adm, err := c.client(); err == nil {
		if dirs, err := adm.DescribeAllLogDirs(ctx, nil); err == nil {
			dirs.Each(func(d kadm.DescribedLogDir) {
				d.Topics.Each(func(p kadm.DescribedLogDirPartition) {
					k := partKey{p.Topic, p.Partition}
					s := out[k]
					s.local = max(s.local, p.Size) // replicas: the largest copy
					out[k] = s
				})
			})
		}
	}
	if ts, err := c.src.TierStatus(ctx); err == nil {
		for _, n := range ts.Nodes {
			for _, p := range n.Partitions {
				out[partKey{p.Topic, p.Partition}] = partSize{local: p.LocalBytes, remote: p.RemoteBytes, tiered: true}
			}
		}
	}
	return out
}

// topicView is one topic's page.
type topicView struct {
	Name       string
	ID         string
	Partitions []partitionRow
	Configs    []configRow
	Tiered     bool
}

type partitionRow struct {
	Partition               int32
	Leader                  int32
	Replicas, ISR           []int32
	Start, End              int64
	LocalBytes, RemoteBytes int64
	UnderReplicated         bool
}

type configRow struct {
	Name, Value, Source string
}

func (c *Console) topic(ctx context.Context, r *http.Request) (any, error) {
	name := r.PathValue("topic")
	_, adm, err := c.client()
	if err != nil {
		return nil, err
	}
	td, err := adm.ListTopics(ctx, name)
	if err != nil {
		return nil, err
	}
	t, ok := td[name]
	if !ok || t.Err != nil {
		return nil, fmt.Errorf("%w: topic %q", errNotFound, name)
	}
	parts, err := c.src.TopicPartitions(ctx, name)
	if err != nil {
		return nil, err
	}
	starts, _ := adm.ListStartOffsets(ctx, name)
	ends, _ := adm.ListEndOffsets(ctx, name)
	sizes := c.sizes(ctx)
	v := topicView{Name: name, ID: base64.RawURLEncoding.EncodeToString(t.ID[:])} // as Kafka's tools print it
	for _, p := range parts {
		row := partitionRow{Partition: p.Partition, Leader: p.Leader, Replicas: p.Replicas, ISR: p.ISR, Start: -1, End: -1,
			UnderReplicated: len(p.ISR) < len(p.Replicas)}
		if s, ok := starts.Lookup(name, p.Partition); ok && s.Err == nil {
			row.Start = s.Offset
		}
		if e, ok := ends.Lookup(name, p.Partition); ok && e.Err == nil {
			row.End = e.Offset
		}
		sz := sizes[partKey{name, p.Partition}]
		row.LocalBytes, row.RemoteBytes = sz.local, sz.remote
		v.Tiered = v.Tiered || sz.tiered
		v.Partitions = append(v.Partitions, row)
	}
	slices.SortFunc(v.Partitions, func(a, b partitionRow) int { return int(a.Partition - b.Partition) })
	if rc, err := adm.DescribeTopicConfigs(ctx, name); err == nil {
		if cfg, err := rc.On(name, nil); err == nil {
			for _, kv := range cfg.Configs {
				val := ""
				if kv.Value != nil {
					val = *kv.Value
				}
				v.Configs = append(v.Configs, configRow{Name: kv.Key, Value: val, Source: strings.ToLower(strings.TrimSuffix(kv.Source.String(), "_CONFIG"))})
			}
		}
	}
	return v, nil
}

// groupRow is one group in the list.
type groupRow struct {
	Name, State, Protocol string
	Members               int
	Lag                   int64
	LagKnown              bool
	Spark                 sparkline
}

func (c *Console) groups(ctx context.Context, _ *http.Request) (any, error) {
	lags, err := c.groupLags(ctx)
	if err != nil {
		return nil, err
	}
	var rows []groupRow
	for _, l := range lags.Sorted() {
		row := groupRow{Name: l.Group, State: l.State, Protocol: l.Protocol, Members: len(l.Members)}
		if l.Error() == nil {
			row.Lag, row.LagKnown = l.Lag.Total(), true
			row.Spark = c.lag.spark(l.Group, row.Lag)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// groupLags describes every group with its lag (kadm: committed offsets
// against end offsets).
func (c *Console) groupLags(ctx context.Context, groups ...string) (kadm.DescribedGroupLags, error) {
	_, adm, err := c.client()
	if err != nil {
		return nil, err
	}
	if len(groups) == 0 {
		listed, err := adm.ListGroups(ctx)
		if err != nil {
			return nil, err
		}
		groups = listed.Groups()
	}
	if len(groups) == 0 {
		return kadm.DescribedGroupLags{}, nil
	}
	return adm.Lag(ctx, groups...)
}

// groupView is one group's page.
type groupView struct {
	Name, State, Protocol, ProtocolType string
	Members                             []memberRow
	Partitions                          []lagRow
	Lag                                 int64
	Spark                               sparkline
}

type memberRow struct {
	ID, ClientID, Host string
	Assigned           string
}

type lagRow struct {
	Topic                   string
	Partition               int32
	Committed, End, Lag     int64
	Member                  string
	CommittedKnown, EndKnow bool
}

func (c *Console) group(ctx context.Context, r *http.Request) (any, error) {
	name := r.PathValue("group")
	lags, err := c.groupLags(ctx, name)
	if err != nil {
		return nil, err
	}
	l, ok := lags[name]
	if !ok || l.State == "Dead" || (l.State == "Empty" && len(l.Lag) == 0) {
		return nil, fmt.Errorf("%w: group %q", errNotFound, name)
	}
	v := groupView{Name: name, State: l.State, Protocol: l.Protocol, ProtocolType: l.ProtocolType}
	for _, m := range l.Members {
		row := memberRow{ID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost}
		if a, ok := m.Assigned.AsConsumer(); ok {
			var parts []string
			for _, t := range a.Topics {
				parts = append(parts, fmt.Sprintf("%s %v", t.Topic, t.Partitions))
			}
			row.Assigned = strings.Join(parts, "; ")
		}
		v.Members = append(v.Members, row)
	}
	for _, p := range l.Lag.Sorted() {
		row := lagRow{Topic: p.Topic, Partition: p.Partition, Committed: p.Commit.At, End: p.End.Offset, Lag: p.Lag,
			CommittedKnown: p.Commit.At >= 0, EndKnow: p.End.Err == nil}
		if p.Member != nil {
			row.Member = p.Member.ClientID
		}
		v.Partitions = append(v.Partitions, row)
		if p.Lag > 0 {
			v.Lag += p.Lag
		}
	}
	v.Spark = c.lag.spark(name, v.Lag)
	return v, nil
}

// tierRow is one tiered partition.
type tierRow struct {
	tier.PartitionTierStatus
	UploadedAt, FailedAt time.Time
}

type tierView struct {
	Rows    []tierRow
	Stores  []string
	Missing []int32
}

func (c *Console) tierStatus(ctx context.Context, _ *http.Request) (any, error) {
	ts, err := c.src.TierStatus(ctx)
	if err != nil {
		return nil, err
	}
	v := tierView{Missing: ts.Missing}
	for _, n := range ts.Nodes {
		if n.Store != "" && !slices.Contains(v.Stores, n.Store) {
			v.Stores = append(v.Stores, n.Store)
		}
		for _, p := range n.Partitions {
			row := tierRow{PartitionTierStatus: p}
			if p.LastUploadMs > 0 {
				row.UploadedAt = time.UnixMilli(p.LastUploadMs)
			}
			if p.LastErrorMs > 0 {
				row.FailedAt = time.UnixMilli(p.LastErrorMs)
			}
			v.Rows = append(v.Rows, row)
		}
	}
	slices.SortFunc(v.Rows, func(a, b tierRow) int {
		if a.Topic != b.Topic {
			return strings.Compare(a.Topic, b.Topic)
		}
		return int(a.Partition - b.Partition)
	})
	return v, nil
}

func (c *Console) manifest(ctx context.Context, r *http.Request) (any, error) {
	name := r.PathValue("topic")
	ls, err := c.src.TierLs(ctx, name)
	if err != nil {
		if strings.Contains(err.Error(), "unknown topic") {
			return nil, fmt.Errorf("%w: %v", errNotFound, err)
		}
		return nil, err
	}
	return ls, nil
}

// browseView is the record browser: the form and what it read.
type browseView struct {
	Topics                     []string
	Topic                      string
	Partition                  int32
	Offset, Timestamp          string
	Limit                      int
	Records                    []recordRow
	From                       int64
	Searched, HighWatermarkEnd bool
}

type recordRow struct {
	Offset    int64
	Time      time.Time
	Key       string
	Value     string
	Headers   string
	Size      int
	Truncated bool
}

const (
	browseMax     = 100
	browseDefault = 20
	valueShown    = 2048
)

func (c *Console) browse(ctx context.Context, r *http.Request) (any, error) {
	_, adm, err := c.client()
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	v := browseView{Topic: q.Get("topic"), Offset: q.Get("offset"), Timestamp: q.Get("timestamp"), Limit: browseDefault}
	if td, err := adm.ListTopics(ctx); err == nil {
		v.Topics = td.Names()
		slices.Sort(v.Topics)
	}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 {
		v.Limit = min(n, browseMax)
	}
	if p, err := strconv.ParseInt(q.Get("partition"), 10, 32); err == nil {
		v.Partition = int32(p)
	}
	if v.Topic == "" {
		return v, nil
	}
	v.Searched = true
	// Where to start: an offset, a time (RFC 3339 or milliseconds), or
	// the log start.
	// offsetOf is the partition's offset in what list answers.
	offsetOf := func(offs kadm.ListedOffsets, err error) (int64, error) {
		if err != nil {
			return 0, err
		}
		o, ok := offs.Lookup(v.Topic, v.Partition)
		if !ok || o.Err != nil {
			return 0, fmt.Errorf("%w: partition %d of %q", errNotFound, v.Partition, v.Topic)
		}
		return o.Offset, nil
	}
	switch {
	case v.Timestamp != "":
		ms, err := parseTime(v.Timestamp)
		if err != nil {
			return v, err
		}
		if v.From, err = offsetOf(adm.ListOffsetsAfterMilli(ctx, ms, v.Topic)); err != nil {
			return v, err
		}
	case v.Offset != "":
		if v.From, err = strconv.ParseInt(v.Offset, 10, 64); err != nil || v.From < 0 {
			return v, fmt.Errorf("offset %q: a number from 0", v.Offset)
		}
	default:
		if v.From, err = offsetOf(adm.ListStartOffsets(ctx, v.Topic)); err != nil {
			return v, err
		}
	}
	end, err := offsetOf(adm.ListEndOffsets(ctx, v.Topic))
	if err != nil {
		return v, err
	}
	if v.From >= end {
		v.HighWatermarkEnd = true
		return v, nil
	}
	recs, err := c.read(ctx, v.Topic, v.Partition, v.From, min(int64(v.Limit), end-v.From))
	v.Records = recs
	return v, err
}

// read reads up to n records of a partition from offset with a client of
// its own (a consumer at an offset cannot share the console's).
func (c *Console) read(ctx context.Context, topic string, partition int32, offset, n int64) ([]recordRow, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.src.Addr()), kgo.ClientID("strata-console-browser"), kgo.Dialer(c.src.DialInternal),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(offset)}}),
		kgo.FetchMaxBytes(4<<20))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var rows []recordRow
	for int64(len(rows)) < n {
		fs := cl.PollRecords(ctx, int(n)-len(rows))
		if ctx.Err() != nil {
			if len(rows) > 0 {
				return rows, nil
			}
			return nil, fmt.Errorf("no records read from offset %d: %w", offset, ctx.Err())
		}
		if err := fs.Err(); err != nil {
			return rows, err
		}
		fs.EachRecord(func(r *kgo.Record) {
			row := recordRow{Offset: r.Offset, Time: r.Timestamp, Size: len(r.Key) + len(r.Value)}
			row.Key, _ = printable(r.Key, 256)
			row.Value, row.Truncated = printable(r.Value, valueShown)
			var hs []string
			for _, h := range r.Headers {
				hv, _ := printable(h.Value, 128)
				hs = append(hs, h.Key+"="+hv)
			}
			row.Headers = strings.Join(hs, ", ")
			rows = append(rows, row)
		})
	}
	return rows, nil
}

// printable shows b as text when it is UTF-8, else as hex, cut at max
// bytes.
func printable(b []byte, max int) (string, bool) {
	cut := len(b) > max
	if cut {
		b = b[:max]
	}
	if b == nil {
		return "∅", false
	}
	if utf8.Valid(b) {
		return string(b), cut
	}
	return fmt.Sprintf("0x%x", b), cut
}

// parseTime reads RFC 3339 or Unix milliseconds.
func parseTime(s string) (int64, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return ms, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMilli(), nil
		}
	}
	return 0, fmt.Errorf("time %q: RFC 3339 (2026-01-02T15:04:05Z) or Unix milliseconds", s)
}
