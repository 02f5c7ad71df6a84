package gateway

import (
	"context"
	"errors"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/acl"
	"github.com/strata-io/strata/meta"
)

// The ACL APIs: DescribeAcls (DESCRIBE on the cluster), CreateAcls and
// DeleteAcls (ALTER on the cluster); SECURITY_DISABLED with the
// authorizer off.

func errMsg(s string) *string { return &s }

// allACLs reads every ACL from the controller.
func (g *Gateway) allACLs(ctx context.Context) ([]acl.Binding, error) {
	r, err := g.meta.Read(ctx, meta.ReadRequest{Kind: "acls"})
	if err != nil {
		return nil, err
	}
	bs := make([]acl.Binding, len(r.ACLs))
	for i, m := range r.ACLs {
		bs[i] = bindingOf(m)
	}
	return bs, nil
}

// aclAPIRefusal is why an ACL API is refused, if it is: the authorizer
// is off, or the principal may not do op on the cluster.
func (g *Gateway) aclAPIRefusal(ctx context.Context, op kmsg.ACLOperation) (code int16, msg string) {
	switch {
	case g.acls == nil:
		return kerr.SecurityDisabled.Code, "no authorizer: start the gateway with --authorizer"
	case !g.allowedCluster(ctx, op):
		return kerr.ClusterAuthorizationFailed.Code, "the ACL APIs need " + op.String() + " on the cluster"
	}
	return 0, ""
}

func (g *Gateway) describeAcls(ctx context.Context, req *kmsg.DescribeACLsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	if code, msg := g.aclAPIRefusal(ctx, opDescribe); code != 0 {
		resp.ErrorCode, resp.ErrorMessage = code, errMsg(msg)
		return resp
	}
	f := acl.Filter{ResourceType: req.ResourceType, ResourceName: req.ResourceName, Pattern: req.ResourcePatternType,
		Principal: req.Principal, Host: req.Host, Operation: req.Operation, Permission: req.PermissionType}
	if req.Version == 0 {
		f.Pattern = kmsg.ACLResourcePatternTypeLiteral
	}
	if err := f.Validate(); err != nil {
		resp.ErrorCode, resp.ErrorMessage = kerr.InvalidRequest.Code, errMsg(err.Error())
		return resp
	}
	all, err := g.allACLs(ctx)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = kerr.CoordinatorNotAvailable.Code, errMsg(err.Error())
		return resp
	}
	type key struct {
		rt   kmsg.ACLResourceType
		name string
		p    kmsg.ACLResourcePatternType
	}
	at := map[key]int{}
	for _, b := range all {
		if !f.Matches(b) {
			continue
		}
		k := key{b.ResourceType, b.ResourceName, b.Pattern}
		i, ok := at[k]
		if !ok {
			r := kmsg.NewDescribeACLsResponseResource()
			r.ResourceType, r.ResourceName, r.ResourcePatternType = b.ResourceType, b.ResourceName, b.Pattern
			resp.Resources = append(resp.Resources, r)
			i = len(resp.Resources) - 1
			at[k] = i
		}
		a := kmsg.NewDescribeACLsResponseResourceACL()
		a.Principal, a.Host, a.Operation, a.PermissionType = b.Principal, b.Host, b.Operation, b.Permission
		resp.Resources[i].ACLs = append(resp.Resources[i].ACLs, a)
	}
	return resp
}

