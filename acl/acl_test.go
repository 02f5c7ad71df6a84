package acl

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	topic   = kmsg.ACLResourceTypeTopic
	group   = kmsg.ACLResourceTypeGroup
	cluster = kmsg.ACLResourceTypeCluster
	literal = kmsg.ACLResourcePatternTypeLiteral
	prefix  = kmsg.ACLResourcePatternTypePrefixed
	allow   = kmsg.ACLPermissionTypeAllow
	deny    = kmsg.ACLPermissionTypeDeny
)

func bind(rt kmsg.ACLResourceType, name string, p kmsg.ACLResourcePatternType, principal, host string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) Binding {
	return Binding{ResourceType: rt, ResourceName: name, Pattern: p, Principal: principal, Host: host, Operation: op, Permission: perm}
}

// TestAuthorizer checks decisions against Kafka's documented rules.
func TestAuthorizer(t *testing.T) {
	bindings := []Binding{
		bind(topic, "orders", literal, "User:alice", "*", kmsg.ACLOperationWrite, allow),
		bind(group, "billing", literal, "User:alice", "*", kmsg.ACLOperationRead, allow),
		bind(topic, "audit-", prefix, "User:bob", "*", kmsg.ACLOperationRead, allow),
		bind(topic, "audit-secret", literal, "User:bob", "*", kmsg.ACLOperationAll, deny),
		bind(topic, "public", literal, "User:*", "*", kmsg.ACLOperationRead, allow),
		bind(topic, "*", literal, "User:carol", "*", kmsg.ACLOperationDescribe, allow),
		bind(topic, "lab", literal, "User:dave", "10.0.0.1", kmsg.ACLOperationAll, allow),
		bind(topic, "configs", literal, "User:erin", "*", kmsg.ACLOperationAlterConfigs, allow),
		bind(topic, "mixed", literal, "User:frank", "*", kmsg.ACLOperationAll, allow),
		bind(topic, "mixed", literal, "User:frank", "*", kmsg.ACLOperationWrite, deny),
		bind(topic, "", prefix, "User:*", "*", kmsg.ACLOperationDelete, deny), // "" prefixes every name
		bind(cluster, ClusterName, literal, "User:ops", "*", kmsg.ACLOperationAlter, allow),
	}
	for _, open := range []bool{false, true} {
		a := NewAuthorizer(bindings, []string{"User:admin"}, open)
		for _, c := range []struct {
			who, host string
			op        kmsg.ACLOperation
			rt        kmsg.ACLResourceType
			name      string
			want      bool
		}{
			{"User:alice", "1.2.3.4", kmsg.ACLOperationWrite, topic, "orders", true},
			{"User:alice", "1.2.3.4", kmsg.ACLOperationDescribe, topic, "orders", true}, // WRITE implies DESCRIBE
			{"User:alice", "1.2.3.4", kmsg.ACLOperationRead, topic, "orders", false},
			{"User:bob", "1.2.3.4", kmsg.ACLOperationWrite, topic, "orders", false}, // others have ACLs on orders
			{"User:alice", "1.2.3.4", kmsg.ACLOperationRead, group, "billing", true},
			{"User:alice", "1.2.3.4", kmsg.ACLOperationRead, group, "other", open}, // no ACL on the group
			{"User:bob", "1.2.3.4", kmsg.ACLOperationRead, topic, "audit-2026", true},
			{"User:bob", "1.2.3.4", kmsg.ACLOperationDescribe, topic, "audit-2026", true},
			{"User:bob", "1.2.3.4", kmsg.ACLOperationWrite, topic, "audit-2026", false},
			{"User:bob", "1.2.3.4", kmsg.ACLOperationRead, topic, "audit-secret", false}, // deny beats the prefixed allow
			{"User:bob", "1.2.3.4", kmsg.ACLOperationRead, topic, "audit", false},        // not under the prefix; others' ACLs (the "" deny) exist
			{"User:anyone", "1.2.3.4", kmsg.ACLOperationRead, topic, "public", true},
			{"User:anyone", "1.2.3.4", kmsg.ACLOperationWrite, topic, "public", false},
			{"User:carol", "1.2.3.4", kmsg.ACLOperationDescribe, topic, "orders", true}, // literal *
			{"User:carol", "1.2.3.4", kmsg.ACLOperationRead, topic, "orders", false},
			{"User:dave", "10.0.0.1", kmsg.ACLOperationWrite, topic, "lab", true},
			{"User:dave", "10.0.0.2", kmsg.ACLOperationWrite, topic, "lab", false}, // another host
			{"User:erin", "1.2.3.4", kmsg.ACLOperationDescribeConfigs, topic, "configs", true},
			{"User:erin", "1.2.3.4", kmsg.ACLOperationDescribe, topic, "configs", false}, // ALTER_CONFIGS implies only DESCRIBE_CONFIGS
			{"User:frank", "1.2.3.4", kmsg.ACLOperationRead, topic, "mixed", true},
			{"User:frank", "1.2.3.4", kmsg.ACLOperationWrite, topic, "mixed", false},
			{"User:frank", "1.2.3.4", kmsg.ACLOperationDelete, topic, "mixed", false}, // the "" prefixed deny
			{"User:admin", "1.2.3.4", kmsg.ACLOperationDelete, topic, "mixed", true},  // super user
			{"User:ops", "1.2.3.4", kmsg.ACLOperationAlter, cluster, ClusterName, true},
			{"User:ops", "1.2.3.4", kmsg.ACLOperationDescribe, cluster, ClusterName, true},
			{"User:alice", "1.2.3.4", kmsg.ACLOperationAlter, cluster, ClusterName, false},
			{"User:alice", "1.2.3.4", kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, "tx", open}, // no such ACLs at all
		} {
			if got := a.Allowed(c.who, c.host, c.op, c.rt, c.name); got != c.want {
				t.Errorf("open=%v: %s from %s %s %s %q: %v, want %v", open, c.who, c.host, c.op, c.rt, c.name, got, c.want)
			}
		}
		if !a.AnyAllowed("User:alice", "h", kmsg.ACLOperationWrite, topic) || a.AnyAllowed("User:bob", "h", kmsg.ACLOperationWrite, topic) {
			t.Error("AnyAllowed: alice may write some topic, bob none")
		}
	}
}

