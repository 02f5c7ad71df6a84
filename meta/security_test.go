package meta

import (
	"reflect"
	"testing"
)

// TestScramCredentials: credentials are set, replaced, deleted and
// listed; a bad one is refused whole.
func TestScramCredentials(t *testing.T) {
	a := &applier{t: t, f: openTestFSM(t, t.TempDir())}
	cred := func(user, mech string, salt byte) ScramCredential {
		return ScramCredential{User: user, Mechanism: mech, Iterations: 4096, Salt: []byte{salt}, StoredKey: []byte{2}, ServerKey: []byte{3}}
	}
	list := func() []ScramCredential {
		t.Helper()
		v := a.f.View()
		defer v.Close()
		cs, err := v.ScramCredentials()
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	a.mustApply(&AlterScramCredentials{Upserts: []ScramCredential{
		cred("alice", "SCRAM-SHA-256", 1), cred("alice", "SCRAM-SHA-512", 1), cred("bob", "SCRAM-SHA-512", 1)}})
	a.mustApply(&AlterScramCredentials{Upserts: []ScramCredential{cred("alice", "SCRAM-SHA-256", 9)},
		Deletes: []CredentialRef{{User: "bob", Mechanism: "SCRAM-SHA-512"}, {User: "carol", Mechanism: "SCRAM-SHA-256"}}})
	want := []ScramCredential{cred("alice", "SCRAM-SHA-256", 9), cred("alice", "SCRAM-SHA-512", 1)}
	if got := list(); !reflect.DeepEqual(got, want) {
		t.Fatalf("credentials:\n got %+v\nwant %+v", got, want)
	}
	// A prefix of a user's name is another user.
	a.mustApply(&AlterScramCredentials{Upserts: []ScramCredential{cred("al", "SCRAM-SHA-256", 4)}})
	if got := list(); len(got) != 3 || got[0].User != "al" {
		t.Fatalf("credentials after adding al: %+v", got)
	}
	// OnlyIfAbsent creates a user that has nothing, and leaves one that
	// has any credential as it is.
	res := a.apply(&AlterScramCredentials{OnlyIfAbsent: true, Upserts: []ScramCredential{
		cred("admin", "SCRAM-SHA-256", 5), cred("admin", "SCRAM-SHA-512", 5), cred("alice", "SCRAM-SHA-256", 5)}})[0]
	if res.Err != nil || res.Value != 1 {
		t.Fatalf("bootstrap of admin and alice: %v, %d created, want 1", res.Err, res.Value)
	}
	got := list()
	if len(got) != 5 || got[0].User != "admin" || got[1].User != "admin" || got[3].Salt[0] != 9 {
		t.Fatalf("after the bootstrap: %+v", got)
	}
	a.mustApply(&AlterScramCredentials{Deletes: []CredentialRef{{User: "admin", Mechanism: "SCRAM-SHA-256"}, {User: "admin", Mechanism: "SCRAM-SHA-512"}}})
	for _, bad := range []*AlterScramCredentials{
		{Upserts: []ScramCredential{cred("", "SCRAM-SHA-256", 1)}},
		{Upserts: []ScramCredential{cred("x\x00y", "SCRAM-SHA-256", 1)}},
		{Upserts: []ScramCredential{cred("dave", "SCRAM-SHA-1", 1)}},
		{Upserts: []ScramCredential{{User: "dave", Mechanism: "SCRAM-SHA-256", Iterations: 4096}}},
		{Upserts: []ScramCredential{cred("dave", "SCRAM-SHA-256", 1)}, Deletes: []CredentialRef{{User: "", Mechanism: "SCRAM-SHA-256"}}},
	} {
		a.wantErr(ErrInvalidRequest, bad)
	}
	if got := list(); len(got) != 3 {
		t.Fatalf("a refused command changed the credentials: %+v", got)
	}
}

// TestACLs: ACLs are stored once each, listed, deleted exactly.
func TestACLs(t *testing.T) {
	a := &applier{t: t, f: openTestFSM(t, t.TempDir())}
	write := ACL{ResourceType: 2, ResourceName: "orders", PatternType: 3, Principal: "User:alice", Host: "*", Operation: 4, Permission: 3}
	read := write
	read.Operation = 3
	prefixed := write
	prefixed.PatternType, prefixed.ResourceName = 4, "ord"
	a.mustApply(&CreateAcls{ACLs: []ACL{write, read}}, &CreateAcls{ACLs: []ACL{write, prefixed}})
	list := func() []ACL {
		v := a.f.View()
		defer v.Close()
		as, err := v.ACLs()
		if err != nil {
			t.Fatal(err)
		}
		return as
	}
	if got := list(); len(got) != 3 {
		t.Fatalf("ACLs: %+v", got)
	}
	res := a.apply(&DeleteAcls{ACLs: []ACL{read, read, {ResourceType: 3, ResourceName: "x", PatternType: 3, Principal: "User:a", Host: "*", Operation: 3, Permission: 3}}})[0]
	if res.Err != nil || res.Value != 1 {
		t.Fatalf("delete: %v, %d removed, want 1", res.Err, res.Value)
	}
	if got := list(); len(got) != 2 || !reflect.DeepEqual(got[0], write) && !reflect.DeepEqual(got[1], write) {
		t.Fatalf("after the delete: %+v", got)
	}
	bad := write
	bad.Host = ""
	a.wantErr(ErrInvalidRequest, &CreateAcls{ACLs: []ACL{read, bad}})
	if got := list(); len(got) != 2 {
		t.Fatalf("a refused create stored something: %+v", got)
	}
}