func (g *Gateway) createAcls(ctx context.Context, req *kmsg.CreateACLsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	if code, msg := g.aclAPIRefusal(ctx, opAlter); code != 0 {
		for range req.Creations {
			r := kmsg.NewCreateACLsResponseResult()
			r.ErrorCode, r.ErrorMessage = code, errMsg(msg)
			resp.Results = append(resp.Results, r)
		}
		return resp
	}
	cmd := &meta.CreateAcls{}
	results := make([]kmsg.CreateACLsResponseResult, len(req.Creations))
	for i, c := range req.Creations {
		results[i] = kmsg.NewCreateACLsResponseResult()
		b := acl.Binding{ResourceType: c.ResourceType, ResourceName: c.ResourceName, Pattern: c.ResourcePatternType,
			Principal: c.Principal, Host: c.Host, Operation: c.Operation, Permission: c.PermissionType}
		if req.Version == 0 {
			b.Pattern = kmsg.ACLResourcePatternTypeLiteral
		}
		if err := b.Validate(); err != nil {
			results[i].ErrorCode, results[i].ErrorMessage = kerr.InvalidRequest.Code, errMsg(err.Error())
			continue
		}
		cmd.ACLs = append(cmd.ACLs, metaACLOf(b))
	}
	if len(cmd.ACLs) > 0 {
		err := g.propose(ctx, cmd)
		for i := range results {
			if results[i].ErrorCode == 0 && err != nil {
				results[i].ErrorCode, results[i].ErrorMessage = proposeErrCode(err), errMsg(err.Error())
			}
		}
		if err == nil {
			g.acls.invalidate()
			g.logger.Info("ACLs created", "principal", principalOf(ctx), "count", len(cmd.ACLs))
		}
	}
	resp.Results = results
	return resp
}

func (g *Gateway) deleteAcls(ctx context.Context, req *kmsg.DeleteACLsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	fail := func(code int16, msg string) kmsg.Response {
		for range req.Filters {
			r := kmsg.NewDeleteACLsResponseResult()
			r.ErrorCode, r.ErrorMessage = code, errMsg(msg)
			resp.Results = append(resp.Results, r)
		}
		return resp
	}
	if code, msg := g.aclAPIRefusal(ctx, opAlter); code != 0 {
		return fail(code, msg)
	}
	all, err := g.allACLs(ctx)
	if err != nil {
		return fail(kerr.CoordinatorNotAvailable.Code, err.Error())
	}
	cmd := &meta.DeleteAcls{}
	results := make([]kmsg.DeleteACLsResponseResult, len(req.Filters))
	var seen []acl.Binding
	for i, rf := range req.Filters {
		results[i] = kmsg.NewDeleteACLsResponseResult()
		f := acl.Filter{ResourceType: rf.ResourceType, ResourceName: rf.ResourceName, Pattern: rf.ResourcePatternType,
			Principal: rf.Principal, Host: rf.Host, Operation: rf.Operation, Permission: rf.PermissionType}
		if req.Version == 0 {
			f.Pattern = kmsg.ACLResourcePatternTypeLiteral
		}
		if err := f.Validate(); err != nil {
			results[i].ErrorCode, results[i].ErrorMessage = kerr.InvalidRequest.Code, errMsg(err.Error())
			continue
		}
		for _, b := range all {
			if !f.Matches(b) {
				continue
			}
			m := kmsg.NewDeleteACLsResponseResultMatchingACL()
			m.ResourceType, m.ResourceName, m.ResourcePatternType = b.ResourceType, b.ResourceName, b.Pattern
			m.Principal, m.Host, m.Operation, m.PermissionType = b.Principal, b.Host, b.Operation, b.Permission
			results[i].MatchingACLs = append(results[i].MatchingACLs, m)
			if !slices.Contains(seen, b) {
				seen = append(seen, b)
				cmd.ACLs = append(cmd.ACLs, metaACLOf(b))
			}
		}
	}
	if len(cmd.ACLs) > 0 {
		if err := g.propose(ctx, cmd); err != nil {
			for i := range results {
				if results[i].ErrorCode == 0 {
					results[i].ErrorCode, results[i].ErrorMessage, results[i].MatchingACLs = proposeErrCode(err), errMsg(err.Error()), nil
				}
			}
		} else {
			g.acls.invalidate()
			g.logger.Info("ACLs deleted", "principal", principalOf(ctx), "count", len(cmd.ACLs))
		}
	}
	resp.Results = results
	return resp
}

// proposeErrCode is the Kafka error for a failed metadata proposal.
func proposeErrCode(err error) int16 {
	if errors.Is(err, meta.ErrInvalidRequest) {
		return kerr.InvalidRequest.Code
	}
	return kerr.CoordinatorNotAvailable.Code
}
