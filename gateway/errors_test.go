package gateway_test

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/testenv"
)

// TestBrokerErrors reaches each error a real broker sends, with a real
// client, and checks a bad request loses nothing acknowledged.
func TestBrokerErrors(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newClient(t, c.Addr(), testenv.NamedTopics)
	adm := kadm.NewClient(cl)
	if r, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": kadm.StringPtr("2000")}, "e"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	// code checks an error code; a nil want means success.
	code := func(want *kerr.Error, got int16) {
		t.Helper()
		w := int16(0)
		if want != nil {
			w = want.Code
		}
		if got != w {
			t.Fatalf("got %v, want %v", kerr.ErrorForCode(got), want)
		}
	}
	good := testenv.Batch([]byte("kept"))
	code(nil, testenv.ProduceRaw(t, cl, "e", -1, good))
	code(kerr.InvalidRequiredAcks, produceAcksRaw(t, c.Addr(), "e", 2, testenv.Batch([]byte("x"))))
	corrupt := testenv.Batch([]byte("corrupt"))
	corrupt[len(corrupt)-1] ^= 0xff
	code(kerr.CorruptMessage, testenv.ProduceRaw(t, cl, "e", -1, corrupt))
	code(kerr.MessageTooLarge, testenv.ProduceRaw(t, cl, "e", -1, testenv.Batch(make([]byte, 3000))))
	code(kerr.UnknownTopicOrPartition, testenv.ProduceRaw(t, cl, "nope", -1, testenv.Batch([]byte("x"))))
	checkErrorsRest(t, ctx, c, cl, adm, code)
}

func checkErrorsRest(t *testing.T, ctx context.Context, c *testenv.Cluster, cl *kgo.Client, adm *kadm.Client, code func(*kerr.Error, int16)) {
	// Fetch past the end.
	freq := kmsg.NewPtrFetchRequest()
	freq.MaxWaitMillis, freq.MaxBytes = 0, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "e"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.FetchOffset, fp.PartitionMaxBytes = 1000, 1<<20
	ft.Partitions = append(ft.Partitions, fp)
	freq.Topics = append(freq.Topics, ft)
	fresp, err := freq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	code(kerr.OffsetOutOfRange, fresp.Topics[0].Partitions[0].ErrorCode)

	// Nothing the bad requests sent got in; the good record is intact.
	ends, _ := adm.ListEndOffsets(ctx, "e")
	if o, _ := ends.Lookup("e", 0); o.Offset != 1 {
		t.Fatalf("log end %d after one good and four bad produces", o.Offset)
	}

	// Topic names, partitions, replication factor.
	for _, name := range []string{"", ".", "..", strings.Repeat("x", 250), "bad/name", "spa ce"} {
		r, _ := adm.CreateTopic(ctx, 1, 1, nil, name)
		if !errors.Is(r.Err, kerr.InvalidTopicException) {
			t.Fatalf("topic name %q: %v", name, r.Err)
		}
	}
	if r, _ := adm.CreateTopic(ctx, 0, 1, nil, "zero"); !errors.Is(r.Err, kerr.InvalidPartitions) {
		t.Fatalf("0 partitions: %v", r.Err)
	}
	if r, _ := adm.CreateTopic(ctx, 1, 3, nil, "rf3"); !errors.Is(r.Err, kerr.InvalidReplicationFactor) {
		t.Fatalf("rf 3 on 1 node: %v", r.Err)
	}

	// ApiVersions at an unknown version: UNSUPPORTED_VERSION at v0.
	conn, err := net.Dial("tcp", c.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write([]byte{0, 0, 0, 10, 0, 18, 0, 99, 0, 0, 0, 7, 0, 0})
	_, body, err := testenv.ReadFrame(conn)
	if err != nil {
		t.Fatal(err)
	}
	code(kerr.UnsupportedVersion, int16(binary.BigEndian.Uint16(body)))

	// With the node gone: partitions answer NOT_LEADER_OR_FOLLOWER and
	// groups COORDINATOR_NOT_AVAILABLE, retriable both.
	for _, p := range c.Nodes {
		p.Close()
	}
	// Straight to the gateway (node 1 is listed at its port), past the client's retries.
	broker := cl.Broker(1)
	presp, err := broker.Request(ctx, testenv.ProduceRequest("e", -1, testenv.Batch([]byte("x"))))
	if err != nil {
		t.Fatal(err)
	}
	code(kerr.NotLeaderForPartition, presp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode)
	jreq := kmsg.NewPtrJoinGroupRequest()
	jreq.Group, jreq.SessionTimeoutMillis, jreq.RebalanceTimeoutMillis, jreq.ProtocolType = "g", 10000, 10000, "consumer"
	jreq.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0}}}
	jresp, err := broker.Request(ctx, jreq)
	if err != nil {
		t.Fatal(err)
	}
	code(kerr.CoordinatorNotAvailable, jresp.(*kmsg.JoinGroupResponse).ErrorCode)
}

// produceAcksRaw sends a produce request over a plain connection: client
// libraries rewrite acks to their own setting, so an invalid value only
// gets through like this.
func produceAcksRaw(t *testing.T, addr, topic string, acks int16, records []byte) int16 {
	t.Helper()
	req := testenv.ProduceRequest(topic, acks, records)
	req.SetVersion(7)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(kmsg.NewRequestFormatter().AppendRequest(nil, req, 9)); err != nil {
		t.Fatal(err)
	}
	_, body, err := testenv.ReadFrame(conn)
	if err != nil {
		t.Fatal(err)
	}
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// TestClientMayNotWriteMarkers: a client's control batch is refused
// with INVALID_RECORD (markers are the coordinator's to write), as is a
// transactional batch without a producer id; a transactional batch of a
// producer with no transaction holding the partition gets
// INVALID_TXN_STATE; nothing of any is written.
func TestClientMayNotWriteMarkers(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{AutoCreateTopics: true})
	cl := newClient(t, c.Addr(), testenv.NamedTopics)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "marks"); err != nil {
		t.Fatal(err)
	}
	withAttrs := func(attrs uint16, pid int64) []byte {
		b := testenv.Batch([]byte("v"))
		binary.BigEndian.PutUint16(b[21:], attrs)
		if pid >= 0 {
			binary.BigEndian.PutUint64(b[43:], uint64(pid))
			binary.BigEndian.PutUint16(b[51:], 0)
			binary.BigEndian.PutUint32(b[53:], 0)
		}
		binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
		return b
	}
	if code := testenv.ProduceRaw(t, cl, "marks", -1, withAttrs(1<<5, -1)); code != kerr.InvalidRecord.Code {
		t.Fatalf("a control batch: %v, want INVALID_RECORD", kerr.ErrorForCode(code))
	}
	if code := testenv.ProduceRaw(t, cl, "marks", -1, withAttrs(1<<4, -1)); code != kerr.InvalidRecord.Code {
		t.Fatalf("a transactional batch without a producer id: %v, want INVALID_RECORD", kerr.ErrorForCode(code))
	}
	if code := testenv.ProduceRaw(t, cl, "marks", -1, withAttrs(1<<4, 7)); code != kerr.InvalidTxnState.Code {
		t.Fatalf("a transactional batch: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(code))
	}
	if code := testenv.ProduceRaw(t, cl, "marks", -1, testenv.Batch([]byte("ok"))); code != 0 {
		t.Fatalf("a plain batch after them: %v", kerr.ErrorForCode(code))
	}
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, "marks")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := offs.Lookup("marks", 0); o.Offset != 1 {
		t.Fatalf("end offset %d, want 1: a refused batch was written", o.Offset)
	}
}
