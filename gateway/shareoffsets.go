package gateway

import (
	"context"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/meta"
)

// describeShareGroupOffsets answers DescribeShareGroupOffsets from the
// share-partitions' durable state and their leaders' high watermarks:
// each partition's start offset (SPSO) and lag, the records from the
// start to the high watermark not yet acknowledged or archived
// (KIP-1226).
func (g *Gateway) describeShareGroupOffsets(ctx context.Context, req *kmsg.DescribeShareGroupOffsetsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeShareGroupOffsetsResponse)
	snap, _ := g.cache.get(ctx, false)
	for _, rg := range req.Groups {
		sg := kmsg.NewDescribeShareGroupOffsetsResponseGroup()
		sg.GroupID = rg.GroupID
		if !g.allowed(ctx, opDescribe, rtGroup, rg.GroupID) {
			sg.ErrorCode = kerr.GroupAuthorizationFailed.Code
			resp.Groups = append(resp.Groups, sg)
			continue
		}
		r, err := g.meta.Read(ctx, meta.ReadRequest{Kind: "share_states", Group: rg.GroupID})
		if err != nil {
			sg.ErrorCode, sg.ErrorMessage = kerr.CoordinatorNotAvailable.Code, errMessage(err)
			resp.Groups = append(resp.Groups, sg)
			continue
		}
		states := map[string]map[int32]meta.ShareState{}
		for _, s := range r.ShareStates {
			if states[s.Topic] == nil {
				states[s.Topic] = map[int32]meta.ShareState{}
			}
			states[s.Topic][s.Partition] = s
		}
		type asked struct {
			topic string
			parts []int32
		}
		var topics []asked
		all := rg.Topics == nil
		if all {
			for _, name := range slices.Sorted(maps.Keys(states)) {
				var ps []int32
				for p, s := range states[name] {
					if s.Start != meta.Uninitialized {
						ps = append(ps, p)
					}
				}
				if len(ps) > 0 && g.allowed(ctx, opDescribe, rtTopic, name) {
					slices.Sort(ps)
					topics = append(topics, asked{name, ps})
				}
			}
		} else {
			for _, t := range rg.Topics {
				topics = append(topics, asked{t.Topic, t.Partitions})
			}
		}
		// The high watermarks, from the leaders.
		lo := kmsg.NewPtrListOffsetsRequest()
		lo.SetVersion(4)
		lo.ReplicaID = -1
		for _, t := range topics {
			lt := kmsg.NewListOffsetsRequestTopic()
			lt.Topic = t.topic
			for _, p := range t.parts {
				lp := kmsg.NewListOffsetsRequestTopicPartition()
				lp.Partition, lp.Timestamp, lp.CurrentLeaderEpoch = p, -1, -1
				lt.Partitions = append(lt.Partitions, lp)
			}
			lo.Topics = append(lo.Topics, lt)
		}
		hws := map[string]map[int32]int64{}
		if len(lo.Topics) > 0 {
			if lr, ok := g.listOffsets(ctx, lo).(*kmsg.ListOffsetsResponse); ok {
				for _, t := range lr.Topics {
					hws[t.Topic] = map[int32]int64{}
					for _, p := range t.Partitions {
						if p.ErrorCode == 0 {
							hws[t.Topic][p.Partition] = p.Offset
						}
					}
				}
			}
		}
		for _, t := range topics {
			st := kmsg.NewDescribeShareGroupOffsetsResponseGroupTopic()
			st.Topic = t.topic
			var parts []meta.Partition
			if snap != nil {
				st.TopicID = snap.topics[t.topic].ID
				parts = snap.partitions[t.topic]
			}
			denied := !all && !g.allowed(ctx, opDescribe, rtTopic, t.topic)
			for _, p := range t.parts {
				sp := kmsg.NewDescribeShareGroupOffsetsResponseGroupTopicPartition()
				sp.Partition, sp.StartOffset, sp.Lag, sp.LeaderEpoch = p, -1, -1, -1
				if int(p) < len(parts) && p >= 0 {
					sp.LeaderEpoch = parts[p].LeaderEpoch
				}
				s, ok := states[t.topic][p]
				switch {
				case denied:
					sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				case !ok || s.Start == meta.Uninitialized:
					// No state: the group has not read it.
				default:
					sp.StartOffset = s.Start
					if hw, ok := hws[t.topic][p]; ok {
						sp.Lag = shareLag(s, hw)
					}
				}
				st.Partitions = append(st.Partitions, sp)
			}
			sg.Topics = append(sg.Topics, st)
		}
		resp.Groups = append(resp.Groups, sg)
	}
	return resp
}

// shareLag counts the records from a share-partition's start up to hw
// not yet delivered to the end: neither acknowledged nor archived.
func shareLag(s meta.ShareState, hw int64) int64 {
	lag := hw - s.Start
	for _, b := range s.Batches {
		if b.State != 2 && b.State != 4 { // acknowledged, archived
			continue
		}
		first, last := max(b.First, s.Start), min(b.Last, hw-1)
		if last >= first {
			lag -= last - first + 1
		}
	}
	return max(lag, 0)
}

// SharePartition is a share-partition as its last written state has it.
type SharePartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Start is the share-partition start offset (SPSO); End is one past
	// the last record delivered (SPEO).
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	// InFlight counts the records from Start to End delivered and not
	// yet acknowledged or archived: held by a member, or released and
	// waiting to be delivered again.
	InFlight int64 `json:"in_flight"`
	// MaxDeliveries is the highest delivery count among them.
	MaxDeliveries int32 `json:"max_deliveries"`
}

// SharePartitions reads a share group's share-partitions from the
// metadata (for the admin API: strata group describe).
func (g *Gateway) SharePartitions(ctx context.Context, group string) ([]SharePartition, error) {
	r, err := g.meta.Read(ctx, meta.ReadRequest{Kind: "share_states", Group: group})
	if err != nil {
		return nil, err
	}
	out := []SharePartition{}
	for _, s := range r.ShareStates {
		if s.Start == meta.Uninitialized {
			continue
		}
		p := SharePartition{Topic: s.Topic, Partition: s.Partition, Start: s.Start, End: s.Start}
		for _, b := range s.Batches {
			p.End = max(p.End, b.Last+1)
			if b.State == 0 && b.Deliveries > 0 || b.State == 1 {
				p.InFlight += b.Last - max(b.First, s.Start) + 1
				p.MaxDeliveries = max(p.MaxDeliveries, b.Deliveries)
			}
		}
		out = append(out, p)
	}
	return out, nil
}
