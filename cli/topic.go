package cli

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	ucli "github.com/urfave/cli/v2"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/internal/rpc"
)

func topicCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "topic",
		Usage: "create, list, describe, alter and delete topics (like kafka-topics.sh)",
		Subcommands: []*ucli.Command{
			{
				Name: "create", Usage: "create topics", ArgsUsage: "TOPIC...",
				Flags: []ucli.Flag{brokersFlag,
					&ucli.IntFlag{Name: "partitions", Aliases: []string{"p"}, Value: 1, EnvVars: envVars("partitions"), Usage: "number of partitions"},
					&ucli.IntFlag{Name: "replication-factor", Aliases: []string{"r"}, Value: 1, EnvVars: envVars("replication-factor"), Usage: "replicas per partition"},
					&ucli.StringSliceFlag{Name: "config", Aliases: []string{"c"}, Usage: "topic config key=value (repeatable)"},
				},
				Action: topicCreate,
			},
			{Name: "list", Usage: "list topics", Flags: []ucli.Flag{brokersFlag}, Action: topicList},
			{Name: "describe", Usage: "show partitions (leader, replicas, ISR, offsets) and configs", ArgsUsage: "TOPIC...",
				Flags: []ucli.Flag{brokersFlag}, Action: topicDescribe},
			{
				Name: "alter", Usage: "add partitions, set or delete configs", ArgsUsage: "TOPIC",
				Flags: []ucli.Flag{brokersFlag,
					&ucli.IntFlag{Name: "partitions", Aliases: []string{"p"}, Usage: "new, larger partition count"},
					&ucli.StringSliceFlag{Name: "config", Aliases: []string{"c"}, Usage: "set config key=value (repeatable)"},
					&ucli.StringSliceFlag{Name: "delete-config", Usage: "return a config key to its default (repeatable)"},
					&ucli.StringSliceFlag{Name: "replicas", Usage: "move a partition: PARTITION:NODE,NODE,... (repeatable; the first node is the preferred leader)"},
					&ucli.IntSliceFlag{Name: "cancel-move", Usage: "cancel the move in progress of a partition (repeatable)"},
				},
				Action: topicAlter,
			},
			{Name: "delete", Usage: "delete topics and their data", ArgsUsage: "TOPIC...", Flags: []ucli.Flag{brokersFlag}, Action: topicDelete},
			{Name: "compaction", Usage: "compacted topics' cleaner state per replica: dirty ratio, cleaned-to offset, bytes reclaimed", ArgsUsage: "[TOPIC...]",
				Flags: []ucli.Flag{adminURLFlag}, Action: topicCompaction},
		},
	}
}

func topicCreate(c *ucli.Context) error {
	if c.NArg() == 0 {
		return errors.New("topic create: name at least one topic")
	}
	configs, err := parseKV(c.StringSlice("config"))
	if err != nil {
		return fmt.Errorf("topic create: %w", err)
	}
	adm, done, err := newAdmin(c)
	if err != nil {
		return err
	}
	defer done()
	res, err := adm.CreateTopics(c.Context, int32(c.Int("partitions")), int16(c.Int("replication-factor")), configs, c.Args().Slice()...)
	if err != nil {
		return fmt.Errorf("topic create: %w", err)
	}
	for _, name := range c.Args().Slice() {
		r := res[name]
		if r.Err != nil {
			return fmt.Errorf("topic create %s: %s", name, kafkaError(r.Err, r.ErrMessage))
		}
		fmt.Fprintf(c.App.Writer, "Created topic %s.\n", name)
	}
	return nil
}

// topicIDString prints a topic id as Kafka's tools do: URL-safe base64
// without padding.
func topicIDString(id [16]byte) string { return base64.RawURLEncoding.EncodeToString(id[:]) }

// kafkaError says what a broker answered: its own message, when it sent
// one, with the Kafka error's name; else the error's standard text.
func kafkaError(err error, msg string) string {
	var ke *kerr.Error
	if msg == "" || !errors.As(err, &ke) {
		if msg != "" {
			return fmt.Sprintf("%v (%s)", err, msg)
		}
		return err.Error()
	}
	return msg + " (" + ke.Message + ")"
}

func topicList(c *ucli.Context) error {
	adm, done, err := newAdmin(c)
	if err != nil {
		return err
	}
	defer done()
	td, err := adm.ListTopics(c.Context)
	if err != nil {
		return fmt.Errorf("topic list: %w", err)
	}
	for _, name := range td.Names() {
		fmt.Fprintln(c.App.Writer, name)
	}
	return nil
}

