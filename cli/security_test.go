package cli

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// startSecureDev runs strata dev --secure and returns its Kafka address
// and log.
func startSecureDev(t *testing.T, dir, raftAddr string) (string, *syncBuffer, func()) {
	t.Helper()
	var log syncBuffer
	sec := devSecurity{bootUser: "admin", bootPassword: randomPassword(), generated: true,
		authz: authz{on: true, super: []string{"User:admin"}}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	readyCh := make(chan string, 1)
	go func() {
		done <- runDev(ctx, devConfig{dataDir: dir, kafkaAddr: "127.0.0.1:0", raftAddr: raftAddr,
			logger: slog.New(slog.NewTextHandler(&log, nil)), security: secureOn(sec, "127.0.0.1:0")}, func(a string) { readyCh <- a })
	}()
	stop := func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("dev did not stop within 10s")
		}
	}
	select {
	case addr := <-readyCh:
		return addr, &log, stop
	case err := <-done:
		t.Fatalf("dev exited before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("dev not ready within 30s")
	}
	return "", nil, nil
}

// secureOn is what --secure makes of a kafka address.
func secureOn(s devSecurity, kafkaAddr string) devSecurity {
	s.listeners = secureListeners(kafkaAddr)
	return s
}

// TestSecureDev: strata dev --secure prints a generated admin password
// once; with it, strata user creates a user who can then work; without
// credentials every command fails with one clear line; a restart keeps
// the admin's password and prints none.
func TestSecureDev(t *testing.T) {
	dir, raftAddr := t.TempDir(), freeAddr(t)
	addr, log, stop := startSecureDev(t, dir, raftAddr)
	password := printedPassword(t, log)
	b := "--brokers=" + addr
	admin := []string{b, "--sasl-mechanism", "SCRAM-SHA-256", "--sasl-user", "admin", "--sasl-password", password}
	must := func(args ...string) string {
		t.Helper()
		out, errOut, code := strataCmd(t, "", args...)
		if code != 0 {
			t.Fatalf("strata %v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	must(append([]string{"user", "create", "alice", "--password", "alice-secret"}, admin...)...)
	alice := []string{b, "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", "alice", "--sasl-password", "alice-secret"}
	// With ACLs on, alice may do nothing until granted.
	_, errOut, code := strataCmd(t, "", append([]string{"topic", "create", "orders"}, alice...)...)
	if code != 1 || !strings.Contains(errOut, "TOPIC_AUTHORIZATION_FAILED") {
		t.Fatalf("alice creates a topic without an ACL: exit %d, %q", code, errOut)
	}
	must(append([]string{"acl", "create", "--allow-principal", "User:alice", "--operation", "create", "--operation", "write",
		"--topic", "ord", "--resource-pattern-type", "prefixed"}, admin...)...)
	must(append([]string{"acl", "create", "--allow-principal", "User:alice", "--operation", "describe", "--cluster"}, admin...)...)
	must(append([]string{"topic", "create", "orders"}, alice...)...)
	out := must(append([]string{"acl", "list", "--allow-principal", "User:alice"}, admin...)...)
	if !strings.Contains(out, "PREFIXED") || !strings.Contains(out, "ord") || strings.Count(out, "User:alice") != 3 {
		t.Fatalf("acl list:\n%s", out)
	}
	out = must(append([]string{"user", "list"}, alice...)...)
	if !strings.Contains(out, "admin") || !strings.Contains(out, "alice") || !strings.Contains(out, "SCRAM-SHA-512 (8192 iterations)") {
		t.Fatalf("user list:\n%s", out)
	}
	_, errOut, code = strataCmd(t, "", "topic", "list", b, "--sasl-mechanism", "PLAIN", "--sasl-user", "alice", "--sasl-password", "wrong")
	if code != 1 || !strings.Contains(errOut, "SASL_AUTHENTICATION_FAILED") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("a wrong password: exit %d, %q", code, errOut)
	}
	if out := must(append([]string{"acl", "delete", "--allow-principal", "User:alice", "--cluster"}, admin...)...); !strings.Contains(out, "deleted 1 ACLs") {
		t.Fatalf("acl delete:\n%s", out)
	}
	must(append([]string{"user", "delete", "alice"}, admin...)...)
	if _, errOut, code = strataCmd(t, "", append([]string{"topic", "list"}, alice...)...); code != 1 {
		t.Fatalf("a deleted user still works: %q", errOut)
	}
	stop()

	// Again: the admin keeps its password, and none is printed.
	addr, log, stop = startSecureDev(t, dir, raftAddr)
	defer stop()
	admin[0] = "--brokers=" + addr
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(log.String(), "exists from an earlier run"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the restart did not say the admin exists:\n%s", log.String())
		}
	}
	if strings.Contains(log.String(), "password=") {
		t.Fatalf("a restart printed a password:\n%s", log.String())
	}
	must(append([]string{"topic", "list"}, admin...)...)
}

// TestKgoSCRAMSuite runs franz-go's own SCRAM integration tests
// (TestSCRAMAuth, TestSCRAMAuthBadCredentials, which skip unless
// KGO_TEST_SCRAM_SEEDS is set) against strata dev --secure, with
// SCRAM-SHA-256 and SCRAM-SHA-512.
func TestKgoSCRAMSuite(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goBin); err != nil {
			t.Skip("no go command to run franz-go's tests with")
		}
	}
	addr, log, stop := startSecureDev(t, t.TempDir(), freeAddr(t))
	defer stop()
	password := printedPassword(t, log)
	for _, alg := range []string{"256", "512"} {
		cmd := exec.Command(goBin, "test", "-count=1", "-v", "-run", "^(TestSCRAMAuth|TestSCRAMAuthBadCredentials)$", "github.com/twmb/franz-go/pkg/kgo")
		cmd.Env = append(os.Environ(), "GOFLAGS=", "KGO_SEEDS="+addr, "KGO_TEST_SCRAM_SEEDS="+addr, "KGO_TEST_SCRAM=admin:"+password+":"+alg)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("franz-go's SCRAM tests with SCRAM-SHA-%s: %v\n%s", alg, err, out)
		}
		for _, name := range []string{"TestSCRAMAuth", "TestSCRAMAuthBadCredentials"} {
			if !strings.Contains(string(out), "--- PASS: "+name+" ") {
				t.Fatalf("franz-go's %s did not pass (skipped?) with SCRAM-SHA-%s:\n%s", name, alg, out)
			}
		}
	}
}

// printedPassword waits (up to 10 s) for strata dev --secure to print
// its generated password, and returns it.
func printedPassword(t *testing.T, log *syncBuffer) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := regexp.MustCompile(`password=(\S+)`).FindStringSubmatch(log.String()); m != nil {
			return m[1]
		}
	}
	t.Fatalf("no password printed:\n%s", log.String())
	return ""
}
