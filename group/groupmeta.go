package group

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/meta"
)

// A classic group's metadata goes to the metadata (meta.PutGroupMetadata)
// when a rebalance completes and when the group empties, as Kafka's
// coordinator appends it to __consumer_offsets; lag tools reading that
// topic then see each group's generation, members and assignments. The
// writes run in the background, latest state first, so a JoinGroup or
// SyncGroup never waits on one; a group changing again before its write
// is written once, as it then is.

// groupMetaRetry is how long a failed write waits to be tried again.
const groupMetaRetry = time.Second

// recordGroupLocked asks for g's metadata to be written.
func (c *Coordinator) recordGroupLocked(g *group) {
	if _, ok := c.store.(proposer); !ok {
		return
	}
	c.metaDirty[g.id] = true
	select {
	case c.metaKick <- struct{}{}:
	default:
	}
}

// groupMetaLoop writes the groups recordGroupLocked named.
func (c *Coordinator) groupMetaLoop() {
	defer c.wg.Done()
	p, ok := c.store.(proposer)
	if !ok {
		return
	}
	for {
		select {
		case <-c.stop:
			return
		case <-c.metaKick:
		}
		c.mu.Lock()
		values := map[string][]byte{}
		for id := range c.metaDirty {
			if g := c.groups[id]; g != nil {
				values[id] = groupMetadataValue(g, time.Now())
			}
		}
		clear(c.metaDirty)
		c.mu.Unlock()
		failed := false
		for id, v := range values {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			res, err := p.Propose(ctx, &meta.PutGroupMetadata{Group: id, Value: v, NowMs: time.Now().UnixMilli()})
			cancel()
			if err == nil {
				err = res.Err
			}
			if err != nil {
				c.logger.Debug("group metadata not written; trying again", "group", id, "error", err)
				c.mu.Lock()
				if c.groups[id] != nil && !c.metaDirty[id] {
					c.metaDirty[id] = true
				}
				c.mu.Unlock()
				failed = true
			}
		}
		if failed {
			select {
			case <-c.stop:
				return
			case <-time.After(groupMetaRetry):
			}
			select {
			case c.metaKick <- struct{}{}:
			default:
			}
		}
	}
}

// groupMetadataValue is g as Kafka's coordinator records it
// (GroupMetadataValue v3), encoded.
func groupMetadataValue(g *group, now time.Time) []byte {
	v := kmsg.NewGroupMetadataValue()
	v.Version = 3
	v.ProtocolType, v.Generation, v.CurrentStateTimestamp = g.protocolType, g.generation, now.UnixMilli()
	if g.protocol != "" {
		proto := g.protocol
		v.Protocol = &proto
	}
	if g.leader != "" {
		leader := g.leader
		v.Leader = &leader
	}
	for _, m := range g.members {
		vm := kmsg.NewGroupMetadataValueMember()
		vm.MemberID, vm.ClientID, vm.ClientHost = m.id, m.clientID, m.clientHost
		if m.instanceID != "" {
			iid := m.instanceID
			vm.InstanceID = &iid
		}
		vm.RebalanceTimeoutMillis, vm.SessionTimeoutMillis = int32(m.rebalanceTimeout.Milliseconds()), int32(m.sessionTimeout.Milliseconds())
		for _, p := range m.protocols {
			if p.Name == g.protocol {
				vm.Subscription = p.Metadata
			}
		}
		vm.Assignment = m.assignment
		v.Members = append(v.Members, vm)
	}
	return v.AppendTo(nil)
}
