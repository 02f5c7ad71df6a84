package gateway

import (
	"context"
	"sync"
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

// acls is the gateway's copy of the ACLs, as an authorizer, read from the
// controller and dropped when they change.
type acls struct {
	client       *meta.Client
	super        []string
	allowIfNoACL bool
	logger       interface{ Warn(string, ...any) }
	mu           sync.Mutex
	auth         *acl.Authorizer // nil: stale
	at           time.Time
	loading      chan struct{} // closed when a load in progress ends
}

// aclsMaxAge bounds how stale the copy may get if an event is missed.
const aclsMaxAge = 30 * time.Second

func (a *acls) invalidate() {
	a.mu.Lock()
	a.auth = nil
	a.mu.Unlock()
}

// authorizer returns the current authorizer, reading the ACLs when the
// copy is stale (one read at a time). When the controller cannot be
// read, a stale copy is used; with none, only super users may do
// anything (fail closed).
func (a *acls) authorizer(ctx context.Context) *acl.Authorizer {
	for {
		a.mu.Lock()
		if a.auth != nil && time.Since(a.at) < aclsMaxAge {
			auth := a.auth
			a.mu.Unlock()
			return auth
		}
		if wait := a.loading; wait != nil {
			a.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return acl.NewAuthorizer(nil, a.super, false)
			}
		}
		done := make(chan struct{})
		a.loading = done
		stale := a.auth
		a.mu.Unlock()

		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r, err := a.client.Read(rctx, meta.ReadRequest{Kind: "acls"})
		cancel()
		var auth *acl.Authorizer
		if err == nil {
			bs := make([]acl.Binding, len(r.ACLs))
			for i, m := range r.ACLs {
				bs[i] = bindingOf(m)
			}
			auth = acl.NewAuthorizer(bs, a.super, a.allowIfNoACL)
		} else {
			a.logger.Warn("cannot read ACLs from the controller", "error", err)
		}
		a.mu.Lock()
		a.loading = nil
		if auth != nil {
			a.auth, a.at = auth, time.Now()
		}
		a.mu.Unlock()
		close(done)
		switch {
		case auth != nil:
			return auth
		case stale != nil:
			return stale
		}
		return acl.NewAuthorizer(nil, a.super, false)
	}
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
