package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
	ucli "github.com/urfave/cli/v2"
)

// aclCommand manages Kafka ACLs with kafka-acls.sh's and rpk security
// acl's flags, through CreateAcls, DescribeAcls and DeleteAcls.
func aclCommand() *ucli.Command {
	flags := func(create bool) []ucli.Flag {
		pattern := "literal"
		if !create {
			pattern = "any"
		}
		return []ucli.Flag{brokersFlag,
			&ucli.StringSliceFlag{Name: "allow-principal", Usage: "principal to allow, as User:NAME (User:* for everyone); repeatable"},
			&ucli.StringSliceFlag{Name: "deny-principal", Usage: "principal to deny, as User:NAME; repeatable"},
			&ucli.StringSliceFlag{Name: "allow-host", Usage: "host the allowed principals may connect from (default any)"},
			&ucli.StringSliceFlag{Name: "deny-host", Usage: "host the denied principals are denied from (default any)"},
			&ucli.StringSliceFlag{Name: "operation", Usage: "all, read, write, create, delete, alter, describe, cluster_action, describe_configs, alter_configs, idempotent_write; repeatable"},
			&ucli.StringSliceFlag{Name: "topic", Usage: "topic name (or * for all, or a prefix with --resource-pattern-type prefixed); repeatable"},
			&ucli.StringSliceFlag{Name: "group", Usage: "consumer group name; repeatable"},
			&ucli.BoolFlag{Name: "cluster", Usage: "the cluster resource"},
			&ucli.StringSliceFlag{Name: "transactional-id", Usage: "transactional id; repeatable"},
			&ucli.StringFlag{Name: "resource-pattern-type", Value: pattern, Usage: "literal or prefixed (and, to list or delete, match or any)"},
		}
	}
	return &ucli.Command{
		Name:  "acl",
		Usage: "create, list and delete ACLs (like kafka-acls.sh and rpk security acl)",
		Subcommands: []*ucli.Command{
			{Name: "create", Usage: "allow or deny principals operations on resources", Flags: flags(true), Action: aclCreate},
			{Name: "list", Usage: "list ACLs matching the filters (all without any)", Flags: flags(false), Action: aclList},
			{Name: "delete", Usage: "delete ACLs matching the filters", Flags: flags(false), Action: aclDelete},
		},
	}
}

// aclBuilder turns the flags into kadm's builder.
func aclBuilder(c *ucli.Context, create bool) (*kadm.ACLBuilder, error) {
	b := kadm.NewACLs().
		MaybeAllow(c.StringSlice("allow-principal")...).MaybeAllowHosts(c.StringSlice("allow-host")...).
		MaybeDeny(c.StringSlice("deny-principal")...).MaybeDenyHosts(c.StringSlice("deny-host")...).
		MaybeTopics(c.StringSlice("topic")...).MaybeGroups(c.StringSlice("group")...).
		MaybeClusters(c.Bool("cluster")).MaybeTransactionalIDs(c.StringSlice("transactional-id")...)
	for _, p := range append(c.StringSlice("allow-principal"), c.StringSlice("deny-principal")...) {
		if !strings.HasPrefix(p, "User:") {
			return nil, fmt.Errorf("principal %q: write it User:NAME", p)
		}
	}
	var ops []kadm.ACLOperation
	for _, o := range c.StringSlice("operation") {
		op, err := kmsg.ParseACLOperation(strings.ToLower(strings.ReplaceAll(o, "-", "_")))
		if err != nil || op == kmsg.ACLOperationUnknown {
			return nil, fmt.Errorf("--operation %q: not a Kafka ACL operation", o)
		}
		ops = append(ops, op)
	}
	if create && len(ops) == 0 {
		return nil, errors.New("give at least one --operation")
	}
	b.Operations(ops...) // none: any (a filter)
	pat, err := kmsg.ParseACLResourcePatternType(strings.ToLower(c.String("resource-pattern-type")))
	if err != nil || pat == kmsg.ACLResourcePatternTypeUnknown {
		return nil, fmt.Errorf("--resource-pattern-type %q: want literal, prefixed, match or any", c.String("resource-pattern-type"))
	}
	b.ResourcePatternType(pat)
	if !b.HasResource() {
		if create {
			return nil, errors.New("name a resource: --topic, --group, --cluster or --transactional-id")
		}
		b.AnyResource()
	}
	if create {
		if !b.HasPrincipals() {
			return nil, errors.New("give --allow-principal or --deny-principal")
		}
		return b, b.ValidateCreate()
	}
	allowP, denyP := c.StringSlice("allow-principal"), c.StringSlice("deny-principal")
	switch {
	case len(allowP) == 0 && len(denyP) == 0:
		b.Allow().AllowHosts().Deny().DenyHosts() // any principal, host and permission
	default:
		if len(allowP) > 0 && len(c.StringSlice("allow-host")) == 0 {
			b.AllowHosts()
		}
		if len(denyP) > 0 && len(c.StringSlice("deny-host")) == 0 {
			b.DenyHosts()
		}
	}
	return b, b.ValidateFilter()
}

