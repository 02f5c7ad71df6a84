package gateway_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-io/strata/testenv"
)

// pythonPath is a Python that imports kafka-python and confluent-kafka:
// the wrapper make test unpacks them with (STRATA_PYTHON), or skip.
func pythonPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("STRATA_PYTHON")
	if p == "" {
		t.Skip("Python's Kafka clients are not here: make pyclients unpacks Debian's (STRATA_PYTHON names the wrapper)")
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("STRATA_PYTHON=%s: %v", p, err)
	}
	return p
}

// kafkaPythonScript drives kafka-python 2.0.2 as its users do: the admin
// client creates a topic and describes it and the cluster, the producer
// writes to a topic that does not exist yet (it asks Metadata v1, which
// Kafka treats as allowing auto-creation), and a consumer reads both
// back. Every partition's leader is one of its replicas, and its ISR
// within them, as the admin client checks.
const kafkaPythonScript = `
import sys
from kafka import KafkaProducer, KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic
bs = sys.argv[1]
adm = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=20000)
adm.create_topics([NewTopic("kp", 3, 3)])
for t in adm.describe_topics(["kp"]):
    assert t["error_code"] == 0, t
    assert len(t["partitions"]) == 3, t
    for p in t["partitions"]:
        assert len(p["replicas"]) == 3 and set(p["isr"]) <= set(p["replicas"]), p
        assert p["leader"] in p["replicas"], p
cluster = adm.describe_cluster()
ids = [b["node_id"] for b in cluster["brokers"]]
assert ids and cluster["controller_id"] in ids, cluster
prod = KafkaProducer(bootstrap_servers=bs, acks="all", max_block_ms=20000)
for i in range(30):
    prod.send("kp", key=b"k%d" % i, value=b"v%d" % i)
    prod.send("kp-auto", value=b"a%d" % i)
prod.flush(timeout=30)
for topic in ("kp", "kp-auto"):
    cons = KafkaConsumer(topic, bootstrap_servers=bs, auto_offset_reset="earliest", consumer_timeout_ms=10000)
    got = sum(1 for _ in cons)
    cons.close()
    assert got == 30, (topic, got)
print("ok")
`

// confluentKafkaScript drives confluent-kafka (librdkafka) the same way.
const confluentKafkaScript = `
import sys, time
from confluent_kafka import Producer, Consumer
from confluent_kafka.admin import AdminClient, NewTopic
bs = sys.argv[1]
adm = AdminClient({"bootstrap.servers": bs})
for f in adm.create_topics([NewTopic("ck", 3, 3)]).values():
    f.result()
md = adm.list_topics(timeout=20)
assert md.controller_id in md.brokers, md.controller_id
parts = md.topics["ck"].partitions
assert len(parts) == 3, parts
for p in parts.values():
    assert p.leader in md.brokers and len(p.replicas) == 3 and set(p.isrs) <= set(p.replicas), (p.leader, p.replicas, p.isrs)
    assert p.leader in p.replicas, (p.leader, p.replicas)
assert sorted(md.brokers) == [1, 2, 3], md.brokers
prod = Producer({"bootstrap.servers": bs, "acks": "all"})
for i in range(30):
    prod.produce("ck", key=b"k%d" % i, value=b"v%d" % i)
assert prod.flush(30) == 0
cons = Consumer({"bootstrap.servers": bs, "group.id": "ck-readers", "auto.offset.reset": "earliest"})
cons.subscribe(["ck"])
got, end = 0, time.time() + 30
while got < 30 and time.time() < end:
    m = cons.poll(1)
    if m is not None and m.error() is None:
        got += 1
cons.close()
assert got == 30, got
print("ok")
`

// TestPythonClients runs kafka-python's and confluent-kafka's own
// clients against three nodes behind two gateways: topics created and described through
// their admin clients, produced to (auto-created, for kafka-python's
// Metadata v1), consumed back, alone and in a group.
func TestPythonClients(t *testing.T) {
	py := pythonPath(t)
	c := testenv.InProcess(t, 3, testenv.Options{AutoCreateTopics: true})
	c.StartGateway(1) // clients are told of the nodes at both gateways' ports
	for _, s := range []struct{ name, script string }{{"kafka-python", kafkaPythonScript}, {"confluent-kafka", confluentKafkaScript}} {
		t.Run(s.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "client.py")
			if err := os.WriteFile(file, []byte(s.script), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, py, file, c.Addr()).CombinedOutput()
			if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "ok") {
				t.Fatalf("%s: %v\n%s", s.name, err, out)
			}
		})
	}
}
