package gateway

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestErrorCodesFoundAtEveryLevel: the metrics find error codes at the
// top of a response and in its nested topics and partitions, and count
// them under Kafka's names.
func TestErrorCodesFoundAtEveryLevel(t *testing.T) {
	resp := kmsg.NewPtrFetchResponse()
	resp.ErrorCode = kerr.UnknownServerError.Code
	for _, codes := range [][]int16{{0, kerr.NotLeaderForPartition.Code}, {kerr.OffsetOutOfRange.Code}} {
		rt := kmsg.NewFetchResponseTopic()
		for _, c := range codes {
			p := kmsg.NewFetchResponseTopicPartition()
			p.ErrorCode = c
			rt.Partitions = append(rt.Partitions, p)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	var got []int16
	eachErrorCode(reflect.ValueOf(resp), func(c int16) { got = append(got, c) })
	slices.Sort(got)
	want := []int16{kerr.UnknownServerError.Code, kerr.OffsetOutOfRange.Code, kerr.NotLeaderForPartition.Code}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("codes %v, want %v", got, want)
	}

	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	req := kmsg.NewPtrFetchRequest()
	m.observe(req, resp, time.Millisecond)
	if v := testutil.ToFloat64(m.errors.WithLabelValues("Fetch", "NOT_LEADER_OR_FOLLOWER")); v != 1 {
		t.Fatalf("NOT_LEADER_OR_FOLLOWER counted %v times", v)
	}
	if v := testutil.ToFloat64(m.requests.WithLabelValues("Fetch", "0")); v != 1 {
		t.Fatalf("requests %v", v)
	}
}
