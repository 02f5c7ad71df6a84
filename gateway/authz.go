package gateway

import (
	"context"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/acl"
	"github.com/strata-io/strata/meta"
)

// Authorization: with Config.Authorizer on, every request is checked
// against the ACLs in the metadata as Kafka's authorizer checks it (the
// operation each API needs is named where the API is served); off, every
// principal may do everything, and the ACL APIs answer SECURITY_DISABLED.

// Shorthands for the operations and resource types checks name.
const (
	opRead            = kmsg.ACLOperationRead
	opWrite           = kmsg.ACLOperationWrite
	opCreate          = kmsg.ACLOperationCreate
	opDelete          = kmsg.ACLOperationDelete
	opAlter           = kmsg.ACLOperationAlter
	opDescribe        = kmsg.ACLOperationDescribe
	opDescribeConfigs = kmsg.ACLOperationDescribeConfigs
	opAlterConfigs    = kmsg.ACLOperationAlterConfigs
	opIdempotentWrite = kmsg.ACLOperationIdempotentWrite

	rtTopic   = kmsg.ACLResourceTypeTopic
	rtGroup   = kmsg.ACLResourceTypeGroup
	rtCluster = kmsg.ACLResourceTypeCluster
	rtTxnID   = kmsg.ACLResourceTypeTransactionalId
)

// acls is the gateway's copy of the ACLs, as an authorizer.
type acls struct {
	super        []string
	allowIfNoACL bool
	copy         copied[*acl.Authorizer]
}

// aclsMaxAge bounds how stale the copy may get if an event is missed.
const aclsMaxAge = 30 * time.Second

func newACLs(client *meta.Client, super []string, allowIfNoACL bool, logger *slog.Logger) *acls {
	a := &acls{super: super, allowIfNoACL: allowIfNoACL}
	a.copy = copied[*acl.Authorizer]{maxAge: aclsMaxAge,
		failed: func(err error) { logger.Warn("cannot read ACLs from the controller", "error", err) },
		read: func(ctx context.Context) (*acl.Authorizer, error) {
			r, err := client.Read(ctx, meta.ReadRequest{Kind: "acls"})
			if err != nil {
				return nil, err
			}
			bs := make([]acl.Binding, len(r.ACLs))
			for i, m := range r.ACLs {
				bs[i] = bindingOf(m)
			}
			return acl.NewAuthorizer(bs, super, allowIfNoACL), nil
		}}
	return a
}

func (a *acls) invalidate() { a.copy.invalidate() }

// authorizer returns the current authorizer. With no copy ever read
// (the controller unreachable since start), only super users may do
// anything: authorization fails closed.
func (a *acls) authorizer(ctx context.Context) *acl.Authorizer {
	if auth, ok := a.copy.get(ctx); ok {
		return auth
	}
	return acl.NewAuthorizer(nil, a.super, false)
}

func bindingOf(m meta.ACL) acl.Binding {
	return acl.Binding{ResourceType: kmsg.ACLResourceType(m.ResourceType), ResourceName: m.ResourceName,
		Pattern: kmsg.ACLResourcePatternType(m.PatternType), Principal: m.Principal, Host: m.Host,
		Operation: kmsg.ACLOperation(m.Operation), Permission: kmsg.ACLPermissionType(m.Permission)}
}

func metaACLOf(b acl.Binding) meta.ACL {
	return meta.ACL{ResourceType: int8(b.ResourceType), ResourceName: b.ResourceName, PatternType: int8(b.Pattern),
		Principal: b.Principal, Host: b.Host, Operation: int8(b.Operation), Permission: int8(b.Permission)}
}

// allowed reports whether the request's principal may do op on the
// resource: always with authorization off, and for the gateway's own
// internal connections.
func (g *Gateway) allowed(ctx context.Context, op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) bool {
	if g.acls == nil {
		return true
	}
	principal, host := principalOf(ctx), hostOfCtx(ctx)
	if principal == InternalPrincipal {
		return true
	}
	ok := g.acls.authorizer(ctx).Allowed(principal, host, op, rt, name)
	if !ok {
		g.metrics.denied.WithLabelValues(op.String(), rt.String()).Inc()
		g.logger.Debug("denied", "principal", principal, "host", host, "operation", op, "resource_type", rt, "resource", name)
	}
	return ok
}

// allowedCluster is allowed on the cluster resource.
func (g *Gateway) allowedCluster(ctx context.Context, op kmsg.ACLOperation) bool {
	return g.allowed(ctx, op, rtCluster, acl.ClusterName)
}

// allowedAny reports whether the principal may do op on some resource
// of type rt (an idempotent producer's WRITE on any topic).
func (g *Gateway) allowedAny(ctx context.Context, op kmsg.ACLOperation, rt kmsg.ACLResourceType) bool {
	if g.acls == nil || principalOf(ctx) == InternalPrincipal {
		return true
	}
	return g.acls.authorizer(ctx).AnyAllowed(principalOf(ctx), hostOfCtx(ctx), op, rt)
}

// mayCreateTopic: CREATE on the cluster or on the topic, as Kafka asks.
func (g *Gateway) mayCreateTopic(ctx context.Context, name string) bool {
	return g.allowedCluster(ctx, opCreate) || g.allowed(ctx, opCreate, rtTopic, name)
}

// hostOfCtx is the client's address, as ACL host filters name it.
func hostOfCtx(ctx context.Context) string {
	if s := sessionOf(ctx); s != nil && s.remote != nil {
		return hostOf(s.remote)
	}
	return ""
}
