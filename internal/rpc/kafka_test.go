package rpc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/rpc"
)

// TestKafkaRoundTrip: a Kafka request goes out with its version and the
// caller's headers, and a fetch response bigger than the NATS max payload
// comes back decoded at that version; a request the server cannot serve
// comes back as a RemoteError, and a subject nobody serves as NATS's no
// responders.
func TestKafkaRoundTrip(t *testing.T) {
	records := make([]byte, 300<<10)
	for i := range records {
		records[i] = byte(i)
	}
	caller := serveSvc(t, func(server *nats.Conn, m *nats.Msg) {
		req, err := rpc.ReadKafka(m)
		if err != nil {
			rpc.RespondError(server, m, err)
			return
		}
		f, ok := req.(*kmsg.FetchRequest)
		if !ok || m.Header.Get("X-Test") != "yes" {
			rpc.RespondError(server, m, errors.New("only fetches with the test header"))
			return
		}
		resp := f.ResponseKind().(*kmsg.FetchResponse)
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = f.Topics[0].Topic
		rp := kmsg.NewFetchResponseTopicPartition()
		rp.HighWatermark, rp.RecordBatches = 42, records
		rt.Partitions = append(rt.Partitions, rp)
		resp.Topics = append(resp.Topics, rt)
		encoded := false
		if err := rpc.RespondKafka(server, m, req, resp, func() { encoded = true }); err != nil || !encoded {
			t.Error(err, encoded)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "t"
	req.Topics = append(req.Topics, rt)
	resp, err := caller.Kafka(ctx, "svc", req, rpc.KafkaCall{Header: map[string]string{"X-Test": "yes"}})
	if err != nil {
		t.Fatal(err)
	}
	f := resp.(*kmsg.FetchResponse)
	if f.GetVersion() != 12 || len(f.Topics) != 1 || f.Topics[0].Topic != "t" || f.Topics[0].Partitions[0].HighWatermark != 42 ||
		string(f.Topics[0].Partitions[0].RecordBatches) != string(records) {
		t.Fatalf("response v%d: %+v", f.GetVersion(), f.Topics)
	}

	var re *rpc.RemoteError
	if _, err := caller.Kafka(ctx, "svc", kmsg.NewPtrListOffsetsRequest(), rpc.KafkaCall{}); !errors.As(err, &re) {
		t.Fatalf("a request the server refuses: %v, want a RemoteError", err)
	}
	if _, err := caller.Kafka(ctx, "nobody", req, rpc.KafkaCall{One: true}); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("a subject nobody serves: %v", err)
	}
}
