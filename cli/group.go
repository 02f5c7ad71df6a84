package cli

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	ucli "github.com/urfave/cli/v2"

	"github.com/strata-io/strata/gateway"
)

func groupCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "group",
		Usage: "list, describe, reset and delete consumer groups (like kafka-consumer-groups.sh)",
		Subcommands: []*ucli.Command{
			{Name: "list", Usage: "list groups and their state", Flags: []ucli.Flag{brokersFlag}, Action: groupList},
			{Name: "describe", Usage: "members, committed offsets and lag per partition; for a share group, its start offsets, lag and records in flight",
				ArgsUsage: "GROUP...", Flags: []ucli.Flag{brokersFlag, adminURLFlag}, Action: groupDescribe},
			{
				Name: "reset-offsets", Usage: "move an inactive group's committed offsets (a share group's start offsets)", ArgsUsage: "GROUP",
				Flags: []ucli.Flag{brokersFlag,
					&ucli.StringFlag{Name: "topic", Aliases: []string{"t"}, Usage: "topic whose offsets to reset (required)"},
					&ucli.BoolFlag{Name: "to-earliest", Usage: "to the log start"},
					&ucli.BoolFlag{Name: "to-latest", Usage: "to the log end"},
					&ucli.Int64Flag{Name: "to-offset", Value: -1, Usage: "to this offset"},
					&ucli.TimestampFlag{Name: "to-datetime", Layout: time.RFC3339, Usage: "to the first record at or after this time (RFC 3339)"},
					&ucli.Int64Flag{Name: "shift-by", Usage: "by this many records (negative: back)"},
					&ucli.BoolFlag{Name: "dry-run", Usage: "show the new offsets only (the default)"},
					&ucli.BoolFlag{Name: "execute", Usage: "commit the new offsets"},
					&ucli.BoolFlag{Name: "share", Usage: "the group is a share group (needed for one that does not exist yet, as kafka-share-groups.sh)"},
				},
				Action: groupReset,
			},
			{Name: "delete", Usage: "delete inactive groups and their offsets", ArgsUsage: "GROUP...", Flags: []ucli.Flag{brokersFlag}, Action: groupDelete},
		},
	}
}