func topicDescribe(c *ucli.Context) error {
	if c.NArg() == 0 {
		return errors.New("topic describe: name at least one topic")
	}
	adm, done, err := newAdmin(c)
	if err != nil {
		return err
	}
	defer done()
	names := c.Args().Slice()
	td, err := adm.ListTopics(c.Context, names...)
	if err != nil {
		return fmt.Errorf("topic describe: %w", err)
	}
	starts, err := adm.ListStartOffsets(c.Context, names...)
	if err != nil {
		return fmt.Errorf("topic describe: %w", err)
	}
	ends, err := adm.ListEndOffsets(c.Context, names...)
	if err != nil {
		return fmt.Errorf("topic describe: %w", err)
	}
	cfgs, _ := adm.DescribeTopicConfigs(c.Context, names...)
	moving := kadm.ListPartitionReassignmentsResponses{}
	if len(td) > 0 {
		moving, _ = adm.ListPartitionReassignments(c.Context, td.TopicsSet()) // a broker without the API shows no moves
	}
	w := c.App.Writer
	for _, name := range names {
		t := td[name]
		if t.Err != nil {
			return fmt.Errorf("topic describe %s: %v", name, t.Err)
		}
		fmt.Fprintf(w, "Topic: %s\tTopicId: %s\tPartitionCount: %d\tReplicationFactor: %d\n", name, topicIDString(t.ID), len(t.Partitions), t.Partitions.NumReplicas())
		if rc, err := cfgs.On(name, nil); err == nil && rc.Err == nil {
			var set []string
			for _, cfg := range rc.Configs {
				if cfg.Source == 1 {
					set = append(set, cfg.Key+"="+cfg.MaybeValue())
				}
			}
			fmt.Fprintf(w, "\tConfigs: %s\n", joinOr(set, "(defaults)"))
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\tPARTITION\tLEADER\tREPLICAS\tISR\tLOG-START\tLOG-END\tERROR")
		for _, p := range t.Partitions.Sorted() {
			s, _ := starts.Lookup(name, p.Partition)
			e, _ := ends.Lookup(name, p.Partition)
			errStr := "-"
			if p.Err != nil {
				errStr = p.Err.Error()
			}
			fmt.Fprintf(tw, "\t%d\t%d\t%v\t%v\t%d\t%d\t%s\n", p.Partition, p.Leader, p.Replicas, p.ISR, s.Offset, e.Offset, errStr)
		}
		tw.Flush()
		for _, m := range moving.Sorted() {
			if m.Topic == name {
				fmt.Fprintf(w, "\tMoving partition %d: adding %v, removing %v\n", m.Partition, m.AddingReplicas, m.RemovingReplicas)
			}
		}
	}
	return nil
}

func joinOr(s []string, empty string) string {
	if len(s) == 0 {
		return empty
	}
	slices.Sort(s)
	out := s[0]
	for _, x := range s[1:] {
		out += "," + x
	}
	return out
}

func topicAlter(c *ucli.Context) error {
	if c.NArg() != 1 {
		return errors.New("topic alter: name exactly one topic")
	}
	name := c.Args().First()
	set, err := parseKV(c.StringSlice("config"))
	if err != nil {
		return fmt.Errorf("topic alter: %w", err)
	}
	moves, err := parseMoves(name, c.StringSlice("replicas"), c.IntSlice("cancel-move"))
	if err != nil {
		return fmt.Errorf("topic alter: %w", err)
	}
	if c.Int("partitions") == 0 && len(set) == 0 && len(c.StringSlice("delete-config")) == 0 && len(moves) == 0 {
		return errors.New("topic alter: nothing to change; give --partitions, --config, --delete-config, --replicas or --cancel-move")
	}
	adm, done, err := newAdmin(c)
	if err != nil {
		return err
	}
	defer done()
	if n := c.Int("partitions"); n > 0 {
		r, err := adm.UpdatePartitions(c.Context, n, name)
		if err != nil {
			return fmt.Errorf("topic alter: %w", err)
		}
		if r[name].Err != nil {
			return fmt.Errorf("topic alter %s: %s", name, kafkaError(r[name].Err, r[name].ErrMessage))
		}
		fmt.Fprintf(c.App.Writer, "Topic %s now has %d partitions.\n", name, n)
	}
	if len(moves) > 0 {
		rs, err := adm.AlterPartitionAssignments(c.Context, moves)
		if err != nil {
			return fmt.Errorf("topic alter: %w", err)
		}
		for p, replicas := range moves[name] {
			r := rs[name][p]
			if r.Err != nil {
				return fmt.Errorf("topic alter %s partition %d: %s", name, p, kafkaError(r.Err, r.ErrMessage))
			}
			if replicas == nil {
				fmt.Fprintf(c.App.Writer, "Move of %s-%d cancelled.\n", name, p)
			} else {
				fmt.Fprintf(c.App.Writer, "Moving %s-%d to nodes %v; it completes once they caught up (strata topic describe shows progress).\n", name, p, replicas)
			}
		}
	}
	var alters []kadm.AlterConfig
	for k, v := range set {
		alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: v})
	}
	for _, k := range c.StringSlice("delete-config") {
		alters = append(alters, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
	}
	if len(alters) > 0 {
		r, err := adm.AlterTopicConfigs(c.Context, alters, name)
		if err != nil {
			return fmt.Errorf("topic alter: %w", err)
		}
		for _, x := range r {
			if x.Err != nil {
				return fmt.Errorf("topic alter %s: %s", name, kafkaError(x.Err, x.ErrMessage))
			}
		}
		fmt.Fprintf(c.App.Writer, "Updated configs of topic %s.\n", name)
	}
	return nil
}

