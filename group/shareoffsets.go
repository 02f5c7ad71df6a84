package group

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/meta"
)

// A share group's offsets are its share-partitions' start offsets (SPSO),
// kept by the partitions' leaders in the metadata state. Altering or
// deleting them is for an empty group only, as on Kafka: the reset moves
// each share-partition's state epoch, so its leader drops what it held
// and loads the new start (meta.ResetShareState).

type proposer interface {
	Propose(ctx context.Context, cmd meta.Command) (*meta.ApplyResult, error)
}

// shareOffsetsCheck reports why a share group's offsets cannot be
// changed now: another kind of group holds the id, or the group has
// members. It notes the group as a share group if it is not known yet.
func (c *Coordinator) shareOffsetsCheck(id string) (int16, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.otherKindLocked(id, "share") {
		return kerr.GroupIDNotFound.Code, "Group " + id + " is not a share group."
	}
	if g := c.shares[id]; g != nil && len(g.members) > 0 {
		return kerr.NonEmptyGroup.Code, fmt.Sprintf("share group %s has %d members: stop them first", id, len(g.members))
	}
	return 0, ""
}

func (c *Coordinator) propose(ctx context.Context, cmd meta.Command) error {
	p, ok := c.store.(proposer)
	if !ok {
		return fmt.Errorf("group: the store cannot change share state")
	}
	res, err := p.Propose(ctx, cmd)
	if err == nil {
		err = res.Err
	}
	return err
}

