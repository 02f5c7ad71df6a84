package acl

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Authorizer decides requests from one set of bindings; it never
// changes (build a new one when the bindings do) and is safe for
// concurrent use.
type Authorizer struct {
	super        map[string]bool
	allowIfNoACL bool
	byType       map[kmsg.ACLResourceType]*resourceIndex
	bindings     []Binding
}

// resourceIndex holds one resource type's bindings: literal ones by
// name (the wildcard * among them) and prefixed ones.
type resourceIndex struct {
	literal  map[string][]Binding
	prefixed []Binding
}

// NewAuthorizer indexes bindings. superUsers are principals (User:NAME)
// allowed everything; allowIfNoACL is allow.everyone.if.no.acl.found.
func NewAuthorizer(bindings []Binding, superUsers []string, allowIfNoACL bool) *Authorizer {
	a := &Authorizer{super: map[string]bool{}, allowIfNoACL: allowIfNoACL, byType: map[kmsg.ACLResourceType]*resourceIndex{},
		bindings: slices.Clone(bindings)}
	for _, s := range superUsers {
		a.super[s] = true
	}
	for _, b := range bindings {
		idx := a.byType[b.ResourceType]
		if idx == nil {
			idx = &resourceIndex{literal: map[string][]Binding{}}
			a.byType[b.ResourceType] = idx
		}
		if b.Pattern == kmsg.ACLResourcePatternTypePrefixed {
			idx.prefixed = append(idx.prefixed, b)
		} else {
			idx.literal[b.ResourceName] = append(idx.literal[b.ResourceName], b)
		}
	}
	return a
}

// Bindings are every binding the authorizer holds.
func (a *Authorizer) Bindings() []Binding { return a.bindings }

// Super reports whether principal is a super user.
func (a *Authorizer) Super(principal string) bool { return a.super[principal] }

// Allowed decides whether principal, connected from host, may do op on
// the resource of type rt named name.
func (a *Authorizer) Allowed(principal, host string, op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) bool {
	if a.super[principal] {
		return true
	}
	idx := a.byType[rt]
	if idx == nil {
		return a.allowIfNoACL
	}
	var d decision
	for _, b := range idx.literal[name] {
		d.see(b, principal, host, op)
	}
	for _, b := range idx.literal[Wildcard] {
		d.see(b, principal, host, op)
	}
	for _, b := range idx.prefixed {
		if len(name) >= len(b.ResourceName) && name[:len(b.ResourceName)] == b.ResourceName {
			d.see(b, principal, host, op)
		}
	}
	switch {
	case d.denied:
		return false
	case d.allowed:
		return true
	case d.found:
		return false
	}
	return a.allowIfNoACL
}

// decision gathers what the bindings on a resource say.
type decision struct {
	found, allowed, denied bool
}

func (d *decision) see(b Binding, principal, host string, op kmsg.ACLOperation) {
	d.found = true
	if !b.appliesTo(principal, host) || !b.grants(op) {
		return
	}
	if b.Permission == kmsg.ACLPermissionTypeDeny {
		d.denied = true
	} else {
		d.allowed = true
	}
}

// AnyAllowed reports whether principal may do op on some resource of
// type rt: an allow of it on any pattern, as Kafka asks for an
// idempotent producer (WRITE on any topic implies IDEMPOTENT_WRITE) and
// ListGroups. A deny of it elsewhere does not matter.
func (a *Authorizer) AnyAllowed(principal, host string, op kmsg.ACLOperation, rt kmsg.ACLResourceType) bool {
	if a.super[principal] {
		return true
	}
	for _, b := range a.bindings {
		if b.ResourceType == rt && b.Permission == kmsg.ACLPermissionTypeAllow && b.appliesTo(principal, host) && b.grants(op) {
			return true
		}
	}
	return false
}

// appliesTo reports whether b is about principal connected from host.
func (b Binding) appliesTo(principal, host string) bool {
	return (b.Principal == principal || b.Principal == WildcardPrincipal) && (b.Host == host || b.Host == Wildcard)
}
