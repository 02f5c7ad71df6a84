package auth

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/xdg-go/scram"
)

// Lookup returns user's stored credential for a SCRAM mechanism; ok is
// false when the user has none for it.
type Lookup func(user, mechanism string) (c Credential, ok bool)

// ErrAuthFailed is a failed authentication: an unknown user or a wrong
// password, which the client is not told apart.
var ErrAuthFailed = errors.New("authentication failed: invalid username or password")

// ErrMalformed is a SASL message that does not parse.
var ErrMalformed = errors.New("malformed SASL message")

// Exchange is one SASL authentication on a connection: Step each client
// message until Done. A failed Step ends it.
type Exchange struct {
	mech   string
	lookup Lookup
	conv   *scram.ServerConversation // SCRAM
	user   string
	done   bool
}

// NewExchange starts an exchange for mech.
func NewExchange(mech string, lookup Lookup) (*Exchange, error) {
	x := &Exchange{mech: mech, lookup: lookup}
	switch mech {
	case Plain:
		return x, nil
	case ScramSHA256, ScramSHA512:
		h := scram.SHA256
		if mech == ScramSHA512 {
			h = scram.SHA512
		}
		srv, err := h.NewServer(func(user string) (scram.StoredCredentials, error) {
			c, ok := lookup(user, mech)
			if !ok {
				return scram.StoredCredentials{}, ErrAuthFailed
			}
			return scram.StoredCredentials{KeyFactors: scram.KeyFactors{Salt: string(c.Salt), Iters: c.Iterations},
				StoredKey: c.StoredKey, ServerKey: c.ServerKey}, nil
		})
		if err != nil {
			return nil, err
		}
		x.conv = srv.NewConversation()
		return x, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownMechanism, mech)
}

// Mechanism is the exchange's mechanism.
func (x *Exchange) Mechanism() string { return x.mech }

// Done reports whether the client is authenticated.
func (x *Exchange) Done() bool { return x.done }

// User is the authenticated user, once Done (with SCRAM, the claimed one
// from the first message on).
func (x *Exchange) User() string { return x.user }

// Step takes the client's next message and returns the answer. The error
// is ErrAuthFailed or ErrMalformed (wrapped), and ends the exchange.
func (x *Exchange) Step(in []byte) ([]byte, error) {
	if x.done {
		return nil, fmt.Errorf("%w: the exchange is over", ErrMalformed)
	}
	if x.conv == nil {
		return nil, x.plain(in)
	}
	out, err := x.conv.Step(string(in))
	if x.user == "" {
		x.user = x.conv.Username()
	}
	if err != nil {
		if errors.Is(err, ErrAuthFailed) || out == scram.ErrInvalidProof || out == scram.ErrUnknownUser {
			return nil, ErrAuthFailed
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if x.conv.Done() {
		if !x.conv.Valid() {
			return nil, ErrAuthFailed
		}
		x.done = true
	}
	return []byte(out), nil
}

// dummy is checked against when a PLAIN user is unknown, so that an
// unknown user costs the same time as a wrong password.
var dummy = sync.OnceValue(func() Credential {
	c, _ := NewCredential(ScramSHA256, "unknown user", DefaultIterations)
	return c
})

// plain checks a PLAIN message: [authzid] NUL authcid NUL password.
func (x *Exchange) plain(in []byte) error {
	parts := bytes.Split(in, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 {
		return fmt.Errorf("%w: PLAIN wants authzid NUL user NUL password", ErrMalformed)
	}
	authz, user, password := string(parts[0]), string(parts[1]), string(parts[2])
	if authz != "" && authz != user {
		return fmt.Errorf("%w: authorization id %q differs from user %q", ErrAuthFailed, authz, user)
	}
	c, ok := x.lookup(user, ScramSHA256)
	if !ok {
		c, ok = x.lookup(user, ScramSHA512)
	}
	if !ok {
		dummy().CheckPassword(password)
		return ErrAuthFailed
	}
	if !c.CheckPassword(password) {
		return ErrAuthFailed
	}
	x.user, x.done = user, true
	return nil
}
