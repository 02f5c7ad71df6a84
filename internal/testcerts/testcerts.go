// Package testcerts makes a test certificate authority, server and client
// certificates, for tests of TLS.
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Certs is a test certificate authority with a server certificate for
// loopback and client certificates, in memory and as PEM files.
type Certs struct {
	Dir string
	CA  *x509.CertPool
	// CAFile, ServerCert and ServerKey are PEM files.
	CAFile, ServerCert, ServerKey string
	Server                        tls.Certificate

	t      testing.TB
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial int64
}

// New makes a CA and a server certificate valid for 127.0.0.1,
// ::1 and localhost, written under a temporary directory.
func New(t testing.TB) *Certs {
	t.Helper()
	c := &Certs{t: t, Dir: t.TempDir(), serial: 1}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "strata test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if c.caCert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	c.caKey = key
	c.CA = x509.NewCertPool()
	c.CA.AddCert(c.caCert)
	c.CAFile = c.write("ca.pem", pemBlock("CERTIFICATE", der))
	c.Server, c.ServerCert, c.ServerKey = c.issue("server", pkix.Name{CommonName: "localhost"}, time.Now().Add(24*time.Hour), true)
	return c
}

// Client issues a client certificate for subject; expired makes one
// whose validity ended an hour ago. It returns the certificate and its
// PEM files.
func (c *Certs) Client(subject pkix.Name, expired bool) (tls.Certificate, string, string) {
	c.t.Helper()
	notAfter := time.Now().Add(24 * time.Hour)
	if expired {
		notAfter = time.Now().Add(-time.Hour)
	}
	c.serial++
	return c.issue("client-"+big.NewInt(c.serial).String(), subject, notAfter, false)
}

func (c *Certs) issue(name string, subject pkix.Name, notAfter time.Time, server bool) (tls.Certificate, string, string) {
	c.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		c.t.Fatal(err)
	}
	c.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(c.serial), Subject: subject,
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.caCert, &key.PublicKey, c.caKey)
	if err != nil {
		c.t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		c.t.Fatal(err)
	}
	certPEM, keyPEM := pemBlock("CERTIFICATE", der), pemBlock("EC PRIVATE KEY", keyDER)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		c.t.Fatal(err)
	}
	return pair, c.write(name+".pem", certPEM), c.write(name+"-key.pem", keyPEM)
}

// ServerTLS is a server configuration; clientCA asks for and verifies a
// client certificate (mTLS).
func (c *Certs) ServerTLS(clientCA bool) *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{c.Server}, MinVersion: tls.VersionTLS12}
	if clientCA {
		cfg.ClientCAs, cfg.ClientAuth = c.CA, tls.RequireAndVerifyClientCert
	}
	return cfg
}

// ClientTLS is a client configuration trusting the CA, presenting certs.
func (c *Certs) ClientTLS(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: c.CA, Certificates: certs, MinVersion: tls.VersionTLS12}
}

func (c *Certs) write(name string, b []byte) string {
	p := filepath.Join(c.Dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		c.t.Fatal(err)
	}
	return p
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
