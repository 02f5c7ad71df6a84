package node_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/internal/rpc"
	"github.com/strata-io/strata/meta"
	"github.com/strata-io/strata/testenv"
	"github.com/strata-io/strata/tier"
)

// TestHostileNATSMessages publishes garbage to every subject a cluster
// serves, from a connection of its own: empty bodies, random bytes,
// Kafka headers over random or truncated bodies, chunk headers that lie,
// JSON of the wrong shape. No process may crash (a panic in any handler
// ends this test binary), and afterwards the cluster still produces,
// consumes and commits. STRATA_SEED replays a seed.
func TestHostileNATSMessages(t *testing.T) {
	rng := rand.New(rand.NewPCG(testenv.Seed(t), 3))
	store, err := tier.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := testenv.InProcess(t, 1, testenv.Options{Tier: store})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl := newClient(t, c)
	createTopic(ctx, t, cl, 2, 1, nil, "victim")
	createTopic(ctx, t, cl, 1, 1, nil, "scratch")
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "victim", Value: []byte("before")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	nc := c.Conn()
	subjects := []string{
		rpc.KafkaSubject("test", 1), rpc.GroupSubject("test"), rpc.GroupSubject("test") + ".1",
		meta.HeartbeatSubject("test"), "strata.test.meta.apply", "strata.test.meta.apply.1",
		"strata.test.meta.read", "strata.test.meta.read.1", "strata.test.meta.events",
		rpc.TierSubject("test", "ls"), rpc.TierSubject("test", "restore"), rpc.TierStatusSubject("test", 1),
		"strata.test.gateway.heartbeat",
	}
	valid := validRequests()
	sent := 0
	for _, subject := range subjects {
		for round := range 60 {
			m := nats.NewMsg(subject)
			if round%3 != 0 {
				m.Reply = nats.NewInbox() // nobody listens: answers go nowhere
			}
			switch round % 10 {
			case 0: // empty
			case 1:
				m.Data = randomBytes(rng, rng.IntN(4096))
			case 2: // a Kafka request's headers over random bytes
				m.Header.Set(rpc.HeaderAPIKey, strconv.Itoa(rng.IntN(80)-5))
				m.Header.Set(rpc.HeaderAPIVersion, strconv.Itoa(rng.IntN(30)-5))
				m.Data = randomBytes(rng, rng.IntN(512))
			case 3: // a real request cut short, or with bytes flipped
				req := valid[rng.IntN(len(valid))]
				body := req.AppendTo(nil)
				m.Header.Set(rpc.HeaderAPIKey, strconv.Itoa(int(req.Key())))
				m.Header.Set(rpc.HeaderAPIVersion, strconv.Itoa(int(req.GetVersion())))
				if rng.IntN(2) == 0 {
					body = body[:rng.IntN(len(body)+1)]
				} else if len(body) > 0 {
					for range 1 + rng.IntN(4) {
						body[rng.IntN(len(body))] ^= byte(1 + rng.IntN(255))
					}
				}
				m.Data = body
			case 4: // a chunk header that lies about the count
				m.Header.Set(rpc.HeaderChunk, "0/1073741824")
				m.Data = make([]byte, 512<<10)
			case 5: // chunks that skip, repeat or change size
				m.Header.Set(rpc.HeaderChunk, fmt.Sprintf("%d/%d", rng.IntN(3), 1+rng.IntN(3)))
				m.Data = randomBytes(rng, rng.IntN(2048))
			case 6:
				m.Data = []byte([]string{`null`, `[]`, `{}`, `{"type":"nope"}`, `{"id":-1,"raft_addr":""}`, `"x"`, `{"topic":""}`}[rng.IntN(7)])
			case 7: // headers with junk values
				m.Header.Set(rpc.HeaderAPIKey, "x")
				m.Header.Set(rpc.HeaderAPIVersion, "-99999999999999999999")
				m.Header.Set("Strata-Deadline", "soon")
				m.Header.Set(rpc.HeaderProgress, "appended")
			case 8:
				m.Data = randomBytes(rng, 64<<10+rng.IntN(64<<10))
			case 9: // a well-formed request to a subject that may not serve it
				req := valid[rng.IntN(len(valid))]
				m.Header.Set(rpc.HeaderAPIKey, strconv.Itoa(int(req.Key())))
				m.Header.Set(rpc.HeaderAPIVersion, strconv.Itoa(int(req.GetVersion())))
				m.Data = req.AppendTo(nil)
			}
			if err := nc.PublishMsg(m); err != nil {
				t.Fatal(err)
			}
			sent++
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d hostile messages on %d subjects", sent, len(subjects))

	// The cluster still works: produce, consume from the start, commit.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "victim", Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatalf("produce after hostile messages: %v", err)
	}
	consumer := newClient(t, c, kgo.ConsumeTopics("victim"), kgo.ConsumerGroup("g"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[string]bool{}
	for len(got) < 2 {
		fs := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %v after hostile messages", got)
		}
		fs.EachRecord(func(r *kgo.Record) { got[string(r.Value)] = true })
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit after hostile messages: %v", err)
	}
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// validRequests are well-formed requests of the APIs nodes and the group
// service serve, to cut short or corrupt. Each is one an authenticated
// client could send; the one that deletes records names topic scratch.
func validRequests() []kmsg.Request {
	produce := kmsg.NewPtrProduceRequest()
	produce.Version, produce.Acks, produce.TimeoutMillis = 9, -1, 1000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "victim"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = make([]byte, 200)
	pt.Partitions = append(pt.Partitions, pp)
	produce.Topics = append(produce.Topics, pt)

	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version, fetch.MaxWaitMillis, fetch.MaxBytes = 12, 10, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "victim"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)

	list := kmsg.NewPtrListOffsetsRequest()
	list.Version = 8
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = "victim"
	lt.Partitions = append(lt.Partitions, kmsg.NewListOffsetsRequestTopicPartition())
	list.Topics = append(list.Topics, lt)

	join := kmsg.NewPtrJoinGroupRequest()
	join.Version, join.Group, join.ProtocolType, join.SessionTimeoutMillis = 5, "g", "consumer", 10000
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Version, commit.Group, commit.Generation = 7, "g", -1
	del := kmsg.NewPtrDeleteRecordsRequest()
	del.Version = 2
	dt := kmsg.NewDeleteRecordsRequestTopic()
	dt.Topic = "scratch" // NATS is not authenticated yet: a well-formed DeleteRecords is honored
	dt.Partitions = append(dt.Partitions, kmsg.DeleteRecordsRequestTopicPartition{Partition: 0, Offset: -1})
	del.Topics = append(del.Topics, dt)
	epoch := kmsg.NewPtrOffsetForLeaderEpochRequest()
	epoch.Version = 3
	return []kmsg.Request{produce, fetch, list, join, commit, del, epoch}
}