func groupList(c *ucli.Context) error {
	adm, done, err := newAdmin(c)
	if err != nil {
		return err
	}
	defer done()
	groups, err := adm.ListGroups(c.Context)
	if err != nil {
		return fmt.Errorf("group list: %w", err)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tTYPE\tSTATE")
	for _, g := range groups.Sorted() {
		typ := g.GroupType // classic, consumer (KIP-848) or share
		if typ == "" {
			typ = "classic"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", g.Group, typ, g.State)
	}
	return tw.Flush()
}

func groupDescribe(c *ucli.Context) error {
	if c.NArg() == 0 {
		return errors.New("group describe: name at least one group")
	}
	adm, done, err := newAdmin(c)
	if err != nil {
		return err
	}
	defer done()
	types, err := groupTypes(c, adm)
	if err != nil {
		return fmt.Errorf("group describe: %w", err)
	}
	var classic []string
	for _, name := range c.Args().Slice() {
		if types[name] == "share" {
			if err := describeShareGroup(c, adm, name); err != nil {
				return err
			}
		} else {
			classic = append(classic, name)
		}
	}
	if len(classic) == 0 {
		return nil
	}
	lags, err := adm.Lag(c.Context, classic...)
	if err != nil {
		return fmt.Errorf("group describe: %w", err)
	}
	w := c.App.Writer
	for _, name := range classic {
		l, ok := lags[name]
		if !ok {
			return fmt.Errorf("group describe %s: no such group", name)
		}
		if err := l.Error(); err != nil {
			return fmt.Errorf("group describe %s: %v", name, err)
		}
		fmt.Fprintf(w, "Group: %s\tState: %s\tMembers: %d\tTotal lag: %d\n", name, l.State, len(l.Members), l.Lag.Total())
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\tTOPIC\tPARTITION\tCOMMITTED\tLOG-END\tLAG\tMEMBER\tCLIENT")
		for _, pl := range l.Lag.Sorted() {
			member, client := "-", "-"
			if pl.Member != nil {
				member, client = pl.Member.MemberID, pl.Member.ClientID
			}
			committed := "-"
			if pl.Commit.At >= 0 {
				committed = fmt.Sprint(pl.Commit.At)
			}
			fmt.Fprintf(tw, "\t%s\t%d\t%s\t%d\t%d\t%s\t%s\n", pl.Topic, pl.Partition, committed, pl.End.Offset, pl.Lag, member, client)
		}
		tw.Flush()
	}
	return nil
}

func groupReset(c *ucli.Context) error {
	if c.NArg() != 1 {
		return errors.New("group reset-offsets: name exactly one group")
	}
	group, topic := c.Args().First(), c.String("topic")
	if topic == "" {
		return errors.New("group reset-offsets: --topic is required")
	}
	modes := 0
	for _, set := range []bool{c.Bool("to-earliest"), c.Bool("to-latest"), c.Int64("to-offset") >= 0, c.Timestamp("to-datetime") != nil, c.IsSet("shift-by")} {
		if set {
			modes++
		}
	}
	if modes != 1 {
		return errors.New("group reset-offsets: give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by")
	}
	if c.Bool("execute") && c.Bool("dry-run") {
		return errors.New("group reset-offsets: --dry-run and --execute exclude each other")
	}
	adm, done, err := newAdmin(c)
	if err != nil {
		return err
	}
	defer done()
	ctx := c.Context
	types, err := groupTypes(c, adm)
	if err != nil {
		return fmt.Errorf("group reset-offsets: %w", err)
	}
	share := types[group] == "share" || c.Bool("share")
	if c.Bool("share") && types[group] != "" && types[group] != "share" {
		return fmt.Errorf("group reset-offsets: %s is a %s group, not a share group", group, types[group])
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("group reset-offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("group reset-offsets: %w", err)
	}
	current := kadm.OffsetResponses{}
	if share {
		// A share group's position is each share-partition's start.
		desc, err := adm.DescribeShareGroupOffsets(ctx, group)
		if err != nil {
			return fmt.Errorf("group reset-offsets: %w", err)
		}
		desc[group].Offsets.Each(func(o kadm.ShareOffset) {
			if o.Err == nil && o.StartOffset >= 0 {
				current.Add(kadm.OffsetResponse{Offset: kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.StartOffset}})
			}
		})
	} else if current, err = adm.FetchOffsets(ctx, group); err != nil {
		return fmt.Errorf("group reset-offsets: %w", err)
	}
	var byTime kadm.ListedOffsets
	if ts := c.Timestamp("to-datetime"); ts != nil {
		if byTime, err = adm.ListOffsetsAfterMilli(ctx, ts.UnixMilli(), topic); err != nil {
			return fmt.Errorf("group reset-offsets: %w", err)
		}
	}
	target := kadm.Offsets{}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCURRENT\tNEW")
	starts.Each(func(s kadm.ListedOffset) {
		e, _ := ends.Lookup(topic, s.Partition)
		cur := int64(-1)
		if o, ok := current.Lookup(topic, s.Partition); ok {
			cur = o.At
		}
		var to int64
		switch {
		case c.Bool("to-earliest"):
			to = s.Offset
		case c.Bool("to-latest"):
			to = e.Offset
		case c.Int64("to-offset") >= 0:
			to = c.Int64("to-offset")
		case byTime != nil:
			o, _ := byTime.Lookup(topic, s.Partition)
			to = o.Offset
			if to < 0 {
				to = e.Offset
			}
		default:
			base := cur
			if base < 0 {
				base = s.Offset
			}
			to = base + c.Int64("shift-by")
		}
		// Kafka clamps into the log's range.
		to = min(max(to, s.Offset), e.Offset)
		target.AddOffset(topic, s.Partition, to, -1)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", topic, s.Partition, cur, to)
	})
	tw.Flush()
	if !c.Bool("execute") {
		fmt.Fprintln(c.App.ErrWriter, "Dry run: nothing committed. Add --execute to commit these offsets.")
		return nil
	}
	if share {
		resp, err := adm.AlterShareGroupOffsets(ctx, group, target)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return fmt.Errorf("group reset-offsets %s: %v (a share group must have no active members)", group, err)
		}
		fmt.Fprintf(c.App.ErrWriter, "Reset the share group %s on %s: records in flight there are forgotten.\n", group, topic)
		return nil
	}
	resp, err := adm.CommitOffsets(ctx, group, target)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("group reset-offsets %s: %v (the group must have no active members)", group, err)
	}
	fmt.Fprintf(c.App.ErrWriter, "Reset offsets of group %s on %s.\n", group, topic)
	return nil
}

