package gateway_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/strata-io/strata/testenv"
)

// TestKcat drives the gateway with librdkafka through kcat: metadata,
// produce with keys (auto-creating the topic) and consume.
func TestKcat(t *testing.T) {
	kcat := kcatPath(t)
	c := testenv.InProcess(t, 1, testenv.Options{AutoCreateTopics: true})
	run := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(kcat, append([]string{"-b", c.Addr()}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kcat %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("k1:hello\nk2:world\nk1:again\n", "-P", "-t", "greetings", "-K:")
	out := run("", "-C", "-t", "greetings", "-o", "beginning", "-e", "-q", "-f", "%k=%s@%o\n")
	if out != "k1=hello@0\nk2=world@1\nk1=again@2\n" {
		t.Fatalf("consumed:\n%s", out)
	}
	if strings.Contains(out, "PROTOERR") {
		t.Fatalf("librdkafka reported a protocol error:\n%s", out)
	}
	meta := run("", "-L", "-t", "greetings")
	if !strings.Contains(meta, `topic "greetings" with 1 partitions`) {
		t.Fatalf("metadata:\n%s", meta)
	}
}

// kcatPath is kcat: the one make test unpacks (STRATA_KCAT), or one on
// the PATH; the test skips without either.
func kcatPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("STRATA_KCAT"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not here: make kcat unpacks Debian's (or apt-get install kcat)")
	}
	return p
}

// TestKcatSASLSSL: librdkafka connects over SASL_SSL with SCRAM-SHA-512,
// produces and consumes; a wrong password fails.
func TestKcatSASLSSL(t *testing.T) {
	kcat := kcatPath(t)
	gw, certs := tlsCluster(t)
	ext := gw.ListenerAddr("EXTERNAL")
	run := func(stdin, password string, args ...string) (string, error) {
		t.Helper()
		base := []string{"-b", ext, "-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-512",
			"-X", "sasl.username=alice", "-X", "sasl.password=" + password, "-X", "ssl.ca.location=" + certs.CAFile,
			"-X", "topic.metadata.refresh.interval.ms=1000"}
		cmd := exec.Command(kcat, append(base, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("k1:hello\nk2:world\n", "alice-secret", "-P", "-t", "kcat-scram", "-K:"); err != nil {
		t.Fatalf("kcat produce over SASL_SSL: %v\n%s", err, out)
	}
	out, err := run("", "alice-secret", "-C", "-t", "kcat-scram", "-o", "beginning", "-e", "-q", "-m", "20", "-f", "%k=%s\n")
	if err != nil || out != "k1=hello\nk2=world\n" {
		t.Fatalf("kcat consume over SASL_SSL: %v\n%s", err, out)
	}
	if out, err := run("", "wrong", "-L", "-m", "3"); err == nil || !strings.Contains(out, "uthentication") {
		t.Fatalf("kcat with a wrong password: %v\n%s", err, out)
	}
}
