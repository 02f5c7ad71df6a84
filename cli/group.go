package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	ucli "github.com/urfave/cli/v2"
)

func groupCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "group",
		Usage: "list, describe, reset and delete consumer groups (like kafka-consumer-groups.sh)",
		Subcommands: []*ucli.Command{
			{Name: "list", Usage: "list groups and their state", Flags: []ucli.Flag{brokersFlag}, Action: groupList},
			{Name: "describe", Usage: "members, committed offsets and lag per partition", ArgsUsage: "GROUP...", Flags: []ucli.Flag{brokersFlag}, Action: groupDescribe},
			{
				Name: "reset-offsets", Usage: "move an inactive group's committed offsets", ArgsUsage: "GROUP",
				Flags: []ucli.Flag{brokersFlag,
					&ucli.StringFlag{Name: "topic", Aliases: []string{"t"}, Usage: "topic whose offsets to reset (required)"},
					&ucli.BoolFlag{Name: "to-earliest", Usage: "to the log start"},
					&ucli.BoolFlag{Name: "to-latest", Usage: "to the log end"},
					&ucli.Int64Flag{Name: "to-offset", Value: -1, Usage: "to this offset"},
					&ucli.TimestampFlag{Name: "to-datetime", Layout: time.RFC3339, Usage: "to the first record at or after this time (RFC 3339)"},
					&ucli.Int64Flag{Name: "shift-by", Usage: "by this many records (negative: back)"},
					&ucli.BoolFlag{Name: "dry-run", Usage: "show the new offsets only (the default)"},
					&ucli.BoolFlag{Name: "execute", Usage: "commit the new offsets"},
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
	lags, err := adm.Lag(c.Context, c.Args().Slice()...)
	if err != nil {
		return fmt.Errorf("group describe: %w", err)
	}
	w := c.App.Writer
	for _, name := range c.Args().Slice() {
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
	current, err := adm.FetchOffsets(ctx, group)
	if err != nil {
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
