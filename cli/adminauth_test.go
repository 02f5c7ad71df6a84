package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-io/strata/testenv"
)

// runDevAdmin runs strata dev with its admin address on every interface
// (not loopback) and the given admin security until the test ends; it
// returns the admin port.
func runDevAdmin(t *testing.T, sec adminSecurity) string {
	t.Helper()
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan string, 1)
	go func() {
		done <- runDev(ctx, devConfig{dataDir: t.TempDir(), kafkaAddr: "127.0.0.1:0", raftAddr: freeAddr(t), adminAddr: "0.0.0.0:" + port,
			adminSec: sec, logger: slog.New(slog.DiscardHandler)}, func(a string) { ready <- a })
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("dev exited: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("dev not ready in 30s")
	}
	return port
}

// TestAdminSecurity: with TLS, a token and a read token, the admin
// address answers health checks to anyone, reads to the read or admin
// token, changes to the admin token or a client certificate; strata tier
// takes the same credentials. Without a token or client CA, changing
// endpoints answer only on loopback.
func TestAdminSecurity(t *testing.T) {
	certs := testenv.NewCerts(t)
	sec := adminSecurity{tls: certs.ServerTLS(false), token: "admin-T", readToken: "read-R"}
	sec.tls.ClientCAs, sec.tls.ClientAuth = certs.CA, tls.VerifyClientCertIfGiven
	port := runDevAdmin(t, sec)
	base := "https://127.0.0.1:" + port
	alice, certFile, keyFile := certs.Client(pkix.Name{CommonName: "ops"}, false)
	basic, _ := http.NewRequest("GET", base+"/", nil)
	basic.SetBasicAuth("anyone", "read-R")
	if resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: certs.ClientTLS()}}).Do(basic); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the console with the read token as a basic-auth password: %v %v", err, resp)
	}
	call := func(method, path, token string, withCert bool) int {
		t.Helper()
		cfg := certs.ClientTLS()
		if withCert {
			cfg = certs.ClientTLS(alice)
		}
		cl := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
		req, _ := http.NewRequest(method, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		method, path, token string
		cert                bool
		want                func(int) bool
	}{
		{"GET", "/healthz", "", false, is(200)},
		{"GET", "/readyz", "", false, is(200)},
		{"GET", "/v1/tier/status", "", false, is(401)},
		{"GET", "/metrics", "", false, is(401)},
		{"GET", "/v1/tier/status", "read-R", false, is(200)},
		{"GET", "/v1/tier/status", "admin-T", false, is(200)},
		{"GET", "/v1/tier/status", "wrong", false, is(401)},
		{"GET", "/metrics", "", true, is(200)},
		{"POST", "/v1/tier/restore?topic=nothing", "", false, is(401)},
		{"POST", "/v1/tier/restore?topic=nothing", "read-R", false, is(401)},
		{"POST", "/v1/tier/restore?topic=nothing", "admin-T", false, not(401, 403)},
		{"POST", "/v1/tier/restore?topic=nothing", "", true, not(401, 403)},
	} {
		if got := call(c.method, c.path, c.token, c.cert); !c.want(got) {
			t.Errorf("%s %s (token %q, certificate %v): %d", c.method, c.path, c.token, c.cert, got)
		}
	}

	url := "--admin-url=" + base
	if _, errOut, code := strataCmd(t, "", "tier", "status", url, "--admin-tls-ca", certs.CAFile, "--admin-token", "read-R"); code != 0 {
		t.Fatalf("strata tier status with the read token: %s", errOut)
	}
	if _, errOut, code := strataCmd(t, "", "tier", "status", url, "--admin-tls-ca", certs.CAFile); code != 1 || !strings.Contains(errOut, "bearer token") {
		t.Fatalf("strata tier status without a token: exit %d, %q", code, errOut)
	}
	if _, errOut, code := strataCmd(t, "", "tier", "status", url, "--admin-tls-ca", certs.CAFile, "--admin-tls-cert", certFile, "--admin-tls-key", keyFile); code != 0 {
		t.Fatalf("strata tier status with a client certificate: %s", errOut)
	}

	// No token and no client CA: reads are open, changes refused off
	// loopback.
	open := runDevAdmin(t, adminSecurity{})
	resp, err := http.Get("http://127.0.0.1:" + open + "/v1/tier/status")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("an open read: %v %v", err, resp)
	}
	resp, err = http.Post("http://127.0.0.1:"+open+"/v1/tier/restore?topic=x", "", nil)
	if err != nil || resp.StatusCode != 403 {
		t.Fatalf("a change on a non-loopback admin address without a token: %v %v", err, resp)
	}
}

func is(code int) func(int) bool { return func(got int) bool { return got == code } }

func not(codes ...int) func(int) bool {
	return func(got int) bool {
		for _, c := range codes {
			if got == c {
				return false
			}
		}
		return true
	}
}
