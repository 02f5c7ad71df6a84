package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
)

// TestTxnCommands: strata txn lists and describes an open transaction,
// shows it on the partition's producers, finds nothing hanging, and
// aborts it, fencing its producer.
func TestTxnCommands(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := "--brokers=" + c.Addr()
	must := func(args ...string) string {
		t.Helper()
		out, errOut, code := strataCmd(t, "", args...)
		if code != 0 {
			t.Fatalf("strata %v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	must("topic", "create", b, "-p", "2", "orders")
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.TransactionalID("checkout"), kgo.DefaultProduceTopic("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := prod.ProduceSync(ctx, &kgo.Record{Partition: 1, Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if out := must("txn", "list", b); !strings.Contains(out, "checkout") || !strings.Contains(out, "Ongoing") {
		t.Fatalf("txn list:\n%s", out)
	}
	if out := must("txn", "describe", b, "checkout"); !strings.Contains(out, "State: Ongoing") || !strings.Contains(out, "orders partitions [") {
		t.Fatalf("txn describe:\n%s", out)
	}
	if out := must("txn", "describe-producers", b, "--topic", "orders"); !strings.Contains(out, "TRANSACTION START OFFSET") || strings.Count(out, "\n") < 2 {
		t.Fatalf("txn describe-producers:\n%s", out)
	}
	if out := must("txn", "find-hanging", b, "--topic", "orders"); !strings.Contains(out, "no hanging transactions") {
		t.Fatalf("txn find-hanging with a healthy transaction:\n%s", out)
	}
	if out := must("txn", "find-hanging", b, "--topic", "orders", "--max-age", "1ns"); !strings.Contains(out, "running for") {
		t.Fatalf("txn find-hanging --max-age 1ns:\n%s", out)
	}
	if out := must("txn", "abort", b, "checkout"); !strings.Contains(out, "aborted checkout's transaction") {
		t.Fatalf("txn abort:\n%s", out)
	}
	if out := must("txn", "describe", b, "checkout"); !strings.Contains(out, "State: Empty") {
		t.Fatalf("txn describe after the abort:\n%s", out)
	}
	if err := prod.EndTransaction(ctx, kgo.TryCommit); err == nil {
		t.Fatal("the fenced producer committed")
	}
	if _, errOut, code := strataCmd(t, "", "txn", "abort", b, "checkout"); code != 1 || !strings.Contains(errOut, "nothing to abort") {
		t.Fatalf("a second abort: exit %d, %s", code, errOut)
	}
	if _, errOut, code := strataCmd(t, "", "txn", "describe", b, "nobody"); code != 1 || !strings.Contains(errOut, "no such transactional id") {
		t.Fatalf("describe of an unknown id: exit %d, %s", code, errOut)
	}
}

// TestFeaturesCommands: strata cluster features shows transaction.version
// at 2, downgrades it to 1 and upgrades it back (a dry run changes
// nothing); a raise asked as a downgrade, or an unknown feature, is a
// clear error.
func TestFeaturesCommands(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{})
	b := "--brokers=" + c.Addr()
	run := func(wantCode int, args ...string) string {
		t.Helper()
		out, errOut, code := strataCmd(t, "", args...)
		if code != wantCode {
			t.Fatalf("strata %v: exit %d, want %d: %s%s", args, code, wantCode, out, errOut)
		}
		return out + errOut
	}
	level := func() string {
		t.Helper()
		for _, l := range strings.Split(run(0, "cluster", "features", b), "\n") {
			if f := strings.Fields(l); len(f) == 4 && f[0] == "transaction.version" {
				return f[1] + " " + f[2]
			}
		}
		t.Fatal("no transaction.version in strata cluster features")
		return ""
	}
	if got := level(); got != "0-2 2" {
		t.Fatalf("transaction.version: supported and finalized %q, want \"0-2 2\"", got)
	}
	run(0, "cluster", "features", "downgrade", b, "--dry-run", "--feature", "transaction.version=1")
	if got := level(); got != "0-2 2" {
		t.Fatalf("a dry run changed transaction.version: %q", got)
	}
	run(0, "cluster", "features", "downgrade", b, "--feature", "transaction.version=1")
	waitLevel := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for got := level(); got != want; got = level() {
			if time.Now().After(deadline) {
				t.Fatalf("transaction.version %q, want %q", got, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitLevel("0-2 1")
	if out := run(1, "cluster", "features", "downgrade", b, "--feature", "transaction.version=2"); !strings.Contains(out, "upgrade") {
		t.Fatalf("a raise asked as a downgrade: %s", out)
	}
	if out := run(1, "cluster", "features", "upgrade", b, "--feature", "no.such=1"); !strings.Contains(out, "unknown feature") {
		t.Fatalf("an unknown feature: %s", out)
	}
	run(0, "cluster", "features", "upgrade", b, "--feature", "transaction.version=2")
	waitLevel("0-2 2")
}
