package cli

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	ucli "github.com/urfave/cli/v2"
)

// The cluster's features, as kafka-features.sh shows and changes them:
// describe from ApiVersions, upgrade and downgrade by UpdateFeatures.
func featuresCommand() *ucli.Command {
	featureFlag := &ucli.StringSliceFlag{Name: "feature", Aliases: []string{"f"}, Usage: "NAME=LEVEL, e.g. transaction.version=2; repeatable (required)"}
	dryRun := &ucli.BoolFlag{Name: "dry-run", Usage: "check the change and make none"}
	return &ucli.Command{
		Name:   "features",
		Usage:  "the cluster's features and their finalized levels (like kafka-features.sh describe)",
		Flags:  []ucli.Flag{brokersFlag},
		Action: featuresDescribe,
		Subcommands: []*ucli.Command{
			{Name: "upgrade", Usage: "raise features' levels", Flags: []ucli.Flag{brokersFlag, featureFlag, dryRun},
				Action: func(c *ucli.Context) error { return featuresUpdate(c, 1) }},
			{Name: "downgrade", Usage: "lower features' levels (level 0 turns a feature off)", Flags: []ucli.Flag{brokersFlag, featureFlag, dryRun},
				Action: func(c *ucli.Context) error { return featuresUpdate(c, 2) }},
		},
	}
}

func featuresDescribe(c *ucli.Context) error {
	cl, err := newKafkaClient(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrApiVersionsRequest()
	req.ClientSoftwareName, req.ClientSoftwareVersion = "strata-cli", "1"
	resp, err := req.RequestWith(c.Context, cl)
	if err != nil {
		return fmt.Errorf("cluster features: %w", err)
	}
	finalized := map[string]int16{}
	for _, f := range resp.FinalizedFeatures {
		finalized[f.Name] = f.MaxVersionLevel
	}
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "FEATURE\tSUPPORTED\tFINALIZED\tEPOCH")
	for _, f := range resp.SupportedFeatures {
		fmt.Fprintf(w, "%s\t%d-%d\t%d\t%d\n", f.Name, f.MinVersion, f.MaxVersion, finalized[f.Name], resp.FinalizedFeaturesEpoch)
	}
	return w.Flush()
}

// featuresUpdate asks for the --feature levels: upgradeType 1 raises, 2
// lowers (a safe downgrade, in UpdateFeatures' terms).
func featuresUpdate(c *ucli.Context, upgradeType int8) error {
	specs := c.StringSlice("feature")
	if len(specs) == 0 {
		return fmt.Errorf("--feature NAME=LEVEL is required")
	}
	req := kmsg.NewPtrUpdateFeaturesRequest()
	req.TimeoutMillis, req.ValidateOnly = 30000, c.Bool("dry-run")
	for _, s := range specs {
		name, lv, ok := strings.Cut(s, "=")
		level, err := strconv.ParseInt(lv, 10, 16)
		if !ok || name == "" || err != nil {
			return fmt.Errorf("--feature %q: want NAME=LEVEL, e.g. transaction.version=2", s)
		}
		u := kmsg.NewUpdateFeaturesRequestFeatureUpdate()
		u.Feature, u.MaxVersionLevel, u.UpgradeType = name, int16(level), upgradeType
		u.AllowDowngrade = upgradeType != 1 // what v0 understands
		req.FeatureUpdates = append(req.FeatureUpdates, u)
	}
	cl, err := newKafkaClient(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := req.RequestWith(c.Context, cl)
	if err != nil {
		return fmt.Errorf("cluster features: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		msg := ""
		if resp.ErrorMessage != nil {
			msg = ": " + *resp.ErrorMessage
		}
		return fmt.Errorf("cluster features: %w%s", err, msg)
	}
	verb := "set"
	if req.ValidateOnly {
		verb = "would be set (dry run)"
	}
	for _, u := range req.FeatureUpdates {
		fmt.Fprintf(c.App.Writer, "%s %s to level %d\n", u.Feature, verb, u.MaxVersionLevel)
	}
	return nil
}
