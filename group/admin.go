package group

import (
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/meta"
)

// ListGroups lists groups with members or committed offsets, with their
// state ("Empty" for offsets only).
func (c *Coordinator) ListGroups(ctx context.Context, req *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	withOffsets, err := c.store.Groups(ctx)
	if err != nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	shareGroups := c.durableShareGroups()
	c.mu.Lock()
	type entry struct{ state, protocolType string }
	all := map[string]entry{}
	for _, g := range withOffsets {
		all[g] = entry{"Empty", "consumer"}
	}
	typ := map[string]string{}
	for _, id := range shareGroups {
		all[id], typ[id] = entry{"Empty", "share"}, "share"
	}
	for id, g := range c.groups {
		if len(g.members) > 0 {
			all[id] = entry{g.state.String(), g.protocolType}
		}
	}
	// Groups of the newer kinds keep their kind while empty, as on Kafka.
	for id, g := range c.consumers {
		all[id], typ[id] = entry{g.state(), "consumer"}, "consumer"
	}
	for id, g := range c.shares {
		all[id], typ[id] = entry{g.state(), "share"}, "share"
	}
	c.mu.Unlock()
	ids := make([]string, 0, len(all))
	for id := range all {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		e := all[id]
		if len(req.StatesFilter) > 0 && !slices.Contains(req.StatesFilter, e.state) {
			continue
		}
		t := typ[id]
		if t == "" {
			t = "classic"
		}
		if len(req.TypesFilter) > 0 && !slices.ContainsFunc(req.TypesFilter, func(f string) bool { return strings.EqualFold(f, t) }) {
			continue
		}
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group, lg.ProtocolType, lg.GroupState, lg.GroupType = id, e.protocolType, e.state, t
		resp.Groups = append(resp.Groups, lg)
	}
	return resp
}

// DescribeGroups reports each group's state, protocol and members with
// their assignments. A group without members is Empty, also one known
// only by its committed offsets (as ListGroups says, and as Kafka loads
// such a group from its offsets topic); one with neither is Dead.
func (c *Coordinator) DescribeGroups(ctx context.Context, req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	withOffsets := map[string]bool{}
	var names map[[16]byte]string // topic names, for consumer-protocol groups
	c.mu.Lock()
	for _, id := range req.Groups {
		if c.groups[id] == nil {
			withOffsets[id] = false
		}
		if cg := c.consumers[id]; cg != nil && len(cg.members) > 0 && names == nil {
			names = map[[16]byte]string{}
		}
	}
	c.mu.Unlock()
	if names != nil {
		for _, t := range c.topicsNow() {
			names[t.id] = t.name
		}
	}
	for id := range withOffsets {
		if os, err := c.store.GroupOffsets(ctx, id); err == nil && len(os) > 0 {
			withOffsets[id] = true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range req.Groups {
		dg := kmsg.NewDescribeGroupsResponseGroup()
		dg.Group, dg.State = id, "Dead"
		g := c.groups[id]
		if g == nil && withOffsets[id] {
			dg.State, dg.ProtocolType = "Empty", "consumer"
		}
		if cg := c.consumers[id]; cg != nil && len(cg.members) > 0 {
			resp.Groups = append(resp.Groups, cg.describeClassic(names))
			continue
		}
		if g != nil {
			dg.State, dg.ProtocolType, dg.Protocol = g.state.String(), g.protocolType, g.protocol
			for _, m := range g.members {
				dm := kmsg.NewDescribeGroupsResponseGroupMember()
				dm.MemberID, dm.ClientID, dm.ClientHost = m.id, m.clientID, m.clientHost
				if m.instanceID != "" {
					iid := m.instanceID
					dm.InstanceID = &iid
				}
				for _, p := range m.protocols {
					if p.Name == g.protocol {
						dm.ProtocolMetadata = p.Metadata
					}
				}
				dm.MemberAssignment = m.assignment
				dg.Members = append(dg.Members, dm)
			}
			slices.SortFunc(dg.Members, func(a, b kmsg.DescribeGroupsResponseGroupMember) int {
				if a.MemberID < b.MemberID {
					return -1
				}
				return 1
			})
		}
		resp.Groups = append(resp.Groups, dg)
	}
	return resp
}

// DeleteGroups deletes empty groups and their offsets.
func (c *Coordinator) DeleteGroups(ctx context.Context, req *kmsg.DeleteGroupsRequest) *kmsg.DeleteGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	withOffsets, err := c.store.Groups(ctx)
	for _, id := range req.Groups {
		dg := kmsg.NewDeleteGroupsResponseGroup()
		dg.Group = id
		c.mu.Lock()
		g := c.groups[id]
		cg := c.consumers[id]
		sg := c.shares[id]
		active := g != nil && len(g.members) > 0 || cg != nil && len(cg.members) > 0 || sg != nil && len(sg.members) > 0
		c.mu.Unlock()
		switch {
		case err != nil:
			dg.ErrorCode = kerr.CoordinatorNotAvailable.Code
		case active:
			dg.ErrorCode = kerr.NonEmptyGroup.Code
		case g == nil && cg == nil && sg == nil && !slices.Contains(withOffsets, id) && !slices.Contains(c.durableShareGroups(), id):
			dg.ErrorCode = kerr.GroupIDNotFound.Code
		default:
			if err := c.store.DeleteOffsets(ctx, id, "", nil); err != nil {
				dg.ErrorCode = kerr.CoordinatorNotAvailable.Code
				break
			}
			if _, ok := c.store.(proposer); ok {
				// Its metadata goes too, with a tombstone.
				if err := c.propose(ctx, &meta.PutGroupMetadata{Group: id}); err != nil {
					dg.ErrorCode = kerr.CoordinatorNotAvailable.Code
					break
				}
			}
			if slices.Contains(c.durableShareGroups(), id) {
				if err := c.propose(ctx, &meta.DeleteShareState{Group: id}); err != nil {
					dg.ErrorCode = kerr.CoordinatorNotAvailable.Code
					break
				}
			}
			c.mu.Lock()
			if g := c.groups[id]; g != nil && len(g.members) == 0 {
				delete(c.groups, id)
			}
			if cg := c.consumers[id]; cg != nil && len(cg.members) == 0 {
				delete(c.consumers, id)
			}
			if sg := c.shares[id]; sg != nil && len(sg.members) == 0 {
				delete(c.shares, id)
			}
			c.mu.Unlock()
		}
		resp.Groups = append(resp.Groups, dg)
	}
	return resp
}

// OffsetDelete deletes some of a group's committed offsets. A group with
// members may be consuming them: that is refused.
func (c *Coordinator) OffsetDelete(ctx context.Context, req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	c.mu.Lock()
	g := c.groups[req.Group]
	active := g != nil && len(g.members) > 0
	c.mu.Unlock()
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		var parts []int32
		for _, p := range t.Partitions {
			parts = append(parts, p.Partition)
		}
		code := int16(0)
		if active {
			code = kerr.GroupSubscribedToTopic.Code
		} else if err := c.store.DeleteOffsets(ctx, req.Group, t.Topic, parts); err != nil {
			code = kerr.CoordinatorNotAvailable.Code
		}
		for _, p := range parts {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p, code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
