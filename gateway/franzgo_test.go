package gateway_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/strata-io/strata/testenv"
)

// TestFranzGoIntegration runs franz-go's own integration tests of
// transactions, consumer groups and share groups (TestTxnEtl: a
// consume-transform-produce pipeline in transactions, checked for loss
// and duplicates; TestGroupETL, with its KIP-848 variants; TestConsumeRegex,
// which needs __consumer_offsets listed as internal; TestShareGroupETL, a
// three-level share-group pipeline with releases, rejections and killed
// consumers; the share-group offsets admin APIs) against a one-node Strata cluster (as strata dev) and,
// with STRATA_FRANZ_THREE_NODES set (make test-long), a three-node one
// (replication factor 3), from the franz-go module this project builds
// with. They need the go command, and the module's
// source in the module cache (go mod download puts it there).
func TestFranzGoIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("minutes long: not with -short")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to run franz-go's tests with")
	}
	out, err := exec.Command(goBin, "list", "-m", "-f", "{{.Dir}}", "github.com/twmb/franz-go").Output()
	src := strings.TrimSpace(string(out))
	if err != nil || src == "" {
		t.Skipf("franz-go's source is not in the module cache: %v", err)
	}
	// The module cache is read-only; the tests run from a copy.
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	nodes := []int{1}
	if os.Getenv("STRATA_FRANZ_THREE_NODES") != "" {
		nodes = append(nodes, 3) // minutes under the race detector: make test-long
	}
	for _, n := range nodes {
		t.Run(fmt.Sprintf("nodes=%d", n), func(t *testing.T) {
			// A controller change would lose the groups' members (the
			// coordinator keeps them in memory), which franz-go's tests
			// count as a failure: deployment timeouts keep the
			// controller in place on a loaded machine.
			c := testenv.InProcess(t, n, testenv.Options{DeploymentTimeouts: true})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			// Share groups in a run of their own, after the others, with
			// fewer records (STRATA_FRANZ_SHARE_RECORDS; franz-go's
			// default is 500,000): beside the other ETL tests on two
			// loaded cores under the race detector their 4-minute budget
			// runs out.
			runs := []struct{ run, records string }{
				{"^(TestTxnEtl|TestGroupETL|TestConsumeRegex|Test848RegexBrokerResolves)$", ""},
				{"^(TestShareGroup|TestShareGroupETL|TestShareGroupAckOnClose|TestShareGroupOffsetsAdmin|TestConsumeRegexShareSkipsInternal)$", "100000"},
			}
			if r := os.Getenv("STRATA_FRANZ_SHARE_RECORDS"); r != "" {
				runs[1].records = r
			}
			if r := os.Getenv("STRATA_FRANZ_RUN"); r != "" {
				runs = runs[:1]
				runs[0].run = r // one of them, or others, while working on them
			}
			for _, r := range runs {
				args := []string{"test", "-count=1", "-run", r.run, "-timeout", "9m", "./pkg/kgo"}
				if os.Getenv("STRATA_FRANZ_RUN") != "" {
					args = append(args, "-v")
				}
				cmd := exec.CommandContext(ctx, goBin, args...)
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "KGO_SEEDS="+c.Addr(), fmt.Sprintf("KGO_TEST_RF=%d", n), "KGO_LOG_LEVEL=none", "GOFLAGS=-mod=mod",
					"GOCACHE="+goEnv(t, goBin, "GOCACHE"), "CGO_ENABLED=0")
				if r.records != "" {
					cmd.Env = append(cmd.Env, "KGO_TEST_RECORDS="+r.records)
				}
				got, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("franz-go's integration tests %s against Strata: %v\n%s", r.run, err, tail(string(got), 8000))
				}
				t.Logf("%s", tail(string(got), 2000))
			}
		})
	}
}

func goEnv(t *testing.T, goBin, name string) string {
	out, err := exec.Command(goBin, "env", name).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