func aclCreate(c *ucli.Context) error {
	b, err := aclBuilder(c, true)
	if err != nil {
		return fmt.Errorf("acl create: %w", err)
	}
	adm, done, err := newAdmin(c)
	if err != nil {
		return err
	}
	defer done()
	res, err := adm.CreateACLs(c.Context, b)
	if err != nil {
		return fmt.Errorf("acl create: %w", err)
	}
	for _, r := range res {
		if r.Err != nil {
			return fmt.Errorf("acl create: %s %s on %s %s: %w (%s)", r.Permission, r.Operation, r.Type, r.Name, r.Err, r.ErrMessage)
		}
	}
	fmt.Fprintf(c.App.Writer, "created %d ACLs\n", len(res))
	return printACLs(c, res, func(r kadm.CreateACLsResult) kadm.DescribedACL {
		return kadm.DescribedACL{Principal: r.Principal, Host: r.Host, Type: r.Type, Name: r.Name, Pattern: r.Pattern, Operation: r.Operation, Permission: r.Permission}
	})
}

func aclList(c *ucli.Context) error {
	b, err := aclBuilder(c, false)
	if err != nil {
		return fmt.Errorf("acl list: %w", err)
	}
	adm, done, err := newAdmin(c)
	if err != nil {
		return err
	}
	defer done()
	res, err := adm.DescribeACLs(c.Context, b)
	if err != nil {
		return fmt.Errorf("acl list: %w", err)
	}
	var all []kadm.DescribedACL
	seen := map[kadm.DescribedACL]bool{}
	for _, r := range res {
		if r.Err != nil {
			return fmt.Errorf("acl list: %w (%s)", r.Err, r.ErrMessage)
		}
		for _, d := range r.Described {
			if !seen[d] {
				seen[d] = true
				all = append(all, d)
			}
		}
	}
	return printACLs(c, all, func(d kadm.DescribedACL) kadm.DescribedACL { return d })
}

func aclDelete(c *ucli.Context) error {
	b, err := aclBuilder(c, false)
	if err != nil {
		return fmt.Errorf("acl delete: %w", err)
	}
	if len(c.StringSlice("allow-principal")) == 0 && len(c.StringSlice("deny-principal")) == 0 && !b.HasResource() {
		return errors.New("acl delete: name a principal or a resource; deleting every ACL takes a filter")
	}
	adm, done, err := newAdmin(c)
	if err != nil {
		return err
	}
	defer done()
	res, err := adm.DeleteACLs(c.Context, b)
	if err != nil {
		return fmt.Errorf("acl delete: %w", err)
	}
	var all []kadm.DeletedACL
	for _, r := range res {
		if r.Err != nil {
			return fmt.Errorf("acl delete: %w (%s)", r.Err, r.ErrMessage)
		}
		all = append(all, r.Deleted...)
	}
	fmt.Fprintf(c.App.Writer, "deleted %d ACLs\n", len(all))
	return printACLs(c, all, func(d kadm.DeletedACL) kadm.DescribedACL {
		return kadm.DescribedACL{Principal: d.Principal, Host: d.Host, Type: d.Type, Name: d.Name, Pattern: d.Pattern, Operation: d.Operation, Permission: d.Permission}
	})
}

func printACLs[T any](c *ucli.Context, rows []T, as func(T) kadm.DescribedACL) error {
	if len(rows) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PRINCIPAL\tHOST\tRESOURCE-TYPE\tRESOURCE-NAME\tPATTERN\tOPERATION\tPERMISSION")
	for _, r := range rows {
		d := as(r)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Principal, d.Host, d.Type, d.Name, d.Pattern, d.Operation, d.Permission)
	}
	return tw.Flush()
}
