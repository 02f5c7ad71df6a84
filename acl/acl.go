// Package acl is Kafka's authorization model: bindings of a resource
// pattern (a topic, group, the cluster or a transactional id; literal or
// prefixed) to a principal, a host, an operation and allow or deny, the
// filters DescribeAcls and DeleteAcls take, and an Authorizer that
// decides as Kafka's StandardAuthorizer does: super users may do
// anything, a matching deny beats any allow, an allow of READ, WRITE,
// DELETE or ALTER implies DESCRIBE and one of ALTER_CONFIGS implies
// DESCRIBE_CONFIGS, and a resource no binding names is open to everyone
// only with allow.everyone.if.no.acl.found.
//
// Enumerations are kmsg's, which carry Kafka's wire numbers.
package acl

import (
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ClusterName is the one name of the cluster resource.
const ClusterName = "kafka-cluster"

// Wildcards: a literal resource name, principal or host of "*" matches
// every one.
const (
	Wildcard          = "*"
	WildcardPrincipal = "User:*"
)

// Binding is one ACL.
type Binding struct {
	ResourceType kmsg.ACLResourceType
	ResourceName string
	Pattern      kmsg.ACLResourcePatternType // LITERAL or PREFIXED
	Principal    string                      // "User:alice", or User:*
	Host         string                      // an IP, or *
	Operation    kmsg.ACLOperation
	Permission   kmsg.ACLPermissionType // ALLOW or DENY
}

func (b Binding) String() string {
	return fmt.Sprintf("%s %s %s:%s to %s from %s: %s", b.Permission, b.Operation, b.ResourceType, patternName(b), b.Principal, b.Host, b.Pattern)
}

func patternName(b Binding) string {
	if b.Pattern == kmsg.ACLResourcePatternTypePrefixed {
		return b.ResourceName + "*"
	}
	return b.ResourceName
}

// ErrInvalid is a binding that cannot be stored (INVALID_REQUEST).
var ErrInvalid = errors.New("invalid ACL")

// Validate checks a binding to store, as Kafka's CreateAcls does.
func (b Binding) Validate() error {
	switch b.ResourceType {
	case kmsg.ACLResourceTypeTopic, kmsg.ACLResourceTypeGroup, kmsg.ACLResourceTypeCluster, kmsg.ACLResourceTypeTransactionalId,
		kmsg.ACLResourceTypeDelegationToken, kmsg.ACLResourceTypeUser:
	default:
		return fmt.Errorf("%w: resource type %s", ErrInvalid, b.ResourceType)
	}
	switch b.Pattern {
	case kmsg.ACLResourcePatternTypeLiteral, kmsg.ACLResourcePatternTypePrefixed:
	default:
		return fmt.Errorf("%w: pattern type %s (want LITERAL or PREFIXED)", ErrInvalid, b.Pattern)
	}
	switch b.Operation {
	case kmsg.ACLOperationAny, kmsg.ACLOperationUnknown:
		return fmt.Errorf("%w: operation %s", ErrInvalid, b.Operation)
	}
	if b.Operation < kmsg.ACLOperationAll || b.Operation > kmsg.ACLOperationDescribeTokens {
		return fmt.Errorf("%w: operation %d", ErrInvalid, b.Operation)
	}
	switch b.Permission {
	case kmsg.ACLPermissionTypeAllow, kmsg.ACLPermissionTypeDeny:
	default:
		return fmt.Errorf("%w: permission %s (want ALLOW or DENY)", ErrInvalid, b.Permission)
	}
	switch {
	case b.ResourceName == "":
		return fmt.Errorf("%w: empty resource name", ErrInvalid)
	case b.ResourceType == kmsg.ACLResourceTypeCluster && b.ResourceName != ClusterName:
		return fmt.Errorf("%w: the cluster resource is named %s", ErrInvalid, ClusterName)
	case b.Pattern == kmsg.ACLResourcePatternTypePrefixed && b.ResourceName == Wildcard:
		return fmt.Errorf("%w: a prefixed pattern of * (use a literal *)", ErrInvalid)
	case !strings.HasPrefix(b.Principal, "User:") || b.Principal == "User:":
		return fmt.Errorf("%w: principal %q (want User:NAME or User:*)", ErrInvalid, b.Principal)
	case b.Host == "":
		return fmt.Errorf("%w: empty host (use * for any)", ErrInvalid)
	case strings.ContainsRune(b.ResourceName+b.Principal+b.Host, 0):
		return fmt.Errorf("%w: NUL in a name", ErrInvalid)
	}
	return nil
}

// Filter selects bindings (DescribeAcls, DeleteAcls). Nil strings and ANY
// enumerations match everything; a MATCH pattern with a name matches
// every binding that would apply to a resource of that name: the literal
// name, the literal *, and prefixes of it.
type Filter struct {
	ResourceType kmsg.ACLResourceType
	ResourceName *string
	Pattern      kmsg.ACLResourcePatternType
	Principal    *string
	Host         *string
	Operation    kmsg.ACLOperation
	Permission   kmsg.ACLPermissionType
}

// Validate rejects a filter with an unknown element, as Kafka does.
func (f Filter) Validate() error {
	if f.ResourceType == kmsg.ACLResourceTypeUnknown || f.Pattern == kmsg.ACLResourcePatternTypeUnknown ||
		f.Operation == kmsg.ACLOperationUnknown || f.Permission == kmsg.ACLPermissionTypeUnknown {
		return fmt.Errorf("%w: a filter element is UNKNOWN", ErrInvalid)
	}
	return nil
}

// Matches reports whether f selects b.
func (f Filter) Matches(b Binding) bool {
	if f.ResourceType != kmsg.ACLResourceTypeAny && f.ResourceType != b.ResourceType {
		return false
	}
	switch f.Pattern {
	case kmsg.ACLResourcePatternTypeAny:
		if f.ResourceName != nil && *f.ResourceName != b.ResourceName {
			return false
		}
	case kmsg.ACLResourcePatternTypeMatch:
		if f.ResourceName != nil && !b.namesResource(*f.ResourceName) {
			return false
		}
	default:
		if f.Pattern != b.Pattern || (f.ResourceName != nil && *f.ResourceName != b.ResourceName) {
			return false
		}
	}
	return (f.Principal == nil || *f.Principal == b.Principal) &&
		(f.Host == nil || *f.Host == b.Host) &&
		(f.Operation == kmsg.ACLOperationAny || f.Operation == b.Operation) &&
		(f.Permission == kmsg.ACLPermissionTypeAny || f.Permission == b.Permission)
}

// namesResource reports whether b's pattern covers a resource named name.
func (b Binding) namesResource(name string) bool {
	if b.Pattern == kmsg.ACLResourcePatternTypePrefixed {
		return strings.HasPrefix(name, b.ResourceName)
	}
	return b.ResourceName == name || b.ResourceName == Wildcard
}

// grants reports whether b, matching principal and host, speaks to op:
// exactly, through ALL, or (an allow) through an implied operation.
func (b Binding) grants(op kmsg.ACLOperation) bool {
	if b.Operation == op || b.Operation == kmsg.ACLOperationAll {
		return true
	}
	if b.Permission != kmsg.ACLPermissionTypeAllow {
		return false
	}
	switch op {
	case kmsg.ACLOperationDescribe:
		switch b.Operation {
		case kmsg.ACLOperationRead, kmsg.ACLOperationWrite, kmsg.ACLOperationDelete, kmsg.ACLOperationAlter:
			return true
		}
	case kmsg.ACLOperationDescribeConfigs:
		return b.Operation == kmsg.ACLOperationAlterConfigs
	}
	return false
}
