package gateway_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/strata-io/strata/testenv"
)

// TestKcat drives the gateway with librdkafka through kcat: metadata,
// produce with keys (auto-creating the topic) and consume.
func TestKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not installed (Debian: apt-get install kcat)")
	}
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
