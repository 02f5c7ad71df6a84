package meta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/strata-io/strata/internal/rpc"
)

// Serving on NATS: proposals and reads from other processes, forwarded
// to the controller when this member does not lead; metadata events; and
// the one table mapping meta's errors to wire codes and back.

func (m *Member) notLeader() error {
	if id, _, ok := m.server.Leader(); ok && id != m.cfg.NodeID {
		return fmt.Errorf("%w: leader is node %d", ErrNotLeader, id)
	}
	return fmt.Errorf("%w: no leader elected", ErrNotLeader)
}

// forward sends a request to the leader's own subject when this member
// does not lead, and relays the answer. It reports false when it did not
// forward (this member leads, or was forwarded to already).
func (m *Member) forward(msg *nats.Msg, subj string) bool {
	if m.server.IsLeader() || msg.Header.Get("Strata-Forwarded") != "" {
		return false
	}
	id, _, ok := m.server.Leader()
	if !ok {
		m.reply(msg, applyReply{Error: "no controller elected", Code: errCode(ErrNotLeader)})
		return true
	}
	if !rpc.Fits(m.nc, len(msg.Data)) {
		// Sent in chunks to a controller that has since lost the lead:
		// the client finds the new one and sends it again.
		m.reply(msg, applyReply{Error: fmt.Sprintf("leader is node %d", id), Code: errCode(ErrNotLeader)})
		return true
	}
	fwd := nats.NewMsg(subject(m.cfg.Cluster, subj+"."+strconv.Itoa(int(id))))
	fwd.Data = msg.Data
	fwd.Header.Set("Strata-Forwarded", strconv.Itoa(int(m.cfg.NodeID)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	caller, err := callerFor(m.nc)
	var resp *nats.Msg
	if err == nil {
		resp, err = caller.Request(ctx, fwd)
	}
	if err != nil {
		m.reply(msg, applyReply{Error: err.Error(), Code: errCode(ErrNotLeader)})
		return true
	}
	m.respond(msg, resp.Data)
	return true
}

func (m *Member) reply(msg *nats.Msg, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		m.logger.Error("encode reply", "error", err)
		return
	}
	m.respond(msg, b)
}

// respond answers msg with b, in chunks when b is over the max payload.
func (m *Member) respond(msg *nats.Msg, b []byte) {
	r := nats.NewMsg(msg.Reply)
	r.Data = b
	if err := rpc.Respond(m.nc, msg, r); err != nil {
		m.logger.Warn("meta reply failed", "subject", msg.Subject, "bytes", len(b), "error", err)
	}
}

// applyReply is the answer on meta.apply.
type applyReply struct {
	Error     string       `json:"error,omitempty"`
	Code      string       `json:"code,omitempty"`
	Partition *Partition   `json:"partition,omitempty"`
	Value     int64        `json:"value,omitempty"`
	Txn       *Transaction `json:"txn,omitempty"`
}

func (m *Member) onApply(msg *nats.Msg) {
	if m.forward(msg, subjApply) {
		return
	}
	cmd, err := DecodeCommand(msg.Data)
	if err != nil {
		m.reply(msg, applyReply{Error: err.Error(), Code: errCode(err)})
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := m.proposeHere(ctx, cmd)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		r := applyReply{Error: err.Error(), Code: errCode(err)}
		if res != nil {
			r.Txn = res.Txn
		}
		m.reply(msg, r)
		return
	}
	r := applyReply{Value: res.Value, Txn: res.Txn}
	if res.Partition.Topic != "" {
		r.Partition = &res.Partition
	}
	m.reply(msg, r)
}

// ReadRequest asks meta.read for part of the state.
type ReadRequest struct {
	// Kind is one of "group_configs" and "share_states" (Group's),
	// "consumer_offsets" (LogFrom), "topics" (topics and their partitions, and the
	// nodes; Topic narrows to one topic and leaves out the nodes), "nodes", "offsets" (Group's committed offsets), "tier"
	// (Topic and Partition's manifest) and "cluster" (nodes, which of
	// them the controller hears, the controller, every partition).
	Kind      string `json:"kind"`
	Topic     string `json:"topic,omitempty"`
	Partition int32  `json:"partition,omitempty"`
	Group     string `json:"group,omitempty"`
	// LogFrom asks "consumer_offsets": the __consumer_offsets
	// partitions to read, each from its offset (offsetslog.go).
	LogFrom map[int32]int64 `json:"log_from,omitempty"`
}

// offsetsLogLimit bounds the commits a "consumer_offsets" read returns
// per partition.
const offsetsLogLimit = 2000

// ReadResponse is the answer: the state at Version.
type ReadResponse struct {
	Version    uint64      `json:"version"`
	Topics     []Topic     `json:"topics,omitempty"`
	Partitions []Partition `json:"partitions,omitempty"`
	Nodes      []Node      `json:"nodes,omitempty"`
	Offsets    []Offset    `json:"offsets,omitempty"`
	// LogEnds answers "consumer_offsets": each partition's next offset
	// (its Offsets come with their LogOffset, by partition and offset).
	LogEnds map[int32]int64 `json:"log_ends,omitempty"`
	Tier    []TierSegment   `json:"tier,omitempty"`
	// Reassignments answers "reassignments": the moves in progress.
	Reassignments []Reassignment `json:"reassignments,omitempty"`
	// Credentials answers "credentials": every SCRAM credential.
	Credentials []ScramCredential `json:"credentials,omitempty"`
	// ACLs answers "acls": every ACL.
	ACLs []ACL `json:"acls,omitempty"`
	// Transactions answers "transactions": every transactional id.
	Transactions []Transaction `json:"transactions,omitempty"`
	// GroupConfigs answers "group_configs": the configs Group sets.
	GroupConfigs map[string]string `json:"group_configs,omitempty"`
	// ShareStates answers "share_states": Group's share-partitions.
	ShareStates []ShareState `json:"share_states,omitempty"`
	// Features comes with "topics" and "cluster": the finalized
	// features.
	Features *Features `json:"features,omitempty"`
	// Controller is the id of the controller that answered; Live
	// answers "cluster": the nodes it heard from within the session
	// timeout.
	Controller int32   `json:"controller,omitempty"`
	Live       []int32 `json:"live,omitempty"`
	Error      string  `json:"error,omitempty"`
	Code       string  `json:"code,omitempty"`
}

func (m *Member) onRead(msg *nats.Msg) {
	if m.forward(msg, subjRead) {
		return
	}
	var req ReadRequest
	if err := json.Unmarshal(msg.Data, &req); err != nil {
		m.reply(msg, ReadResponse{Error: err.Error(), Code: errCode(ErrInvalidRequest)})
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := m.ConsistentView(ctx)
	if err != nil {
		m.reply(msg, ReadResponse{Error: err.Error(), Code: errCode(err)})
		return
	}
	defer v.Close()
	resp, err := answerRead(v, req)
	if err != nil {
		m.reply(msg, ReadResponse{Error: err.Error(), Code: errCode(err)})
		return
	}
	resp.Controller = m.cfg.NodeID // reads are answered by the leader
	if req.Kind == "cluster" {
		for _, n := range m.LiveNodes() {
			resp.Live = append(resp.Live, n.ID)
		}
	}
	m.reply(msg, resp)
}

// answerRead reads what req asks for from a view.
func answerRead(v *View, req ReadRequest) (ReadResponse, error) {
	resp := ReadResponse{Version: v.Version()}
	var err error
	switch req.Kind {
	case "topics":
		var f Features
		if f, err = v.Features(); err != nil {
			return resp, err
		}
		resp.Features = &f
		if req.Topic != "" {
			t, ok, e := v.Topic(req.Topic)
			if e != nil {
				return resp, e
			}
			if ok {
				resp.Topics = []Topic{t}
				resp.Partitions, err = v.Partitions(req.Topic)
			}
		} else if resp.Topics, err = v.Topics(); err == nil {
			if resp.Partitions, err = v.AllPartitions(); err == nil {
				resp.Nodes, err = v.Nodes()
			}
		}
	case "nodes":
		resp.Nodes, err = v.Nodes()
	case "reassignments":
		resp.Reassignments, err = v.Reassignments()
	case "cluster":
		if resp.Nodes, err = v.Nodes(); err == nil {
			resp.Partitions, err = v.AllPartitions()
		}
		if err == nil {
			var f Features
			f, err = v.Features()
			resp.Features = &f
		}
	case "offsets":
		resp.Offsets, err = v.GroupOffsets(req.Group)
	case "consumer_offsets":
		var byPart map[int32][]Offset
		if byPart, resp.LogEnds, err = v.OffsetsLog(req.LogFrom, offsetsLogLimit); err == nil {
			for _, p := range slices.Sorted(maps.Keys(byPart)) {
				resp.Offsets = append(resp.Offsets, byPart[p]...)
			}
		}
	case "tier":
		resp.Tier, err = v.TierSegments(req.Topic, req.Partition)
	case "credentials":
		resp.Credentials, err = v.ScramCredentials()
	case "acls":
		resp.ACLs, err = v.ACLs()
	case "transactions":
		resp.Transactions, err = v.Transactions()
	case "group_configs":
		resp.GroupConfigs, err = v.GroupConfigs(req.Group)
	case "share_states":
		resp.ShareStates, err = v.ShareStates(req.Group)
	default:
		err = fmt.Errorf("%w: read kind %q", ErrInvalidRequest, req.Kind)
	}
	return resp, err
}

// Event is published on strata.<cluster>.meta.events after the state
// changes: the new version and what changed. Reset means the whole state
// was replaced (a snapshot restore): refetch everything. Consumers that
// see a version gap refetch too.
type Event struct {
	Version uint64 `json:"version"`
	// Controller is the member that published it: the leader.
	Controller int32    `json:"controller,omitempty"`
	Reset      bool     `json:"reset,omitempty"`
	Changes    []Change `json:"changes,omitempty"`
}

// Change names one changed record.
type Change struct {
	Kind      string `json:"kind"` // node, topic, partition, offsets, tier, credentials, acls, features
	ID        int32  `json:"id,omitempty"`
	Topic     string `json:"topic,omitempty"`
	Partition int32  `json:"partition,omitempty"`
	Group     string `json:"group,omitempty"`
}

// publishEvents runs on the FSM goroutine after each batch; only the
// leader publishes, so each change is announced once.
func (m *Member) publishEvents(version uint64, cmds []Command) {
	if m.server == nil || !m.server.IsLeader() {
		return
	}
	ev := Event{Version: version, Controller: m.cfg.NodeID, Reset: cmds == nil}
	for _, c := range cmds {
		switch c := c.(type) {
		case *RegisterNode:
			ev.Changes = append(ev.Changes, Change{Kind: "node", ID: c.Node.ID})
		case *RemoveNode:
			ev.Changes = append(ev.Changes, Change{Kind: "node", ID: c.ID})
		case *CreateTopic:
			ev.Changes = append(ev.Changes, Change{Kind: "topic", Topic: c.Topic.Name})
		case *DeleteTopic:
			ev.Changes = append(ev.Changes, Change{Kind: "topic", Topic: c.Name})
		case *CreatePartitions:
			ev.Changes = append(ev.Changes, Change{Kind: "topic", Topic: c.Topic})
		case *AlterConfigs:
			ev.Changes = append(ev.Changes, Change{Kind: "topic", Topic: c.Topic})
		case *ChangeLeader:
			ev.Changes = append(ev.Changes, Change{Kind: "partition", Topic: c.Topic, Partition: c.Partition})
		case *AlterISR:
			ev.Changes = append(ev.Changes, Change{Kind: "partition", Topic: c.Topic, Partition: c.Partition})
		case *CommitOffsets, *DeleteOffsets:
			// Offsets are read on demand; announcing each commit would
			// only add traffic.
		case *AddTierSegment:
			ev.Changes = append(ev.Changes, Change{Kind: "tier", Topic: c.Segment.Topic, Partition: c.Segment.Partition})
		case *DeleteTierSegments:
			ev.Changes = append(ev.Changes, Change{Kind: "tier", Topic: c.Topic, Partition: c.Partition})
		case *ReplaceTierSegments:
			ev.Changes = append(ev.Changes, Change{Kind: "tier", Topic: c.New.Topic, Partition: c.New.Partition})
		case *AlterReassignment:
			ev.Changes = append(ev.Changes, Change{Kind: "partition", Topic: c.Topic, Partition: c.Partition})
		case *CompleteReassignment:
			ev.Changes = append(ev.Changes, Change{Kind: "partition", Topic: c.Topic, Partition: c.Partition})
		case *AlterScramCredentials:
			ev.Changes = append(ev.Changes, Change{Kind: "credentials"})
		case *CreateAcls, *DeleteAcls:
			ev.Changes = append(ev.Changes, Change{Kind: "acls"})
		case *SetFeatures:
			ev.Changes = append(ev.Changes, Change{Kind: "features"})
		case *AlterGroupConfigs:
			ev.Changes = append(ev.Changes, Change{Kind: "group_configs", Group: c.Group})
		}
	}
	if !ev.Reset && len(ev.Changes) == 0 {
		return
	}
	if b, err := json.Marshal(ev); err == nil {
		m.nc.Publish(subject(m.cfg.Cluster, subjEvents), b)
	}
}

// Error codes carried over NATS, so a client gets the same sentinel back.
var errCodes = []struct {
	code string
	err  error
}{
	{"topic_exists", ErrTopicExists},
	{"unknown_topic", ErrUnknownTopic},
	{"invalid_config", ErrInvalidConfig},
	{"invalid_request", ErrInvalidRequest},
	{"stale_epoch", ErrStaleEpoch},
	{"unknown_command", ErrUnknownCommand},
	{"not_enough_nodes", ErrNotEnoughNodes},
	{"not_leader", ErrNotLeader},
	{"invalid_replicas", ErrInvalidReplicas},
	{"no_reassignment", ErrNoReassignment},
	{"producer_fenced", ErrProducerFenced},
	{"invalid_producer_id_mapping", ErrInvalidProducerIDMapping},
	{"concurrent_transactions", ErrConcurrentTransactions},
	{"invalid_txn_state", ErrInvalidTxnState},
	{"unknown_transactional_id", ErrUnknownTransactionalID},
}

func errCode(err error) string {
	for _, c := range errCodes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return ""
}

// codeErr turns a code and message from the wire back into an error that
// wraps the sentinel.
func codeErr(code, msg string) error {
	for _, c := range errCodes {
		if c.code == code {
			return fmt.Errorf("%w (%s)", c.err, msg)
		}
	}
	return errors.New(msg)
}
