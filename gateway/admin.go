package gateway

import (
	"context"
	"errors"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/meta"
)

// metaErrorCode maps a controller error to the Kafka code a broker sends.
func metaErrorCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, meta.ErrUnknownTopic):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, meta.ErrTopicExists):
		return kerr.TopicAlreadyExists.Code
	case errors.Is(err, meta.ErrInvalidConfig):
		return kerr.InvalidConfig.Code
	case errors.Is(err, meta.ErrNotEnoughNodes):
		return kerr.InvalidReplicationFactor.Code
	case errors.Is(err, meta.ErrInvalidRequest):
		return kerr.InvalidRequest.Code
	case errors.Is(err, meta.ErrNotLeader):
		return kerr.NotController.Code
	case errors.Is(err, meta.ErrInvalidReplicas):
		return kerr.InvalidReplicaAssignment.Code
	case errors.Is(err, meta.ErrNoReassignment):
		return kerr.NoReassignmentInProgress.Code
	}
	return kerr.UnknownServerError.Code
}

func (g *Gateway) propose(ctx context.Context, cmd meta.Command) error {
	res, err := g.meta.Propose(ctx, cmd)
	if err == nil {
		err = res.Err
	}
	if err == nil {
		g.cache.invalidate()
	}
	return err
}

func errMessage(err error) *string {
	if err == nil {
		return nil
	}
	m := err.Error()
	return &m
}

