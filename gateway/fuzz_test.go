package gateway

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/meta"
)

// frame builds a request frame as a client sends it.
func frame(req kmsg.Request, correlationID int32) []byte {
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("fuzz")).AppendRequest(nil, req, correlationID)
}

// FuzzParseRequest: header and body decoding never panic, whatever the
// bytes.
func FuzzParseRequest(f *testing.F) {
	for _, req := range []kmsg.Request{
		&kmsg.ApiVersionsRequest{Version: 3, ClientSoftwareName: "x", ClientSoftwareVersion: "1"},
		&kmsg.MetadataRequest{Version: 12},
		&kmsg.ProduceRequest{Version: 9, Acks: -1, Topics: []kmsg.ProduceRequestTopic{{Topic: "t", Partitions: []kmsg.ProduceRequestTopicPartition{{Records: []byte{1, 2, 3}}}}}},
		&kmsg.FetchRequest{Version: 12, Topics: []kmsg.FetchRequestTopic{{Topic: "t", Partitions: []kmsg.FetchRequestTopicPartition{{}}}}},
		&kmsg.JoinGroupRequest{Version: 7, Group: "g"},
	} {
		b := frame(req, 7)
		f.Add(b[4:])
	}
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff})
	f.Add([]byte{0x7f, 0xff, 0, 1, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, req, err := parseRequest(b)
		if err == nil && req == nil {
			t.Fatal("no request and no error")
		}
		if err == nil && supported(h.key, h.version) {
			// A request that parsed can be answered without panicking.
			if r, ok := req.(*kmsg.ApiVersionsRequest); ok {
				apiVersions(r, false, &meta.Features{Levels: map[string]int16{"transaction.version": 2}}).AppendTo(nil)
			}
		}
	})
}
