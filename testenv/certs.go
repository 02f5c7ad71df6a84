package testenv

import (
	"testing"

	"github.com/strata-io/strata/internal/testcerts"
)

// Certs is a test certificate authority with server and client
// certificates (internal/testcerts).
type Certs = testcerts.Certs

// NewCerts makes a CA and a loopback server certificate.
func NewCerts(t testing.TB) *Certs { return testcerts.New(t) }
