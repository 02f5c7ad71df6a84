package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	ucli "github.com/urfave/cli/v2"
)

func topCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "top",
		Usage: "a live view of produce rate per topic and lag per consumer group, refreshed every second",
		Description: "Records per second come from the growth of each topic's end offsets between two looks, commits\n" +
			"per second from the growth of each group's committed offsets. On a terminal the view redraws in\n" +
			"place; otherwise each look is printed after the last. Ctrl-C quits.",
		Flags: []ucli.Flag{brokersFlag,
			&ucli.DurationFlag{Name: "interval", Aliases: []string{"i"}, Value: time.Second, Usage: "time between looks"},
			&ucli.IntFlag{Name: "iterations", Aliases: []string{"n"}, Usage: "stop after this many looks (default: until Ctrl-C)"},
			&ucli.IntFlag{Name: "limit", Value: 30, Usage: "rows per table (the busiest first)"},
		},
		Action: top,
	}
}

// topSample is one look at the cluster.
type topSample struct {
	at     time.Time
	topics map[string]topicSample
	groups map[string]groupSample
}

type topicSample struct {
	partitions int
	end        int64 // sum of end offsets
	records    int64 // end less start, summed
}

type groupSample struct {
	state     string
	members   int
	lag       int64
	committed int64 // sum of committed offsets
	ok        bool
}

func top(c *ucli.Context) error {
	if c.Duration("interval") < 100*time.Millisecond {
		return fmt.Errorf("top: --interval must be at least 100ms")
	}
	adm, done, err := newAdmin(c)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := signalContext(c.Context)
	defer cancel()
	w := c.App.Writer
	tty := isTerminal(w)
	var prev *topSample
	for i := 0; c.Int("iterations") == 0 || i < c.Int("iterations"); i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(c.Duration("interval")):
			}
		}
		lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
		s, err := lookTop(lctx, adm)
		lcancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("top: %w", err)
		}
		var b strings.Builder
		if tty {
			b.WriteString("\x1b[H\x1b[2J") // home, clear
		} else if i > 0 {
			b.WriteString("\n")
		}
		renderTop(&b, c.String("brokers"), prev, s, c.Int("limit"))
		io.WriteString(w, b.String())
		prev = s
	}
	return nil
}

// lookTop reads every topic's offsets and every group's lag.
func lookTop(ctx context.Context, adm *kadm.Client) (*topSample, error) {
	s := &topSample{at: time.Now(), topics: map[string]topicSample{}, groups: map[string]groupSample{}}
	td, err := adm.ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	names := td.Names()
	if len(names) > 0 {
		starts, err := adm.ListStartOffsets(ctx, names...)
		if err != nil {
			return nil, err
		}
		ends, err := adm.ListEndOffsets(ctx, names...)
		if err != nil {
			return nil, err
		}
		for _, t := range td.Sorted() {
			ts := topicSample{partitions: len(t.Partitions)}
			for _, p := range t.Partitions {
				e, ok := ends.Lookup(t.Topic, p.Partition)
				if !ok || e.Err != nil {
					continue
				}
				ts.end += e.Offset
				if st, ok := starts.Lookup(t.Topic, p.Partition); ok && st.Err == nil {
					ts.records += e.Offset - st.Offset
				}
			}
			s.topics[t.Topic] = ts
		}
	}
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	if groups := listed.Groups(); len(groups) > 0 {
		lags, err := adm.Lag(ctx, groups...)
		if err != nil {
			return nil, err
		}
		for name, l := range lags {
			gs := groupSample{state: l.State, members: len(l.Members), ok: l.Error() == nil}
			if gs.ok {
				gs.lag = l.Lag.Total()
				for _, pl := range l.Lag.Sorted() {
					if pl.Commit.At > 0 {
						gs.committed += pl.Commit.At
					}
				}
			}
			s.groups[name] = gs
		}
	}
	return s, nil
}

// renderTop writes one frame: topics by produce rate, groups by lag.
func renderTop(w io.Writer, brokers string, prev, s *topSample, limit int) {
	dt := 0.0
	if prev != nil {
		dt = s.at.Sub(prev.at).Seconds()
	}
	// rate is the growth per second since the last look (ok false: no
	// last look to compare with).
	rate := func(now, before int64, had bool) (r float64, ok bool) {
		if !had || dt <= 0 {
			return 0, false
		}
		return float64(max(0, now-before)) / dt, true
	}
	format := func(r float64, ok bool) string {
		if !ok {
			return "-"
		}
		return fmt.Sprintf("%.1f", r)
	}
	fmt.Fprintf(w, "strata top  %s  %s  (Ctrl-C quits)\n\n", brokers, s.at.Format("15:04:05"))

	type row struct {
		name string
		r    float64
		line string
	}
	var rows []row
	for name, t := range s.topics {
		var before topicSample
		had := false
		if prev != nil {
			before, had = prev.topics[name]
		}
		r, ok := rate(t.end, before.end, had)
		rows = append(rows, row{name, r, fmt.Sprintf("%s\t%d\t%d\t%s", name, t.partitions, t.records, format(r, ok))})
	}
	table := func(header string, rows []row, empty string) {
		slices.SortFunc(rows, func(a, b row) int {
			if a.r != b.r {
				if a.r > b.r {
					return -1
				}
				return 1
			}
			return strings.Compare(a.name, b.name)
		})
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, header)
		for i, r := range rows {
			if i == limit {
				fmt.Fprintf(tw, "… %d more\n", len(rows)-limit)
				break
			}
			fmt.Fprintln(tw, r.line)
		}
		if len(rows) == 0 {
			fmt.Fprintln(tw, empty)
		}
		tw.Flush()
	}
	table("TOPIC\tPARTITIONS\tRECORDS\tIN/S", rows, "(no topics)")
	fmt.Fprintln(w)

	rows = rows[:0]
	for name, g := range s.groups {
		lag, committed := "?", "-"
		if g.ok {
			lag = fmt.Sprint(g.lag)
			var before groupSample
			had := false
			if prev != nil {
				before, had = prev.groups[name]
				had = had && before.ok
			}
			committed = format(rate(g.committed, before.committed, had))
		}
		rows = append(rows, row{name, float64(g.lag), fmt.Sprintf("%s\t%s\t%d\t%s\t%s", name, g.state, g.members, lag, committed)})
	}
	table("GROUP\tSTATE\tMEMBERS\tLAG\tCOMMITTED/S", rows, "(no consumer groups)")
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
