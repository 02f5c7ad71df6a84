package cli

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kadm"
	ucli "github.com/urfave/cli/v2"

	"github.com/strata-io/strata/auth"
)

// userCommand manages SASL/SCRAM users, as `kafka-configs.sh --entity-type
// users` and `rpk security user` do, through the Kafka API
// (AlterUserScramCredentials): the password is salted here, and never
// leaves this process.
func userCommand() *ucli.Command {
	mechFlag := &ucli.StringFlag{Name: "mechanism", Value: "all", Usage: "SCRAM-SHA-256, SCRAM-SHA-512 or all"}
	return &ucli.Command{
		Name:  "user",
		Usage: "create, delete and list SASL/SCRAM users",
		Subcommands: []*ucli.Command{
			{Name: "create", Usage: "create a user, or set a user's password", ArgsUsage: "NAME",
				Flags: []ucli.Flag{brokersFlag, mechFlag,
					&ucli.StringFlag{Name: "password", EnvVars: envVars("user-password"), Usage: "the new password (better from STRATA_USER_PASSWORD)"},
					&ucli.IntFlag{Name: "iterations", Value: auth.DefaultIterations, Usage: fmt.Sprintf("SCRAM iterations, %d to %d", auth.MinIterations, auth.MaxIterations)},
				}, Action: userCreate},
			{Name: "delete", Usage: "delete a user's credentials", ArgsUsage: "NAME", Flags: []ucli.Flag{brokersFlag, mechFlag}, Action: userDelete},
			{Name: "list", Usage: "list users and their mechanisms", Flags: []ucli.Flag{brokersFlag}, Action: userList},
		},
	}
}

func userMechanisms(c *ucli.Context) ([]kadm.ScramMechanism, error) {
	switch m := strings.ToUpper(c.String("mechanism")); m {
	case "ALL":
		return []kadm.ScramMechanism{kadm.ScramSha256, kadm.ScramSha512}, nil
	case auth.ScramSHA256:
		return []kadm.ScramMechanism{kadm.ScramSha256}, nil
	case auth.ScramSHA512:
		return []kadm.ScramMechanism{kadm.ScramSha512}, nil
	default:
		return nil, fmt.Errorf("--mechanism %q: want SCRAM-SHA-256, SCRAM-SHA-512 or all", c.String("mechanism"))
	}
}

func oneUser(c *ucli.Context, what string) (string, error) {
	if c.NArg() != 1 || c.Args().First() == "" {
		return "", fmt.Errorf("user %s: name one user", what)
	}
	return c.Args().First(), nil
}

func userCreate(c *ucli.Context) error {
	name, err := oneUser(c, "create")
	if err != nil {
		return err
	}
	if c.String("password") == "" {
		return errors.New("user create: give --password (or STRATA_USER_PASSWORD)")
	}
	mechs, err := userMechanisms(c)
	if err != nil {
		return fmt.Errorf("user create: %w", err)
	}
	adm, done, err := newAdmin(c)
	if err != nil {
		return err
	}
	defer done()
	// One request per mechanism: kadm takes a user once per request.
	for _, m := range mechs {
		res, err := adm.AlterUserSCRAMs(c.Context, nil, []kadm.UpsertSCRAM{{User: name, Mechanism: m,
			Iterations: int32(c.Int("iterations")), Password: c.String("password")}})
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			return fmt.Errorf("user create %s (%s): %w", name, m, err)
		}
	}
	fmt.Fprintf(c.App.Writer, "user %s: %s set\n", name, mechNames(mechs))
	return nil
}

func userDelete(c *ucli.Context) error {
	name, err := oneUser(c, "delete")
	if err != nil {
		return err
	}
	mechs, err := userMechanisms(c)
	if err != nil {
		return fmt.Errorf("user delete: %w", err)
	}
	adm, done, err := newAdmin(c)
	if err != nil {
		return err
	}
	defer done()
	described, err := adm.DescribeUserSCRAMs(c.Context, name)
	if err == nil {
		err = described.Error()
	}
	if err != nil {
		return fmt.Errorf("user delete %s: %w", name, err)
	}
	var deleted []kadm.ScramMechanism
	for _, m := range mechs {
		has := false
		for _, ci := range described[name].CredInfos {
			has = has || ci.Mechanism == m
		}
		if !has && c.String("mechanism") == "all" {
			continue // all: whichever it has
		}
		res, err := adm.AlterUserSCRAMs(c.Context, []kadm.DeleteSCRAM{{User: name, Mechanism: m}}, nil)
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			return fmt.Errorf("user delete %s (%s): %w", name, m, err)
		}
		deleted = append(deleted, m)
	}
	fmt.Fprintf(c.App.Writer, "user %s: %s deleted\n", name, mechNames(deleted))
	return nil
}

func userList(c *ucli.Context) error {
	adm, done, err := newAdmin(c)
	if err != nil {
		return err
	}
	defer done()
	described, err := adm.DescribeUserSCRAMs(c.Context)
	if err == nil {
		err = described.Error()
	}
	if err != nil {
		return fmt.Errorf("user list: %w", err)
	}
	names := make([]string, 0, len(described))
	for n := range described {
		names = append(names, n)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tMECHANISMS")
	for _, n := range names {
		var ms []string
		for _, ci := range described[n].CredInfos {
			ms = append(ms, fmt.Sprintf("%s (%d iterations)", ci.Mechanism, ci.Iterations))
		}
		fmt.Fprintf(tw, "%s\t%s\n", n, strings.Join(ms, ", "))
	}
	return tw.Flush()
}

func mechNames(ms []kadm.ScramMechanism) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.String())
	}
	if len(out) == 0 {
		return "nothing"
	}
	return strings.Join(out, " and ")
}
