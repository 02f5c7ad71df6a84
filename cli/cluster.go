package cli

import (
	"fmt"
	"net/http"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/meta"
)

func clusterCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "cluster",
		Usage: "the cluster as a whole: nodes, controller, gateways, partitions in trouble, features",
		Subcommands: []*ucli.Command{
			{Name: "status", Usage: "nodes (live or not), the controller, gateways, under-replicated and offline partitions, tier upload lag",
				Flags: []ucli.Flag{adminURLFlag}, Action: clusterStatus},
			featuresCommand(),
		},
	}
}

func clusterStatus(c *ucli.Context) error {
	var st gateway.ClusterStatus
	if err := adminCall(c, http.MethodGet, "/v1/cluster/status", nil, &st); err != nil {
		return fmt.Errorf("cluster status: %w", err)
	}
	out := c.App.Writer
	fmt.Fprintf(out, "Controller: node %d\n\n", st.Controller)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tSTATUS\tRAFT-ADDR\tRACK\tLEADS\tREPLICAS")
	for _, n := range st.Nodes {
		status := "live"
		if !n.Live {
			status = "DOWN"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%d\n", n.ID, status, n.RaftAddr, orDash(n.Rack), n.Leads, n.Replicas)
	}
	w.Flush()
	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "GATEWAY\tADDR")
	for _, g := range st.Gateways {
		fmt.Fprintf(w, "%d\t%s\n", g.ID, g.Addr)
	}
	w.Flush()
	fmt.Fprintf(out, "\nPartitions: %d, under-replicated: %d, offline: %d\n", st.Partitions, len(st.UnderReplicated), len(st.Offline))
	list := func(title string, ps []meta.Partition) {
		if len(ps) == 0 {
			return
		}
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintf(w, "%s\tPARTITION\tLEADER\tREPLICAS\tISR\n", title)
		for _, p := range ps {
			fmt.Fprintf(w, "%s\t%d\t%d\t%v\t%v\n", p.Topic, p.Partition, p.Leader, p.Replicas, p.ISR)
		}
		w.Flush()
	}
	list("OFFLINE", st.Offline)
	list("UNDER-REPLICATED", st.UnderReplicated)
	fmt.Fprintf(out, "Tier upload lag: %s", humanBytes(st.TierLagBytes))
	if len(st.TierMissing) > 0 {
		fmt.Fprintf(out, " (nodes %v did not answer)", st.TierMissing)
	}
	fmt.Fprintln(out)
	return nil
}
