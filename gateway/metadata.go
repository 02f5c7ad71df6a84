package gateway

import (
	"context"
	"errors"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/meta"
)

// metadata lists the nodes as brokers, each at a gateway's address
// (brokers.go), with partitions led by their leader node. Unknown topics are created when the
// client allows it and auto.create.topics.enable is on.
func (g *Gateway) metadata(ctx context.Context, req *kmsg.MetadataRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	cluster := g.cfg.Cluster
	resp.ClusterID = &cluster
	snap, err := g.cache.get(ctx, true)
	if err != nil {
		g.logger.Warn("metadata read failed", "error", err)
		snap = &snapshot{topics: map[string]meta.Topic{}, partitions: map[string][]meta.Partition{}, byID: map[[16]byte]string{}}
	}
	brokers, controller, byNode := g.brokers(ctx, snap)
	for _, b := range brokers {
		mb := kmsg.NewMetadataResponseBroker()
		mb.NodeID, mb.Host, mb.Port, mb.Rack = b.id, b.host, b.port, b.rackOrNil()
		resp.Brokers = append(resp.Brokers, mb)
	}
	resp.ControllerID = controller
	listed := func(id int32) bool { return slices.ContainsFunc(brokers, func(b broker) bool { return b.id == id }) }
	var names []string
	if req.Topics == nil {
		for name := range snap.topics {
			names = append(names, name)
		}
		names = append(names, offsetsTopic)
	} else {
		for _, t := range req.Topics {
			switch {
			case t.Topic != nil:
				names = append(names, *t.Topic)
			case t.TopicID != [16]byte{}:
				if name, ok := snap.byID[t.TopicID]; ok {
					names = append(names, name)
				} else {
					mt := kmsg.NewMetadataResponseTopic()
					mt.TopicID, mt.ErrorCode = t.TopicID, kerr.UnknownTopicID.Code
					resp.Topics = append(resp.Topics, mt)
				}
			}
		}
	}
	// A topic the principal may not describe is left out of a list of
	// all, and named with TOPIC_AUTHORIZATION_FAILED when asked for.
	visible := names[:0]
	for _, name := range names {
		if g.allowed(ctx, opDescribe, rtTopic, name) {
			visible = append(visible, name)
		} else if req.Topics != nil {
			resp.Topics = append(resp.Topics, deniedTopic(name))
		}
	}
	names = visible
	// Metadata before v4 has no AllowAutoTopicCreation: Kafka takes those
	// versions as allowing it (kafka-python's producer asks v1).
	allowCreate := req.AllowAutoTopicCreation || req.Version < 4
	created := false
	createDenied := map[string]bool{}
	for _, name := range names {
		if _, ok := snap.topics[name]; ok || name == offsetsTopic || req.Topics == nil || !allowCreate || !g.cfg.AutoCreateTopics {
			continue
		}
		if !g.mayCreateTopic(ctx, name) {
			createDenied[name] = true
			continue
		}
		if code := g.createTopic(ctx, name, -1, -1, nil, nil, false); code == 0 || code == kerr.TopicAlreadyExists.Code {
			created = true
		}
	}
	if created {
		if s, err := g.cache.get(ctx, true); err == nil {
			snap = s
		}
	}
	for _, name := range names {
		if name == offsetsTopic {
			resp.Topics = append(resp.Topics, offsetsTopicMetadata(brokers, controller))
			continue
		}
		mt := kmsg.NewMetadataResponseTopic()
		n := name
		mt.Topic = &n
		t, ok := snap.topics[name]
		if !ok && createDenied[name] {
			resp.Topics = append(resp.Topics, deniedTopic(name))
			continue
		}
		if !ok {
			mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			if err != nil {
				mt.ErrorCode = kerr.LeaderNotAvailable.Code
			} else if validTopicName(name) != nil {
				mt.ErrorCode = kerr.InvalidTopicException.Code
			}
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		mt.TopicID = t.ID
		for _, p := range snap.partitions[name] {
			mp := kmsg.NewMetadataResponseTopicPartition()
			mp.Partition, mp.LeaderEpoch = p.Partition, p.LeaderEpoch
			mp.Replicas, mp.ISR = p.Replicas, p.ISR
			switch {
			case p.Leader < 0 || byNode && !listed(p.Leader):
				mp.Leader, mp.ErrorCode = -1, kerr.LeaderNotAvailable.Code
			case byNode:
				mp.Leader = p.Leader
			default: // no node known yet: any gateway will do
				mp.Leader = brokers[pickIndex(len(brokers), name, p.Partition)].id
			}
			mt.Partitions = append(mt.Partitions, mp)
		}
		resp.Topics = append(resp.Topics, mt)
	}
	return resp
}

// deniedTopic is a Metadata entry for a topic the principal may not
// describe (or auto-create).
func deniedTopic(name string) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic, mt.ErrorCode = &name, kerr.TopicAuthorizationFailed.Code
	return mt
}

// validTopicName applies Kafka's topic name rule.
func validTopicName(name string) error {
	if len(name) == 0 || len(name) > 249 || name == "." || name == ".." {
		return errors.New("invalid topic name")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return errors.New("invalid topic name")
		}
	}
	return nil
}