// AlterShareGroupOffsets sets an empty share group's start offsets.
func (c *Coordinator) AlterShareGroupOffsets(ctx context.Context, req *kmsg.AlterShareGroupOffsetsRequest) *kmsg.AlterShareGroupOffsetsResponse {
	resp := req.ResponseKind().(*kmsg.AlterShareGroupOffsetsResponse)
	if code, msg := c.shareOffsetsCheck(req.GroupID); code != 0 {
		resp.ErrorCode, resp.ErrorMessage = code, &msg
		return resp
	}
	topics := c.topicsNow()
	for _, rt := range req.Topics {
		st := kmsg.NewAlterShareGroupOffsetsResponseTopic()
		st.Topic = rt.Topic
		t, known := topics[rt.Topic]
		st.TopicID = t.id
		starts := map[int32]int64{}
		for _, rp := range rt.Partitions {
			sp := kmsg.NewAlterShareGroupOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			switch {
			case !known || rp.Partition < 0 || rp.Partition >= t.partitions:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case rp.StartOffset < 0:
				sp.ErrorCode = kerr.InvalidRequest.Code
				msg := fmt.Sprintf("start offset %d is negative", rp.StartOffset)
				sp.ErrorMessage = &msg
			default:
				starts[rp.Partition] = rp.StartOffset
			}
			st.Partitions = append(st.Partitions, sp)
		}
		if len(starts) > 0 {
			if err := c.propose(ctx, &meta.ResetShareState{Group: req.GroupID, Topic: rt.Topic, Starts: starts, NowMs: time.Now().UnixMilli()}); err != nil {
				for i := range st.Partitions {
					if _, ok := starts[st.Partitions[i].Partition]; ok {
						st.Partitions[i].ErrorCode = shareStateError(err)
						msg := err.Error()
						st.Partitions[i].ErrorMessage = &msg
					}
				}
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	c.noteShareGroup(req.GroupID)
	return resp
}

// DeleteShareGroupOffsets forgets an empty share group's state of some
// topics: a member that reads them again starts by
// share.auto.offset.reset.
func (c *Coordinator) DeleteShareGroupOffsets(ctx context.Context, req *kmsg.DeleteShareGroupOffsetsRequest) *kmsg.DeleteShareGroupOffsetsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteShareGroupOffsetsResponse)
	if code, msg := c.shareOffsetsCheck(req.GroupID); code != 0 {
		resp.ErrorCode, resp.ErrorMessage = code, &msg
		return resp
	}
	states, err := c.shareStates(req.GroupID)
	if err != nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	if len(states) == 0 && !c.knownShareGroup(req.GroupID) {
		resp.ErrorCode = kerr.GroupIDNotFound.Code
		return resp
	}
	topics := c.topicsNow()
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteShareGroupOffsetsResponseTopic()
		st.Topic = rt.Topic
		t, known := topics[rt.Topic]
		st.TopicID = t.id
		starts := map[int32]int64{}
		for _, s := range states {
			if s.Topic == rt.Topic && s.Start != meta.Uninitialized {
				starts[s.Partition] = meta.Uninitialized
			}
		}
		switch {
		case !known:
			st.ErrorCode = kerr.UnknownTopicOrPartition.Code
		case len(starts) > 0:
			if err := c.propose(ctx, &meta.ResetShareState{Group: req.GroupID, Topic: rt.Topic, Starts: starts, NowMs: time.Now().UnixMilli()}); err != nil {
				st.ErrorCode = shareStateError(err)
				msg := err.Error()
				st.ErrorMessage = &msg
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

func shareStateError(err error) int16 {
	switch {
	case errors.Is(err, meta.ErrUnknownTopic):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, meta.ErrInvalidRequest):
		return kerr.InvalidRequest.Code
	}
	return kerr.UnknownServerError.Code
}

// shareStates reads a group's share-partition states.
func (c *Coordinator) shareStates(group string) ([]meta.ShareState, error) {
	vs, ok := c.store.(interface{ View() *meta.View })
	if !ok {
		return nil, nil
	}
	v := vs.View()
	defer v.Close()
	return v.ShareStates(group)
}

// knownShareGroup reports whether id is a share group the coordinator
// holds (with or without members).
func (c *Coordinator) knownShareGroup(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.shares[id] != nil
}

// noteShareGroup makes id an empty share group if no group holds it, as
// an offsets change on Kafka creates one.
func (c *Coordinator) noteShareGroup(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shares[id] == nil && !c.otherKindLocked(id, "share") {
		c.shares[id] = &shareGroup{id: id, members: map[string]*shareMember{}}
	}
}

// durableShareGroups lists the groups with share state.
func (c *Coordinator) durableShareGroups() []string {
	vs, ok := c.store.(interface{ View() *meta.View })
	if !ok {
		return nil
	}
	v := vs.View()
	defer v.Close()
	out, _ := v.ShareGroups()
	return out
}

// groupTimeouts reads a group's own session timeout and heartbeat
// interval from its group configs (kind.session.timeout.ms,
// kind.heartbeat.interval.ms); zero where it sets none.
func (c *Coordinator) groupTimeouts(id, kind string) (session, heartbeat time.Duration) {
	vs, ok := c.store.(interface{ View() *meta.View })
	if !ok {
		return 0, 0
	}
	v := vs.View()
	set, err := v.GroupConfigs(id)
	v.Close()
	if err != nil {
		return 0, 0
	}
	ms := func(k string) time.Duration {
		n, _ := strconv.ParseInt(set[k], 10, 64)
		return time.Duration(n) * time.Millisecond
	}
	return ms(kind + ".session.timeout.ms"), ms(kind + ".heartbeat.interval.ms")
}

// noteTimeoutsLocked records a group's own session timeout, and returns
// the heartbeat interval to tell its member: its own, or def.
func (c *Coordinator) noteTimeoutsLocked(id string, session, heartbeat, def time.Duration) time.Duration {
	if session > 0 {
		c.sessions[id] = session
	} else {
		delete(c.sessions, id)
	}
	if heartbeat > 0 {
		return heartbeat
	}
	return def
}

// sessionLocked is a group's session timeout: its own, or def.
func (c *Coordinator) sessionLocked(id string, def time.Duration) time.Duration {
	if s, ok := c.sessions[id]; ok {
		return s
	}
	return def
}