func topicDelete(c *ucli.Context) error {
	if c.NArg() == 0 {
		return errors.New("topic delete: name at least one topic")
	}
	adm, done, err := newAdmin(c)
	if err != nil {
		return err
	}
	defer done()
	r, err := adm.DeleteTopics(c.Context, c.Args().Slice()...)
	if err != nil {
		return fmt.Errorf("topic delete: %w", err)
	}
	for _, name := range c.Args().Slice() {
		if r[name].Err != nil {
			return fmt.Errorf("topic delete %s: %v", name, r[name].Err)
		}
		fmt.Fprintf(c.App.Writer, "Deleted topic %s.\n", name)
	}
	return nil
}

// parseMoves reads --replicas PARTITION:NODE,NODE,... and --cancel-move
// PARTITION into a reassignment request.
func parseMoves(topic string, specs []string, cancels []int) (kadm.AlterPartitionAssignmentsReq, error) {
	var req kadm.AlterPartitionAssignmentsReq
	for _, spec := range specs {
		ps, nodes, ok := strings.Cut(spec, ":")
		p, err := strconv.ParseInt(ps, 10, 32)
		if !ok || err != nil || nodes == "" {
			return nil, fmt.Errorf("--replicas %q: want PARTITION:NODE,NODE,...", spec)
		}
		var replicas []int32
		for _, n := range strings.Split(nodes, ",") {
			id, err := strconv.ParseInt(strings.TrimSpace(n), 10, 32)
			if err != nil {
				return nil, fmt.Errorf("--replicas %q: node %q is not a number", spec, n)
			}
			replicas = append(replicas, int32(id))
		}
		req.Assign(topic, int32(p), replicas)
	}
	for _, p := range cancels {
		req.CancelAssign(topic, int32(p))
	}
	return req, nil
}

// topicCompaction shows, for each replica of a compacted partition, what
// the cleaner has done (all compacted topics, or those named).
func topicCompaction(c *ucli.Context) error {
	var st gateway.CompactionStatus
	if err := adminCall(c, http.MethodGet, "/v1/compaction/status", nil, &st); err != nil {
		return fmt.Errorf("topic compaction: %w", err)
	}
	only := map[string]bool{}
	for _, t := range c.Args().Slice() {
		only[t] = true
	}
	var rows []rpc.PartitionCompaction
	var nodes []int32
	for _, n := range st.Nodes {
		for _, p := range n.Partitions {
			if len(only) == 0 || only[p.Topic] {
				rows = append(rows, p)
				nodes = append(nodes, n.Node)
			}
		}
	}
	idx := make([]int, len(rows))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		ra, rb := rows[a], rows[b]
		return cmp.Or(cmp.Compare(ra.Topic, rb.Topic), cmp.Compare(ra.Partition, rb.Partition), cmp.Compare(nodes[a], nodes[b]))
	})
	if len(rows) == 0 {
		fmt.Fprintln(c.App.Writer, "no compacted partitions (cleanup.policy=compact)")
	} else {
		w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "TOPIC\tPARTITION\tNODE\tROLE\tDIRTY-RATIO\tCLEANED-TO\tRECLAIMED\tCLEANS\tERROR")
		for _, i := range idx {
			p := rows[i]
			role := "follower"
			if p.Leader {
				role = "leader"
			}
			fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%.2f\t%d\t%s\t%d\t%s\n", p.Topic, p.Partition, nodes[i], role, p.DirtyRatio, p.CleanedTo,
				humanBytes(p.BytesReclaimed), p.Cleans, orDash(p.LastError))
			if r := p.Remote; r != nil && p.Leader {
				// The uploaded segments, which the leader compacts.
				fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%.2f\t%d\t%s\t%d\t%s\n", p.Topic, p.Partition, nodes[i], "bucket", r.DirtyRatio, r.CleanedTo,
					humanBytes(r.BytesReclaimed), r.Cleans, orDash(r.LastError))
			}
		}
		w.Flush()
	}
	for _, id := range st.Missing {
		fmt.Fprintf(c.App.Writer, "node %d: did not answer\n", id)
	}
	return nil
}
