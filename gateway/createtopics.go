package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/meta"
)

// createTopics creates each topic through the controller, which places
// the replicas on live nodes unless the request assigns them.
func (g *Gateway) createTopics(ctx context.Context, req *kmsg.CreateTopicsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.NumPartitions, st.ReplicationFactor = rt.NumPartitions, rt.ReplicationFactor
		configs := map[string]string{}
		for _, c := range rt.Configs {
			if c.Value != nil {
				configs[c.Name] = *c.Value
			}
		}
		if !g.mayCreateTopic(ctx, rt.Topic) {
			st.ErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Topics = append(resp.Topics, st)
			continue
		}
		if rt.Topic == offsetsTopic {
			st.ErrorCode = kerr.TopicAlreadyExists.Code
			resp.Topics = append(resp.Topics, st)
			continue
		}
		var assignment [][]int32
		if len(rt.ReplicaAssignment) > 0 {
			assignment = make([][]int32, len(rt.ReplicaAssignment))
			for _, a := range rt.ReplicaAssignment {
				if a.Partition < 0 || int(a.Partition) >= len(assignment) {
					assignment = nil
					break
				}
				assignment[a.Partition] = slices.Clone(a.Replicas)
			}
			if assignment == nil || slices.ContainsFunc(assignment, func(r []int32) bool { return len(r) == 0 }) {
				st.ErrorCode = kerr.InvalidReplicaAssignment.Code
				resp.Topics = append(resp.Topics, st)
				continue
			}
		}
		msg := ""
		st.ErrorCode = g.createTopic(ctx, rt.Topic, rt.NumPartitions, rt.ReplicationFactor, configs, assignment, req.ValidateOnly, &msg)
		if msg != "" {
			st.ErrorMessage = &msg
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// createTopic proposes one topic and maps the outcome to a Kafka error
// code. -1 partitions or replication factor take the defaults.
func (g *Gateway) createTopic(ctx context.Context, name string, partitions int32, rf int16, configs map[string]string, assignment [][]int32, validateOnly bool, msgOut ...*string) int16 {
	say := func(s string) {
		if len(msgOut) > 0 {
			*msgOut[0] = s
		}
	}
	if validTopicName(name) != nil {
		say("topic names are 1-249 characters of [a-zA-Z0-9._-], not . or ..")
		return kerr.InvalidTopicException.Code
	}
	if assignment != nil {
		partitions, rf = int32(len(assignment)), int16(len(assignment[0]))
	}
	if partitions == -1 {
		partitions = g.cfg.DefaultPartitions
	}
	if rf == -1 {
		rf = g.cfg.DefaultReplicationFactor
	}
	if partitions < 1 {
		say("the number of partitions must be at least 1")
		return kerr.InvalidPartitions.Code
	}
	if rf < 1 {
		say("the replication factor must be at least 1")
		return kerr.InvalidReplicationFactor.Code
	}
	if err := meta.ValidateTopicConfigs(configs); err != nil {
		say(err.Error())
		return kerr.InvalidConfig.Code
	}
	if validateOnly {
		return 0
	}
	res, err := g.meta.Propose(ctx, &meta.CreateTopic{
		Topic:      meta.Topic{Name: name, Partitions: partitions, ReplicationFactor: rf, Configs: configs},
		Assignment: assignment,
	})
	if err == nil {
		err = res.Err
	}
	switch {
	case errors.Is(err, meta.ErrTopicExists):
		say(fmt.Sprintf("Topic '%s' already exists.", name)) // Kafka's words
	case err != nil:
		say(err.Error())
	default:
		g.cache.invalidate()
	}
	return metaErrorCode(err)
}
