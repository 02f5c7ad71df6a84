package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/tier"
)

// adminURLFlag is where `strata tier` (and other admin commands) find a
// gateway's admin API.
var adminURLFlag = &ucli.StringFlag{Name: "admin-url", Value: "http://127.0.0.1:9644", EnvVars: envVars("admin-url"),
	Usage: "a gateway's admin address (its --admin-addr)"}

func tierCommand() *ucli.Command {
	topicFlag := &ucli.StringFlag{Name: "topic", Aliases: []string{"t"}, Required: true, Usage: "topic name"}
	return &ucli.Command{
		Name:  "tier",
		Usage: "tiered storage: upload lag, uploaded segments, restore a topic from the bucket",
		Subcommands: []*ucli.Command{
			{Name: "status", Usage: "per partition: local and remote bytes, upload lag, last upload, errors",
				Flags: []ucli.Flag{adminURLFlag}, Action: tierStatus},
			{Name: "ls", Usage: "list a topic's uploaded segments: offsets, sizes, timestamps",
				Flags: []ucli.Flag{adminURLFlag, topicFlag}, Action: tierLs},
			{Name: "restore", Usage: "recreate a topic in this cluster from the object store alone",
				Flags: []ucli.Flag{adminURLFlag, topicFlag}, Action: tierRestore},
		},
	}
}

// adminCall does one admin API request and decodes its JSON answer into
// out; an answer with an error field becomes the error.
func adminCall(c *ucli.Context, method, path string, query url.Values, out any) error {
	base := strings.TrimSuffix(c.String("admin-url"), "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u := base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	ctx, cancel := context.WithTimeout(c.Context, 3*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return fmt.Errorf("admin url %s: %w", c.String("admin-url"), err)
	}
	if token := c.String("admin-token"); token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client, err := adminHTTPClient(c)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the gateway's admin API at %s: %w", base, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return errors.New(e.Error)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", u, resp.Status)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: bad answer: %w", u, err)
	}
	return nil
}

func tierStatus(c *ucli.Context) error {
	var st gateway.TierStatus
	if err := adminCall(c, http.MethodGet, "/v1/tier/status", nil, &st); err != nil {
		return fmt.Errorf("tier status: %w", err)
	}
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TOPIC\tPARTITION\tNODE\tLOCAL\tREMOTE\tSEGMENTS\tLAG\tLAG-AGE\tLAST-UPLOAD\tOPEN-TXN-AT\tERROR")
	now := time.Now()
	for _, n := range st.Nodes {
		for _, p := range n.Partitions {
			openTxn := "-" // an open transaction holds the last stable offset and retention there
			if p.OpenTxnOffset >= 0 {
				openTxn = fmt.Sprint(p.OpenTxnOffset)
			}
			fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", p.Topic, p.Partition, p.Node,
				humanBytes(p.LocalBytes), humanBytes(p.RemoteBytes), p.RemoteSegments, humanBytes(p.LagBytes),
				(time.Duration(p.LagSeconds * float64(time.Second))).Round(time.Second), ago(now, p.LastUploadMs), openTxn, orDash(p.LastError))
		}
	}
	w.Flush()
	for _, n := range st.Nodes {
		switch {
		case n.Error != "":
			fmt.Fprintf(c.App.Writer, "node %d: %s\n", n.Node, n.Error)
		default:
			fmt.Fprintf(c.App.Writer, "node %d: store %s, read cache %s (hits %d, misses %d)\n", n.Node, n.Store,
				humanBytes(n.Cache.CachedBytes), n.Cache.ChunkHits, n.Cache.ChunkMisses)
		}
	}
	for _, id := range st.Missing {
		fmt.Fprintf(c.App.Writer, "node %d: did not answer\n", id)
	}
	return nil
}

func tierLs(c *ucli.Context) error {
	var ls tier.LsReply
	if err := adminCall(c, http.MethodGet, "/v1/tier/ls", url.Values{"topic": {c.String("topic")}}, &ls); err != nil {
		return fmt.Errorf("tier ls: %w", err)
	}
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PARTITION\tBASE-OFFSET\tLAST-OFFSET\tSIZE\tEPOCH\tMAX-TIMESTAMP\tUPLOADED\tOBJECT")
	for _, p := range ls.Partitions {
		for _, s := range p.Segments {
			fmt.Fprintf(w, "%d\t%d\t%d\t%s\t%d\t%s\t%s\t%s\n", p.Partition, s.BaseOffset, s.LastOffset, humanBytes(s.SizeBytes),
				s.LeaderEpoch, msTime(s.MaxTimestamp), msTime(s.UploadTimeMs), s.ObjectKey)
		}
	}
	w.Flush()
	for _, p := range ls.Partitions {
		var bytes int64
		for _, s := range p.Segments {
			bytes += s.SizeBytes
		}
		fmt.Fprintf(c.App.Writer, "partition %d: %d segments, %s, log start offset %d\n", p.Partition, len(p.Segments), humanBytes(bytes), p.LogStartOffset)
	}
	return nil
}

func tierRestore(c *ucli.Context) error {
	var r tier.RestoreReply
	if err := adminCall(c, http.MethodPost, "/v1/tier/restore", url.Values{"topic": {c.String("topic")}}, &r); err != nil {
		return fmt.Errorf("tier restore %s: %w", c.String("topic"), err)
	}
	if r.Already {
		fmt.Fprintf(c.App.Writer, "Topic %s is already restored (the same topic id): %d partitions, %d segments, %s in the bucket.\n",
			r.Topic, r.Partitions, r.Segments, humanBytes(r.Bytes))
		return nil
	}
	fmt.Fprintf(c.App.Writer, "Restored topic %s: %d partitions, %d segments, %s.\n", r.Topic, r.Partitions, r.Segments, humanBytes(r.Bytes))
	for p, end := range r.EndOffsets {
		fmt.Fprintf(c.App.Writer, "partition %d continues at offset %d\n", p, end)
	}
	return nil
}

// humanBytes writes n in binary units, as operators read sizes.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func msTime(ms int64) string {
	if ms <= 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

func ago(now time.Time, ms int64) string {
	if ms <= 0 {
		return "never"
	}
	return now.Sub(time.UnixMilli(ms)).Round(time.Second).String() + " ago"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
