package gateway

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/meta"
)

// apiRange is a supported version range of one API.
type apiRange struct{ min, max int16 }

// apis is what the gateway implements, advertised in ApiVersions exactly
// as implemented. Produce from v3 and Fetch from v4 (RecordBatch v2 only)
// as Kafka 4.0. From Produce v13 and Fetch v13 topics are named by ID.
var apis = map[int16]apiRange{
	0:  {3, 13}, // Produce
	1:  {4, 17}, // Fetch
	2:  {1, 8},  // ListOffsets
	3:  {0, 12}, // Metadata
	8:  {2, 9},  // OffsetCommit (v9: by member epoch in consumer groups, KIP-848)
	9:  {1, 7},  // OffsetFetch
	10: {0, 3},  // FindCoordinator
	11: {0, 7},  // JoinGroup
	12: {0, 4},  // Heartbeat
	13: {0, 4},  // LeaveGroup
	14: {0, 5},  // SyncGroup
	15: {0, 5},  // DescribeGroups
	16: {0, 5},  // ListGroups (v5: group types)
	17: {0, 1},  // SaslHandshake
	18: {0, 4},  // ApiVersions
	19: {2, 7},  // CreateTopics
	20: {1, 6},  // DeleteTopics
	21: {0, 2},  // DeleteRecords
	22: {0, 4},  // InitProducerId
	23: {0, 4},  // OffsetForLeaderEpoch
	24: {0, 4},  // AddPartitionsToTxn (v4+: batched)
	25: {0, 4},  // AddOffsetsToTxn
	26: {0, 5},  // EndTxn (v5: transactions v2 when transaction.version is 2)
	28: {0, 5},  // TxnOffsetCommit (v5: adds its group under transactions v2)
	29: {0, 3},  // DescribeAcls
	30: {0, 3},  // CreateAcls
	31: {0, 3},  // DeleteAcls
	32: {0, 4},  // DescribeConfigs
	33: {0, 2},  // AlterConfigs
	35: {0, 4},  // DescribeLogDirs
	36: {0, 2},  // SaslAuthenticate
	37: {0, 3},  // CreatePartitions
	42: {0, 2},  // DeleteGroups
	44: {0, 1},  // IncrementalAlterConfigs
	45: {0, 1},  // AlterPartitionReassignments
	46: {0, 0},  // ListPartitionReassignments
	47: {0, 0},  // OffsetDelete
	50: {0, 0},  // DescribeUserScramCredentials
	51: {0, 0},  // AlterUserScramCredentials
	57: {0, 1},  // UpdateFeatures
	60: {0, 1},  // DescribeCluster
	61: {0, 0},  // DescribeProducers
	65: {0, 0},  // DescribeTransactions
	66: {0, 2},  // ListTransactions
	68: {0, 1},  // ConsumerGroupHeartbeat (KIP-848)
	69: {0, 1},  // ConsumerGroupDescribe (KIP-848)
	76: {1, 1},  // ShareGroupHeartbeat (KIP-932)
	77: {1, 1},  // ShareGroupDescribe (KIP-932)
	78: {1, 2},  // ShareFetch (v2: acquire modes, KIP-1206; renewals, KIP-1222)
	79: {1, 2},  // ShareAcknowledge (v2: renewals, KIP-1222)
	90: {0, 1},  // DescribeShareGroupOffsets (v1: lag, KIP-1226)
	91: {0, 0},  // AlterShareGroupOffsets
	92: {0, 0},  // DeleteShareGroupOffsets
}

func supported(key, version int16) bool {
	r, ok := apis[key]
	return ok && version >= r.min && version <= r.max
}

// apiVersions lists the supported APIs. An unsupported ApiVersions
// version gets UNSUPPORTED_VERSION at v0, so the client can retry lower.
// From v3 it also carries the features this version supports and the
// cluster's finalized levels, features (nil when the metadata cannot be
// read: clients then keep to what needs no feature).
func apiVersions(req *kmsg.ApiVersionsRequest, unsupported bool, features *meta.Features) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	if unsupported {
		resp.SetVersion(0)
		resp.ErrorCode = kerr.UnsupportedVersion.Code
	}
	keys := make([]int16, 0, len(apis))
	for k := range apis {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		r := apis[key]
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = key, r.min, r.max
		resp.ApiKeys = append(resp.ApiKeys, k)
	}
	if resp.Version < 3 || unsupported {
		return resp
	}
	for _, name := range slices.Sorted(maps.Keys(meta.SupportedFeatures)) {
		r := meta.SupportedFeatures[name]
		f := kmsg.NewApiVersionsResponseSupportedFeature()
		f.Name, f.MinVersion, f.MaxVersion = name, r.Min, r.Max
		resp.SupportedFeatures = append(resp.SupportedFeatures, f)
	}
	resp.FinalizedFeaturesEpoch = -1
	if features != nil {
		resp.FinalizedFeaturesEpoch = features.Epoch
		for _, name := range slices.Sorted(maps.Keys(features.Levels)) {
			level := features.Levels[name]
			if level <= 0 {
				continue // a feature at level 0 is not finalized
			}
			f := kmsg.NewApiVersionsResponseFinalizedFeature()
			f.Name, f.MinVersionLevel, f.MaxVersionLevel = name, level, level
			resp.FinalizedFeatures = append(resp.FinalizedFeatures, f)
		}
	}
	return resp
}

// features are the cluster's finalized features as the gateway last read
// them (every metadata read refreshes them), nil when unreadable. Only a
// gateway that never read them asks, for at most featuresWait: a
// connection's first request must not wait on a controller election.
func (g *Gateway) features(ctx context.Context) *meta.Features {
	if f := g.cache.features.Load(); f != nil {
		return f
	}
	ctx, cancel := context.WithTimeout(ctx, featuresWait)
	defer cancel()
	s, err := g.cache.get(ctx, false)
	if err != nil {
		return nil
	}
	return s.features
}

// featuresWait bounds the first read of the features.
const featuresWait = time.Second
