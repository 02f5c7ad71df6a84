package gateway

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// apiRange is a supported version range of one API.
type apiRange struct{ min, max int16 }

// apis is what the gateway implements, advertised in ApiVersions exactly
// as implemented. Produce from v3 and Fetch from v4 (RecordBatch v2 only)
// as Kafka 4.0; Fetch stops at v12, before topic IDs replace names.
var apis = map[int16]apiRange{
	0:  {3, 11}, // Produce
	1:  {4, 12}, // Fetch
	2:  {1, 8},  // ListOffsets
	3:  {0, 12}, // Metadata
	18: {0, 4},  // ApiVersions
	19: {2, 7},  // CreateTopics
}

func supported(key, version int16) bool {
	r, ok := apis[key]
	return ok && version >= r.min && version <= r.max
}

// apiVersions lists the supported APIs. An unsupported ApiVersions
// version gets UNSUPPORTED_VERSION at v0, so the client can retry lower.
func (g *Gateway) apiVersions(req *kmsg.ApiVersionsRequest, unsupported bool) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	if unsupported {
		resp.SetVersion(0)
		resp.ErrorCode = kerr.UnsupportedVersion.Code
	}
	for _, key := range []int16{0, 1, 2, 3, 18, 19} {
		r := apis[key]
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = key, r.min, r.max
		resp.ApiKeys = append(resp.ApiKeys, k)
	}
	return resp
}