func TestFilters(t *testing.T) {
	bs := []Binding{
		bind(topic, "orders", literal, "User:alice", "*", kmsg.ACLOperationWrite, allow),
		bind(topic, "*", literal, "User:carol", "*", kmsg.ACLOperationDescribe, allow),
		bind(topic, "ord", prefix, "User:bob", "*", kmsg.ACLOperationRead, allow),
		bind(topic, "x", prefix, "User:bob", "*", kmsg.ACLOperationRead, allow),
		bind(group, "orders", literal, "User:alice", "*", kmsg.ACLOperationRead, allow),
	}
	str := func(s string) *string { return &s }
	for _, c := range []struct {
		f    Filter
		want []int
	}{
		{Filter{ResourceType: kmsg.ACLResourceTypeAny, Pattern: kmsg.ACLResourcePatternTypeAny, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}, []int{0, 1, 2, 3, 4}},
		{Filter{ResourceType: topic, ResourceName: str("orders"), Pattern: kmsg.ACLResourcePatternTypeMatch, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}, []int{0, 1, 2}},
		{Filter{ResourceType: topic, ResourceName: str("orders"), Pattern: literal, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}, []int{0}},
		{Filter{ResourceType: topic, ResourceName: str("ord"), Pattern: prefix, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}, []int{2}},
		{Filter{ResourceType: kmsg.ACLResourceTypeAny, ResourceName: str("orders"), Pattern: kmsg.ACLResourcePatternTypeAny, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}, []int{0, 4}},
		{Filter{ResourceType: kmsg.ACLResourceTypeAny, Pattern: kmsg.ACLResourcePatternTypeAny, Principal: str("User:bob"), Operation: kmsg.ACLOperationRead, Permission: allow}, []int{2, 3}},
	} {
		var got []int
		for i, b := range bs {
			if c.f.Matches(b) {
				got = append(got, i)
			}
		}
		if len(got) != len(c.want) {
			t.Errorf("filter %+v matched %v, want %v", c.f, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("filter %+v matched %v, want %v", c.f, got, c.want)
			}
		}
	}
	if (Filter{ResourceType: topic}).Validate() == nil {
		t.Error("a filter with UNKNOWN pattern, operation and permission validated")
	}
}

func TestValidate(t *testing.T) {
	good := bind(topic, "orders", literal, "User:alice", "*", kmsg.ACLOperationWrite, allow)
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Binding){
		"any resource type":  func(b *Binding) { b.ResourceType = kmsg.ACLResourceTypeAny },
		"match pattern":      func(b *Binding) { b.Pattern = kmsg.ACLResourcePatternTypeMatch },
		"any operation":      func(b *Binding) { b.Operation = kmsg.ACLOperationAny },
		"operation 99":       func(b *Binding) { b.Operation = 99 },
		"any permission":     func(b *Binding) { b.Permission = kmsg.ACLPermissionTypeAny },
		"empty name":         func(b *Binding) { b.ResourceName = "" },
		"cluster misnamed":   func(b *Binding) { b.ResourceType, b.ResourceName = cluster, "c" },
		"prefixed *":         func(b *Binding) { b.Pattern, b.ResourceName = prefix, "*" },
		"principal no type":  func(b *Binding) { b.Principal = "alice" },
		"principal no name":  func(b *Binding) { b.Principal = "User:" },
		"empty host":         func(b *Binding) { b.Host = "" },
		"NUL in a principal": func(b *Binding) { b.Principal = "User:a\x00b" },
	} {
		b := good
		mod(&b)
		if b.Validate() == nil {
			t.Errorf("%s: validated", name)
		}
	}
}

// BenchmarkAllowedProduce is the check a produce makes per topic (WRITE),
// against a realistic set of bindings: compare with BenchmarkBaseline,
// the same loop deciding nothing.
func BenchmarkAllowedProduce(b *testing.B) {
	var bs []Binding
	for i := range 200 {
		bs = append(bs, bind(topic, "topic-"+string(rune('a'+i%26))+string(rune('a'+i/26)), literal, "User:svc", "*", kmsg.ACLOperationWrite, allow))
	}
	bs = append(bs, bind(topic, "audit-", prefix, "User:bob", "*", kmsg.ACLOperationRead, allow),
		bind(topic, "logs-", prefix, "User:svc", "*", kmsg.ACLOperationWrite, allow))
	a := NewAuthorizer(bs, []string{"User:admin"}, false)
	b.ReportAllocs()
	for b.Loop() {
		if !a.Allowed("User:svc", "10.1.2.3", kmsg.ACLOperationWrite, topic, "topic-qa") {
			b.Fatal("denied")
		}
	}
}
