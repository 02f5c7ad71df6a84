package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
)

// Mechanism names, as Kafka spells them.
const (
	Plain       = "PLAIN"
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
)

// Mechanisms are every mechanism this package speaks, in the order a
// handshake lists them.
var Mechanisms = []string{ScramSHA512, ScramSHA256, Plain}

// ScramMechanisms are the mechanisms a credential is stored for.
var ScramMechanisms = []string{ScramSHA256, ScramSHA512}

// Iteration bounds, as Kafka's: fewer is too cheap to attack, more too
// dear to check on every connection.
const (
	MinIterations     = 4096
	MaxIterations     = 16384
	DefaultIterations = 8192
)

// ErrUnknownMechanism is a mechanism this package does not speak.
var ErrUnknownMechanism = errors.New("unsupported SASL mechanism")

// ErrBadCredential is a credential that cannot be stored: iterations out
// of bounds, an empty salt or password.
var ErrBadCredential = errors.New("unacceptable credential")

// Credential is what is stored of one user's password for one SCRAM
// mechanism.
type Credential struct {
	Mechanism  string
	Iterations int
	Salt       []byte
	StoredKey  []byte
	ServerKey  []byte
}

// hashOf is the hash function of a SCRAM mechanism.
func hashOf(mech string) (func() hash.Hash, error) {
	switch mech {
	case ScramSHA256:
		return sha256.New, nil
	case ScramSHA512:
		return sha512.New, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownMechanism, mech)
}

// NewCredential derives a credential from a password, with a fresh
// random salt.
func NewCredential(mech, password string, iterations int) (Credential, error) {
	if password == "" {
		return Credential{}, fmt.Errorf("%w: empty password", ErrBadCredential)
	}
	h, err := hashOf(mech)
	if err != nil {
		return Credential{}, err
	}
	salt := make([]byte, 32)
	rand.Read(salt)
	if err := checkIterations(iterations); err != nil {
		return Credential{}, err
	}
	salted, err := pbkdf2.Key(h, password, salt, iterations, h().Size())
	if err != nil {
		return Credential{}, err
	}
	return FromSaltedPassword(mech, salt, salted, iterations)
}

// FromSaltedPassword derives a credential from a salted password, as
// AlterUserScramCredentials carries it (the client salts; the password
// never crosses the wire).
func FromSaltedPassword(mech string, salt, salted []byte, iterations int) (Credential, error) {
	h, err := hashOf(mech)
	if err != nil {
		return Credential{}, err
	}
	if err := checkIterations(iterations); err != nil {
		return Credential{}, err
	}
	if len(salt) == 0 || len(salted) == 0 {
		return Credential{}, fmt.Errorf("%w: empty salt or salted password", ErrBadCredential)
	}
	clientKey := mac(h, salted, "Client Key")
	stored := h()
	stored.Write(clientKey)
	return Credential{Mechanism: mech, Iterations: iterations, Salt: append([]byte(nil), salt...),
		StoredKey: stored.Sum(nil), ServerKey: mac(h, salted, "Server Key")}, nil
}

func checkIterations(n int) error {
	if n < MinIterations || n > MaxIterations {
		return fmt.Errorf("%w: %d iterations, want %d to %d", ErrBadCredential, n, MinIterations, MaxIterations)
	}
	return nil
}

func mac(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// CheckPassword reports whether password is the one c was derived from
// (PLAIN). It costs the credential's iterations of the hash.
func (c Credential) CheckPassword(password string) bool {
	h, err := hashOf(c.Mechanism)
	if err != nil || password == "" {
		return false
	}
	salted, err := pbkdf2.Key(h, password, c.Salt, c.Iterations, h().Size())
	if err != nil {
		return false
	}
	d, err := FromSaltedPassword(c.Mechanism, c.Salt, salted, c.Iterations)
	return err == nil && hmac.Equal(d.StoredKey, c.StoredKey)
}
