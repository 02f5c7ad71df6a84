package meta

import (
	"fmt"
	"strings"
)

// Security state: SCRAM credentials (salted and hashed as RFC 5802 has a
// server keep them; never a password), kept in the metadata so every
// gateway authenticates against the same users.

// ScramCredential is one user's credential for one SCRAM mechanism.
type ScramCredential struct {
	User       string `json:"user"`
	Mechanism  string `json:"mechanism"` // SCRAM-SHA-256 or SCRAM-SHA-512
	Iterations int32  `json:"iterations"`
	Salt       []byte `json:"salt"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
}

// CredentialRef names one user's credential for one mechanism.
type CredentialRef struct {
	User      string
	Mechanism string
}

// AlterScramCredentials sets and deletes SCRAM credentials
// (AlterUserScramCredentials). Deleting a credential that is not there is
// not an error: the gateway answers RESOURCE_NOT_FOUND from its view.
//
// OnlyIfAbsent upserts only users that have no credential at all (the
// bootstrap user: several nodes may offer it, and a password changed
// since must stay); the result's Value is the number of users created.
type AlterScramCredentials struct {
	Upserts      []ScramCredential
	Deletes      []CredentialRef
	OnlyIfAbsent bool
}

const (
	TypeAlterScramCredentials CommandType = 17
)

const keyCredential = "u/" // u/<user>\x00<mechanism>

func credentialKey(user, mech string) []byte {
	return append(append(append([]byte(keyCredential), user...), 0), mech...)
}

func (AlterScramCredentials) Type() CommandType { return TypeAlterScramCredentials }

func (c *ScramCredential) encodeTo(e *encoder) {
	e.string(c.User)
	e.string(c.Mechanism)
	e.varint(int64(c.Iterations))
	e.bytes(c.Salt)
	e.bytes(c.StoredKey)
	e.bytes(c.ServerKey)
}

func (c *ScramCredential) decode(d *decoder) {
	c.User, c.Mechanism, c.Iterations = d.string(), d.string(), d.int32()
	c.Salt, c.StoredKey, c.ServerKey = d.bytesCopy(), d.bytesCopy(), d.bytesCopy()
}

func (c *ScramCredential) encode() []byte {
	e := encoder{}
	e.byte(stateVersion)
	c.encodeTo(&e)
	return e.b
}

func decodeScramCredential(b []byte) (ScramCredential, error) {
	d := decoder{b: b}
	var c ScramCredential
	if v := d.byte(); v != stateVersion {
		return c, fmt.Errorf("%w: credential record version %d", ErrUnknownCommand, v)
	}
	c.decode(&d)
	return c, d.finish("credential")
}

func (c *AlterScramCredentials) encode(e *encoder) {
	e.uvarint(uint64(len(c.Upserts)))
	for i := range c.Upserts {
		c.Upserts[i].encodeTo(e)
	}
	e.uvarint(uint64(len(c.Deletes)))
	for _, r := range c.Deletes {
		e.string(r.User)
		e.string(r.Mechanism)
	}
	e.bool(c.OnlyIfAbsent)
}

func (c *AlterScramCredentials) decode(d *decoder) {
	if n := d.length(); n > 0 {
		c.Upserts = make([]ScramCredential, n)
		for i := range c.Upserts {
			c.Upserts[i].decode(d)
		}
	}
	if n := d.length(); n > 0 {
		c.Deletes = make([]CredentialRef, n)
		for i := range c.Deletes {
			c.Deletes[i] = CredentialRef{User: d.string(), Mechanism: d.string()}
		}
	}
	c.OnlyIfAbsent = d.bool()
}

// validCredentialName rejects what cannot be a key: an empty user, or a
// NUL in either part.
func validCredentialName(user, mech string) error {
	switch {
	case user == "":
		return fmt.Errorf("%w: empty user name", ErrInvalidRequest)
	case strings.ContainsRune(user, 0) || strings.ContainsRune(mech, 0):
		return fmt.Errorf("%w: NUL in a user or mechanism name", ErrInvalidRequest)
	case mech != "SCRAM-SHA-256" && mech != "SCRAM-SHA-512":
		return fmt.Errorf("%w: mechanism %q", ErrInvalidRequest, mech)
	}
	return nil
}

func (w *writer) alterScramCredentials(c *AlterScramCredentials) (*ApplyResult, error) {
	for _, u := range c.Upserts {
		if err := validCredentialName(u.User, u.Mechanism); err != nil {
			return rejected(err)
		}
		if u.Iterations <= 0 || len(u.Salt) == 0 || len(u.StoredKey) == 0 || len(u.ServerKey) == 0 {
			return rejected(fmt.Errorf("%w: credential of %q lacks iterations, salt or keys", ErrInvalidRequest, u.User))
		}
	}
	for _, r := range c.Deletes {
		if err := validCredentialName(r.User, r.Mechanism); err != nil {
			return rejected(err)
		}
	}
	for _, r := range c.Deletes {
		if err := w.delete(credentialKey(r.User, r.Mechanism)); err != nil {
			return nil, err
		}
	}
	created := map[string]bool{}
	for i := range c.Upserts {
		u := &c.Upserts[i]
		if c.OnlyIfAbsent && !created[u.User] {
			if len(w.keys(append(append([]byte(keyCredential), u.User...), 0))) > 0 {
				continue
			}
			created[u.User] = true
		}
		if err := w.set(credentialKey(u.User, u.Mechanism), u.encode()); err != nil {
			return nil, err
		}
	}
	return &ApplyResult{Value: int64(len(created))}, nil
}

// ScramCredentials lists every stored credential, by user then mechanism.
func (v *View) ScramCredentials() ([]ScramCredential, error) {
	return listRecords(v.txn, []byte(keyCredential), decodeScramCredential)
}

// ACL is one Kafka ACL binding, with Kafka's wire numbers (see package
// acl, which gives them meaning; the gateway validates them).
type ACL struct {
	ResourceType int8   `json:"resource_type"`
	ResourceName string `json:"resource_name"`
	PatternType  int8   `json:"pattern_type"`
	Principal    string `json:"principal"`
	Host         string `json:"host"`
	Operation    int8   `json:"operation"`
	Permission   int8   `json:"permission"`
}

// CreateAcls stores bindings; one already there is left as it is.
type CreateAcls struct{ ACLs []ACL }

// DeleteAcls removes bindings (exactly these; the gateway matched the
// filters); one not there is skipped. Value is the number removed.
type DeleteAcls struct{ ACLs []ACL }

const (
	TypeCreateAcls CommandType = 18
	TypeDeleteAcls CommandType = 19
)

const keyACL = "l/" // l/<type><pattern><name>\x00<principal>\x00<host>\x00<op><permission>

func aclKey(a *ACL) []byte {
	k := append([]byte(keyACL), byte(a.ResourceType), byte(a.PatternType))
	k = append(append(k, a.ResourceName...), 0)
	k = append(append(k, a.Principal...), 0)
	k = append(append(k, a.Host...), 0)
	return append(k, byte(a.Operation), byte(a.Permission))
}

func (a *ACL) encodeTo(e *encoder) {
	e.varint(int64(a.ResourceType))
	e.string(a.ResourceName)
	e.varint(int64(a.PatternType))
	e.string(a.Principal)
	e.string(a.Host)
	e.varint(int64(a.Operation))
	e.varint(int64(a.Permission))
}

func (a *ACL) decode(d *decoder) {
	a.ResourceType = int8(d.varint())
	a.ResourceName = d.string()
	a.PatternType = int8(d.varint())
	a.Principal, a.Host = d.string(), d.string()
	a.Operation, a.Permission = int8(d.varint()), int8(d.varint())
}

func (a *ACL) encode() []byte {
	e := encoder{}
	e.byte(stateVersion)
	a.encodeTo(&e)
	return e.b
}

func decodeACL(b []byte) (ACL, error) {
	d := decoder{b: b}
	var a ACL
	if v := d.byte(); v != stateVersion {
		return a, fmt.Errorf("%w: ACL record version %d", ErrUnknownCommand, v)
	}
	a.decode(&d)
	return a, d.finish("ACL")
}

func encodeACLs(e *encoder, as []ACL) {
	e.uvarint(uint64(len(as)))
	for i := range as {
		as[i].encodeTo(e)
	}
}

func decodeACLs(d *decoder) []ACL {
	n := d.length()
	if n == 0 {
		return nil
	}
	as := make([]ACL, n)
	for i := range as {
		as[i].decode(d)
	}
	return as
}

func (CreateAcls) Type() CommandType    { return TypeCreateAcls }
func (c *CreateAcls) encode(e *encoder) { encodeACLs(e, c.ACLs) }
func (c *CreateAcls) decode(d *decoder) { c.ACLs = decodeACLs(d) }
func (DeleteAcls) Type() CommandType    { return TypeDeleteAcls }
func (c *DeleteAcls) encode(e *encoder) { encodeACLs(e, c.ACLs) }
func (c *DeleteAcls) decode(d *decoder) { c.ACLs = decodeACLs(d) }

// validACL rejects what cannot be a key: empty names, NUL.
func validACL(a *ACL) error {
	if a.ResourceName == "" || a.Principal == "" || a.Host == "" {
		return fmt.Errorf("%w: ACL with an empty resource name, principal or host", ErrInvalidRequest)
	}
	if strings.ContainsRune(a.ResourceName+a.Principal+a.Host, 0) {
		return fmt.Errorf("%w: NUL in an ACL", ErrInvalidRequest)
	}
	return nil
}

func (w *writer) createAcls(c *CreateAcls) (*ApplyResult, error) {
	for i := range c.ACLs {
		if err := validACL(&c.ACLs[i]); err != nil {
			return rejected(err)
		}
	}
	for i := range c.ACLs {
		if err := w.set(aclKey(&c.ACLs[i]), c.ACLs[i].encode()); err != nil {
			return nil, err
		}
	}
	return &ApplyResult{}, nil
}

func (w *writer) deleteAcls(c *DeleteAcls) (*ApplyResult, error) {
	n := 0
	for i := range c.ACLs {
		k := aclKey(&c.ACLs[i])
		if len(w.keys(k)) == 0 {
			continue
		}
		if err := w.delete(k); err != nil {
			return nil, err
		}
		n++
	}
	return &ApplyResult{Value: int64(n)}, nil
}

// ACLs lists every stored ACL.
func (v *View) ACLs() ([]ACL, error) { return listRecords(v.txn, []byte(keyACL), decodeACL) }