func groupDelete(c *ucli.Context) error {
	if c.NArg() == 0 {
		return errors.New("group delete: name at least one group")
	}
	adm, done, err := newAdmin(c)
	if err != nil {
		return err
	}
	defer done()
	resp, err := adm.DeleteGroups(c.Context, c.Args().Slice()...)
	if err != nil {
		return fmt.Errorf("group delete: %w", err)
	}
	for _, name := range c.Args().Slice() {
		if r := resp[name]; r.Err != nil {
			return fmt.Errorf("group delete %s: %v", name, r.Err)
		}
		fmt.Fprintf(c.App.Writer, "Deleted group %s.\n", name)
	}
	return nil
}

// groupTypes lists every group's type: classic, consumer or share.
func groupTypes(c *ucli.Context, adm *kadm.Client) (map[string]string, error) {
	groups, err := adm.ListGroups(c.Context)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, g := range groups {
		out[g.Group] = g.GroupType
	}
	return out, nil
}

// describeShareGroup prints a share group's members and their
// partitions, then each share-partition's start offset (SPSO), lag, and
// the records in flight (from the admin API, when it answers).
func describeShareGroup(c *ucli.Context, adm *kadm.Client, name string) error {
	described, err := adm.DescribeShareGroups(c.Context, name)
	if err != nil {
		return fmt.Errorf("group describe %s: %w", name, err)
	}
	d := described[name]
	if d.Err != nil {
		return fmt.Errorf("group describe %s: %v", name, d.Err)
	}
	offsets, err := adm.DescribeShareGroupOffsets(c.Context, name)
	if err != nil {
		return fmt.Errorf("group describe %s: %w", name, err)
	}
	o := offsets[name]
	if o.Err != nil {
		return fmt.Errorf("group describe %s: %v", name, o.Err)
	}
	var parts []gateway.SharePartition
	inFlight := map[string]gateway.SharePartition{}
	if err := adminCall(c, http.MethodGet, "/v1/share/partitions", url.Values{"group": {name}}, &parts); err == nil {
		for _, p := range parts {
			inFlight[fmt.Sprintf("%s/%d", p.Topic, p.Partition)] = p
		}
	}
	var total int64
	o.Offsets.Each(func(so kadm.ShareOffset) { total += max(so.Lag, 0) })
	w := c.App.Writer
	fmt.Fprintf(w, "Group: %s\tType: share\tState: %s\tMembers: %d\tTotal lag: %d\n", name, d.GroupState, len(d.Members), total)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\tTOPIC\tPARTITION\tSTART-OFFSET\tLAG\tIN-FLIGHT\tMAX-DELIVERIES\tMEMBERS")
	for _, so := range o.Offsets.Sorted() {
		var members []string
		for _, m := range d.Members {
			if _, ok := m.Assignment[so.Topic][so.Partition]; ok {
				members = append(members, m.MemberID)
			}
		}
		flight, deliveries := "-", "-"
		if p, ok := inFlight[fmt.Sprintf("%s/%d", so.Topic, so.Partition)]; ok {
			flight, deliveries = fmt.Sprint(p.InFlight), fmt.Sprint(p.MaxDeliveries)
		}
		lag := "-"
		if so.Lag >= 0 {
			lag = fmt.Sprint(so.Lag)
		}
		fmt.Fprintf(tw, "\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", so.Topic, so.Partition, so.StartOffset, lag, flight, deliveries, strings.Join(members, ","))
	}
	tw.Flush()
	if len(d.Members) > 0 {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\tMEMBER\tCLIENT\tHOST\tPARTITIONS")
		for _, m := range d.Members {
			n := 0
			for _, ps := range m.Assignment {
				n += len(ps)
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s\t%d\n", m.MemberID, m.ClientID, m.ClientHost, n)
		}
		tw.Flush()
	}
	return nil
}