// deleteTopics deletes topics by name or, from v6, by id.
func (g *Gateway) deleteTopics(ctx context.Context, req *kmsg.DeleteTopicsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	type target struct {
		name *string
		id   [16]byte
	}
	var targets []target
	for _, n := range req.TopicNames {
		targets = append(targets, target{name: &n})
	}
	for _, t := range req.Topics {
		targets = append(targets, target{name: t.Topic, id: t.TopicID})
	}
	snap, _ := g.cache.get(ctx, true)
	for _, t := range targets {
		rt := kmsg.NewDeleteTopicsResponseTopic()
		rt.Topic, rt.TopicID = t.name, t.id
		name := ""
		switch {
		case t.name != nil:
			name = *t.name
		case snap != nil:
			name = snap.byID[t.id]
		}
		switch {
		case name == "":
			rt.ErrorCode = kerr.UnknownTopicID.Code
		case !g.allowed(ctx, opDelete, rtTopic, name):
			rt.ErrorCode = kerr.TopicAuthorizationFailed.Code
		case name == offsetsTopic:
			rt.ErrorCode = kerr.InvalidTopicException.Code // internal: read-only
		default:
			n := name
			rt.Topic = &n
			err := g.propose(ctx, &meta.DeleteTopic{Name: name})
			rt.ErrorCode, rt.ErrorMessage = metaErrorCode(err), errMessage(err)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// createPartitions raises partition counts; the controller places the new
// partitions.
func (g *Gateway) createPartitions(ctx context.Context, req *kmsg.CreatePartitionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	snap, _ := g.cache.get(ctx, true)
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		t, ok := meta.Topic{}, false
		if snap != nil {
			t, ok = snap.topics[rt.Topic]
		}
		switch {
		case !g.allowed(ctx, opAlter, rtTopic, rt.Topic):
			st.ErrorCode = kerr.TopicAuthorizationFailed.Code
		case rt.Topic == offsetsTopic:
			st.ErrorCode = kerr.InvalidTopicException.Code // internal: read-only
		case !ok:
			st.ErrorCode = kerr.UnknownTopicOrPartition.Code
		case rt.Count <= t.Partitions:
			st.ErrorCode = kerr.InvalidPartitions.Code
			st.ErrorMessage = errMessage(errors.New("the new partition count must be larger than the current one"))
		case len(rt.Assignment) > 0:
			st.ErrorCode = kerr.InvalidReplicaAssignment.Code
			st.ErrorMessage = errMessage(errors.New("manual assignment of new partitions is not supported; omit it"))
		case req.ValidateOnly:
		default:
			err := g.propose(ctx, &meta.CreatePartitions{Topic: rt.Topic, Total: rt.Count})
			st.ErrorCode, st.ErrorMessage = metaErrorCode(err), errMessage(err)
			if errors.Is(err, meta.ErrInvalidRequest) {
				st.ErrorCode = kerr.InvalidPartitions.Code
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// describeConfigs reports every topic config key: the topic's value, or
// the default.
func (g *Gateway) describeConfigs(ctx context.Context, req *kmsg.DescribeConfigsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	snap, err := g.cache.get(ctx, true)
	for _, rr := range req.Resources {
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			t, ok := meta.Topic{}, false
			if err == nil {
				t, ok = snap.topics[rr.ResourceName]
			}
			if !g.allowed(ctx, opDescribeConfigs, rtTopic, rr.ResourceName) {
				sr.ErrorCode = kerr.TopicAuthorizationFailed.Code
				break
			}
			if !ok {
				sr.ErrorCode = kerr.UnknownTopicOrPartition.Code
				break
			}
			// What a key the topic does not set is, is up to the
			// leader's flags (partition 0's, as the topic's face).
			var brokerSet map[string]string
			if ps := snap.partitions[rr.ResourceName]; len(ps) > 0 {
				brokerSet = g.defaults.of(ps[0].Leader)
			}
			keys := make([]string, 0, len(meta.TopicConfigDefaults))
			for k := range meta.TopicConfigDefaults {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				if rr.ConfigNames != nil && !slices.Contains(rr.ConfigNames, k) {
					continue
				}
				c := kmsg.NewDescribeConfigsResponseResourceConfig()
				c.Name = k
				v, set := t.Configs[k]
				bv, brokerHas := brokerSet[k]
				switch {
				case set:
					c.Source = kmsg.ConfigSourceDynamicTopicConfig
				case brokerHas:
					v, c.Source = bv, kmsg.ConfigSourceStaticBrokerConfig
				default:
					v, c.Source, c.IsDefault = meta.TopicConfigDefaults[k], kmsg.ConfigSourceDefaultConfig, true
				}
				c.Value = &v
				sr.Configs = append(sr.Configs, c)
			}
		case kmsg.ConfigResourceTypeGroupConfig:
			g.describeGroupConfigs(ctx, rr, &sr)
		case kmsg.ConfigResourceTypeBroker:
			// Broker settings are flags of the processes, not dynamic
			// configs: nothing to describe.
			if !g.allowedCluster(ctx, opDescribeConfigs) {
				sr.ErrorCode = kerr.ClusterAuthorizationFailed.Code
			}
		default:
			sr.ErrorCode = kerr.InvalidRequest.Code
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp
}

// alterConfigs replaces a topic's whole config set (AlterConfigs has no
// increments: keys not given return to their defaults).
func (g *Gateway) alterConfigs(ctx context.Context, req *kmsg.AlterConfigsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	snap, _ := g.cache.get(ctx, true)
	for _, rr := range req.Resources {
		sr := kmsg.NewAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		set := map[string]string{}
		for _, c := range rr.Configs {
			if c.Value != nil {
				set[c.Name] = *c.Value
			}
		}
		var del []string
		if rr.ResourceType == kmsg.ConfigResourceTypeGroupConfig {
			for k := range meta.GroupConfigDefaults {
				if _, ok := set[k]; !ok {
					del = append(del, k)
				}
			}
			sr.ErrorCode, sr.ErrorMessage = g.alterGroupConfigs(ctx, rr.ResourceName, set, del, req.ValidateOnly)
			resp.Resources = append(resp.Resources, sr)
			continue
		}
		if snap != nil {
			for k := range snap.topics[rr.ResourceName].Configs {
				if _, ok := set[k]; !ok {
					del = append(del, k)
				}
			}
		}
		sr.ErrorCode, sr.ErrorMessage = g.alterTopicConfigs(ctx, snap, rr.ResourceType, rr.ResourceName, set, del, req.ValidateOnly)
		resp.Resources = append(resp.Resources, sr)
	}
	return resp
}

// incrementalAlterConfigs sets and deletes individual keys.
func (g *Gateway) incrementalAlterConfigs(ctx context.Context, req *kmsg.IncrementalAlterConfigsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	snap, _ := g.cache.get(ctx, true)
	for _, rr := range req.Resources {
		sr := kmsg.NewIncrementalAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		set := map[string]string{}
		var del []string
		bad := false
		for _, c := range rr.Configs {
			switch c.Op {
			case kmsg.IncrementalAlterConfigOpSet:
				if c.Value != nil {
					set[c.Name] = *c.Value
				}
			case kmsg.IncrementalAlterConfigOpDelete:
				del = append(del, c.Name)
			default: // APPEND / SUBTRACT apply to list configs; Strata has none.
				bad = true
			}
		}
		if bad {
			sr.ErrorCode = kerr.InvalidRequest.Code
			sr.ErrorMessage = errMessage(errors.New("APPEND and SUBTRACT apply to list configs; no topic config here is a list"))
		} else if rr.ResourceType == kmsg.ConfigResourceTypeGroupConfig {
			sr.ErrorCode, sr.ErrorMessage = g.alterGroupConfigs(ctx, rr.ResourceName, set, del, req.ValidateOnly)
		} else {
			sr.ErrorCode, sr.ErrorMessage = g.alterTopicConfigs(ctx, snap, rr.ResourceType, rr.ResourceName, set, del, req.ValidateOnly)
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp
}

func (g *Gateway) alterTopicConfigs(ctx context.Context, snap *snapshot, typ kmsg.ConfigResourceType, name string, set map[string]string, del []string, validateOnly bool) (int16, *string) {
	switch {
	case typ == kmsg.ConfigResourceTypeTopic && !g.allowed(ctx, opAlterConfigs, rtTopic, name):
		return kerr.TopicAuthorizationFailed.Code, nil
	case typ == kmsg.ConfigResourceTypeBroker && !g.allowedCluster(ctx, opAlterConfigs):
		return kerr.ClusterAuthorizationFailed.Code, nil
	}
	if typ != kmsg.ConfigResourceTypeTopic {
		return kerr.InvalidRequest.Code, errMessage(errors.New("only topic configs can be altered; broker settings are process flags"))
	}
	if snap == nil {
		return kerr.NotController.Code, nil
	}
	if _, ok := snap.topics[name]; !ok {
		return kerr.UnknownTopicOrPartition.Code, nil
	}
	if err := meta.ValidateTopicConfigs(set); err != nil {
		return kerr.InvalidConfig.Code, errMessage(err)
	}
	for _, k := range del {
		if _, ok := meta.TopicConfigDefaults[k]; !ok {
			return kerr.InvalidConfig.Code, errMessage(errors.New("unknown topic config " + k))
		}
	}
	if validateOnly {
		return 0, nil
	}
	err := g.propose(ctx, &meta.AlterConfigs{Topic: name, Set: set, Delete: del})
	return metaErrorCode(err), errMessage(err)
}
