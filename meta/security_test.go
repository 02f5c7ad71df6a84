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
