package cli

import (
	"bytes"
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
)

// strataCmd runs the strata command line in-process.
func strataCmd(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runWith(append([]string{"strata"}, args...), strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestTopicProduceConsumeCommands(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{})
	b := "--brokers=" + c.Addr()
	must := func(stdin string, args ...string) string {
		t.Helper()
		out, errOut, code := strataCmd(t, stdin, args...)
		if code != 0 {
			t.Fatalf("strata %v: exit %d: %s", args, code, errOut)
		}
		return out + errOut
	}
	fails := func(want string, args ...string) {
		t.Helper()
		_, errOut, code := strataCmd(t, "", args...)
		if code != 1 || !strings.Contains(errOut, want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Fatalf("strata %v: exit %d, stderr %q; want one line containing %q", args, code, errOut, want)
		}
	}

	if out := must("", "topic", "create", b, "-p", "3", "-c", "retention.ms=3600000", "orders"); !strings.Contains(out, "Created topic orders.") {
		t.Fatalf("create: %s", out)
	}
	fails("topic create orders: Topic 'orders' already exists. (TOPIC_ALREADY_EXISTS)", "topic", "create", b, "orders")
	// kafka-topics.sh and rpk order: the name, then the flags.
	must("", "topic", "create", "after", "-p", "2", b, "-c", "retention.ms=60000")
	if out := must("", "topic", "describe", b, "after"); !strings.Contains(out, "PartitionCount: 2") || !strings.Contains(out, "retention.ms=60000") {
		t.Fatalf("describe of a topic created with flags after its name:\n%s", out)
	} else if id := regexp.MustCompile(`TopicId: (\S+)`).FindStringSubmatch(out); id == nil || !regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`).MatchString(id[1]) {
		t.Fatalf("describe prints the topic id as %q; Kafka's tools print 22 characters of URL-safe base64:\n%s", id, out)
	}
	fails("INVALID_CONFIG", "topic", "create", b, "-c", "no.such=1", "other")
	fails("not key=value", "topic", "create", b, "-c", "novalue", "other")
	if out := must("", "topic", "list", b); !strings.Contains(out, "orders") {
		t.Fatalf("list: %s", out)
	}

	if out := must("a:1\nb:2\na:3\n", "produce", b, "--topic", "orders", "--key-sep", ":", "-H", "src=test"); !strings.Contains(out, "Produced 3 records") {
		t.Fatalf("produce: %s", out)
	}
	out := must("", "consume", b, "--topic", "orders", "--from-beginning", "-n", "3", "-f", `%k=%v %h\n`)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	slices.Sort(lines)
	if strings.Join(lines, "|") != "a=1 src=test|a=3 src=test|b=2 src=test" {
		t.Fatalf("consume: %q", out)
	}
	// In a group, the commits carry over: a second run has nothing left.
	must("", "consume", b, "--topic", "orders", "--group", "g1", "--from-beginning", "-n", "3")
	must("c:4\n", "produce", b, "--topic", "orders", "--key-sep", ":")
	if out := must("", "consume", b, "--topic", "orders", "--group", "g1", "--from-beginning", "-n", "1"); strings.TrimSpace(out) != "4" {
		t.Fatalf("second group run: %q", out)
	}

	// The same on Kafka 4's consumer protocol (KIP-848): listed as such.
	if out := must("", "consume", b, "--topic", "orders", "--group", "g848", "--group-protocol", "consumer", "--from-beginning", "-n", "4"); strings.Count(out, "\n") != 4 {
		t.Fatalf("consume in a consumer-protocol group: %q", out)
	}

	// Groups: list, describe with lag, reset (dry run, then execute), delete.
	if out := must("", "group", "list", b); !strings.Contains(out, "g1") || !strings.Contains(out, "Empty") ||
		!regexp.MustCompile(`g1\s+classic`).MatchString(out) || !regexp.MustCompile(`g848\s+consumer`).MatchString(out) {
		t.Fatalf("group list:\n%s", out)
	}
	gdesc := must("", "group", "describe", b, "g1")
	if !strings.Contains(gdesc, "Total lag: 0") || !strings.Contains(gdesc, "COMMITTED") {
		t.Fatalf("group describe:\n%s", gdesc)
	}
	// Flags may come after the arguments, as with kafka-consumer-groups.sh and rpk.
	dry := must("", "group", "reset-offsets", b, "g1", "--topic", "orders", "--to-earliest")
	if !strings.Contains(dry, "Dry run") {
		t.Fatalf("reset dry run:\n%s", dry)
	}
	must("", "group", "reset-offsets", b, "--topic", "orders", "--to-earliest", "--execute", "g1")
	if out := must("", "consume", b, "--topic", "orders", "--group", "g1", "-n", "4"); strings.Count(out, "\n") != 4 {
		t.Fatalf("after reset to earliest, group g1 read:\n%s", out)
	}
	fails("exactly one of", "group", "reset-offsets", b, "--topic", "orders", "g1")
	if out := must("", "group", "delete", b, "g1"); !strings.Contains(out, "Deleted group g1.") {
		t.Fatalf("group delete: %s", out)
	}
	fails("GROUP_ID_NOT_FOUND", "group", "delete", b, "g1")

	// A share group (a queue): started at the earliest offsets, it hands
	// each record out once, acknowledged as printed; describe shows its
	// start offsets and lag.
	must("", "group", "reset-offsets", b, "--share", "--topic", "orders", "--to-earliest", "--execute", "q1")
	if out := must("", "consume", b, "--topic", "orders", "--share-group", "q1", "-n", "4"); strings.Count(out, "\n") != 4 {
		t.Fatalf("consume in a share group: %q", out)
	}
	must("e:5\n", "produce", b, "--topic", "orders", "--key-sep", ":")
	if out := must("", "consume", b, "--topic", "orders", "--share-group", "q1", "-n", "1"); strings.TrimSpace(out) != "5" {
		t.Fatalf("a share group's second run: %q", out)
	}
	if out := must("", "group", "list", b); !regexp.MustCompile(`q1\s+share`).MatchString(out) {
		t.Fatalf("group list lacks the share group:\n%s", out)
	}
	if out := must("", "group", "describe", b, "q1", "--admin-url", "127.0.0.1:1"); !strings.Contains(out, "Type: share") ||
		!strings.Contains(out, "START-OFFSET") || !strings.Contains(out, "Total lag: 0") {
		t.Fatalf("group describe of a share group:\n%s", out)
	}
	fails("a share group starts where the group is", "consume", b, "--topic", "orders", "--share-group", "q1", "--from-beginning")
	fails("is a consumer group, not a share group", "group", "reset-offsets", b, "--share", "--topic", "orders", "--to-earliest", "g848")

	desc := must("", "topic", "describe", b, "orders")
	for _, want := range []string{"PartitionCount: 3", "retention.ms=3600000", "LOG-END"} {
		if !strings.Contains(desc, want) {
			t.Fatalf("describe lacks %q:\n%s", want, desc)
		}
	}
	must("", "topic", "alter", b, "-p", "4", "-c", "segment.bytes=1048576", "--delete-config", "retention.ms", "orders")
	desc = must("", "topic", "describe", b, "orders")
	if !strings.Contains(desc, "PartitionCount: 4") || !strings.Contains(desc, "segment.bytes=1048576") || strings.Contains(desc, "retention.ms=") {
		t.Fatalf("describe after alter:\n%s", desc)
	}
	fails("INVALID_PARTITIONS", "topic", "alter", b, "-p", "2", "orders")
	fails("nothing to change", "topic", "alter", b, "orders")
	if out := must("", "topic", "delete", b, "orders"); !strings.Contains(out, "Deleted topic orders.") {
		t.Fatalf("delete: %s", out)
	}
	fails("UNKNOWN_TOPIC_OR_PARTITION", "topic", "describe", b, "orders")
	fails("--acks", "produce", b, "--topic", "x", "--acks", "2")
}

func TestBenchCommands(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{})
	b := "--brokers=" + c.Addr()
	for _, sub := range []string{"produce", "consume", "e2e"} {
		out, errOut, code := strataCmd(t, "", "bench", sub, b, "-n", "2000", "-s", "256", "-p", "2")
		if code != 0 {
			t.Fatalf("bench %s: exit %d: %s", sub, code, errOut)
		}
		if !strings.Contains(out, "records/s") {
			t.Fatalf("bench %s printed %q", sub, out)
		}
		if sub != "consume" && !strings.Contains(out, "p99") {
			t.Fatalf("bench %s lacks percentiles: %q", sub, out)
		}
	}
}

// TestTopCommand: `strata top` shows each topic with its records and, on
// the second look, the rate they grow at while a producer writes; and
// each group with its lag.
func TestTopCommand(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{})
	b := "--brokers=" + c.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.DefaultProduceTopic("busy"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, topic := range []string{"busy", "quiet"} {
		if _, errOut, code := strataCmd(t, "", "topic", "create", topic, "-p", "2", b); code != 0 {
			t.Fatalf("topic create %s: %s", topic, errOut)
		}
	}
	for range 100 {
		cl.Produce(ctx, &kgo.Record{Value: []byte("x")}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var commit kadm.Offsets
	commit.Add(kadm.Offset{Topic: "busy", Partition: 0, At: 40, LeaderEpoch: -1})
	if r, err := kadm.NewClient(cl).CommitOffsets(ctx, "readers", commit); err != nil || r.Error() != nil {
		t.Fatal(err, r.Error())
	}
	// A producer keeps writing while top looks twice.
	pctx, stop := context.WithCancel(ctx)
	go func() {
		for pctx.Err() == nil {
			cl.ProduceSync(pctx, &kgo.Record{Value: []byte("y")})
		}
	}()
	out, errOut, code := strataCmd(t, "", "top", b, "-n", "2", "-i", "500ms")
	stop()
	if code != 0 {
		t.Fatalf("top: exit %d: %s", code, errOut)
	}
	frames := strings.Split(out, "strata top")
	if len(frames) != 3 {
		t.Fatalf("want two looks:\n%s", out)
	}
	first, second := frames[1], frames[2]
	for _, want := range []string{"TOPIC", "PARTITIONS", "IN/S", "quiet", "GROUP", "LAG", "readers"} {
		if !strings.Contains(first, want) {
			t.Errorf("the first look lacks %q:\n%s", want, first)
		}
	}
	busy := lineOf(second, "busy")
	if f := strings.Fields(busy); len(f) != 4 || f[3] == "-" || f[3] == "0.0" {
		t.Errorf("busy grows while top looks, but the second look says %q", busy)
	}
	if f := strings.Fields(lineOf(first, "busy")); len(f) != 4 || f[3] != "-" {
		t.Errorf("the first look has no rate to show: %q", lineOf(first, "busy"))
	}
	if readers := strings.Fields(lineOf(first, "readers")); len(readers) < 4 || readers[3] == "?" {
		t.Errorf("readers' lag: %q", lineOf(first, "readers"))
	}
	if _, errOut, code := strataCmd(t, "", "top", b, "-i", "1ms"); code != 1 || !strings.Contains(errOut, "interval") {
		t.Errorf("top with a 1ms interval: exit %d: %s", code, errOut)
	}
}

// lineOf is the first line of s that starts with prefix.
func lineOf(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix+" ") {
			return l
		}
	}
	return ""
}
