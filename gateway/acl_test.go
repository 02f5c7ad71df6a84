package gateway_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/testenv"
)

// aclCluster starts a cluster whose gateway checks ACLs, with a
// SASL_PLAINTEXT listener, the super user admin, and users; it returns
// the SASL address and an admin client.
func aclCluster(t *testing.T, users ...string) (string, *kadm.Client) {
	t.Helper()
	gw := testenv.InProcess(t, 1, testenv.Options{AutoCreateTopics: true, Gateway: func(cfg *gateway.Config) {
		cfg.Listeners = []gateway.Listener{{Name: "SASL", Addr: "127.0.0.1:0", Protocol: gateway.SASLPlaintext}}
		cfg.Authorizer, cfg.SuperUsers = true, []string{"User:admin"}
	}}).Gateway
	// The first user comes in through the internal connection, as the
	// bootstrap user does through the metadata.
	internal := kadm.NewClient(newClient(t, gw.Addr(), kgo.Dialer(gw.DialInternal)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, u := range append([]string{"admin"}, users...) {
		res, err := internal.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: u, Mechanism: kadm.ScramSha256, Iterations: 4096, Password: u + "-secret"}})
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			t.Fatalf("user %s: %v", u, err)
		}
	}
	return gw.Addr(), kadm.NewClient(userClient(t, gw.Addr(), "admin"))
}

func userClient(t *testing.T, addr, user string, opts ...kgo.Opt) *kgo.Client {
	return newClient(t, addr, append([]kgo.Opt{kgo.SASL(scram.Auth{User: user, Pass: user + "-secret"}.AsSha256Mechanism())}, opts...)...)
}

func mustACL(t *testing.T, adm *kadm.Client, b *kadm.ACLBuilder) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := adm.CreateACLs(ctx, b)
	if err == nil {
		for _, r := range res {
			if r.Err != nil {
				err = r.Err
			}
		}
	}
	if err != nil {
		t.Fatalf("create ACLs: %v", err)
	}
}

// TestACLEndToEnd: alice may write orders and read group billing; bob
// may read only audit-* (prefixed). Each gets Kafka's error for
// everything else, and Metadata hides what they may not describe.
func TestACLEndToEnd(t *testing.T) {
	addr, adm := aclCluster(t, "alice", "bob")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, topic := range []string{"orders", "audit-2026", "secrets"} {
		if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	mustACL(t, adm, kadm.NewACLs().Allow("User:alice").Topics("orders").Operations(kadm.OpWrite))
	mustACL(t, adm, kadm.NewACLs().Allow("User:alice").Groups("billing").Operations(kadm.OpRead))
	mustACL(t, adm, kadm.NewACLs().Allow("User:bob").Topics("audit-").ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpRead))

	alice := userClient(t, addr, "alice", kgo.DisableIdempotentWrite())
	if err := alice.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("o1")}).FirstErr(); err != nil {
		t.Fatalf("alice writes orders: %v", err)
	}
	if err := alice.ProduceSync(ctx, &kgo.Record{Topic: "secrets", Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("alice writes secrets: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	// An idempotent producer needs WRITE on some topic: alice has one.
	idem := userClient(t, addr, "alice")
	if err := idem.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("o2")}).FirstErr(); err != nil {
		t.Fatalf("alice writes orders idempotently: %v", err)
	}
	// alice may not read orders, only write it.
	reader := userClient(t, addr, "alice", kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
	fs := reader.PollFetches(fctx)
	fcancel()
	if err := fs.Err0(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("alice reads orders: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}

	topicsOf := func(cl *kgo.Client) []string {
		t.Helper()
		md, err := kadm.NewClient(cl).Metadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return md.Topics.Names()
	}
	if got := topicsOf(alice); !slices.Equal(got, []string{"orders"}) {
		t.Fatalf("alice sees topics %v, want [orders]", got)
	}
	bob := userClient(t, addr, "bob", kgo.ConsumeTopics("audit-2026"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if got := topicsOf(bob); !slices.Equal(got, []string{"audit-2026"}) {
		t.Fatalf("bob sees topics %v, want [audit-2026]", got)
	}
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("secrets")
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(ctx, bob)
	if err != nil {
		t.Fatal(err)
	}
	if len(mresp.Topics) != 1 || mresp.Topics[0].ErrorCode != kerr.TopicAuthorizationFailed.Code || len(mresp.Topics[0].Partitions) != 0 {
		t.Fatalf("bob asks for secrets' metadata: %+v, want TOPIC_AUTHORIZATION_FAILED and nothing else", mresp.Topics)
	}
	if err := userClient(t, addr, "admin").ProduceSync(ctx, &kgo.Record{Topic: "audit-2026", Value: []byte("a1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fs = bob.PollRecords(ctx, 1)
	if err := fs.Err0(); err != nil || fs.NumRecords() != 1 {
		t.Fatalf("bob reads audit-2026: %v, %d records", err, fs.NumRecords())
	}
	bobWriter := userClient(t, addr, "bob", kgo.DisableIdempotentWrite())
	if err := bobWriter.ProduceSync(ctx, &kgo.Record{Topic: "audit-2026", Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("bob writes audit-2026: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	// bob may not create topics, even ones his prefix would cover.
	if _, err := kadm.NewClient(bobWriter).CreateTopic(ctx, 1, 1, nil, "audit-new"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("bob creates audit-new: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	// An idempotent producer with WRITE on no topic is refused its id.
	bobIdem := userClient(t, addr, "bob", kgo.RequestRetries(0))
	if err := bobIdem.ProduceSync(ctx, &kgo.Record{Topic: "audit-2026", Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.ClusterAuthorizationFailed) &&
		!errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("bob produces idempotently: %v, want an authorization failure", err)
	}

	// Groups: alice consumes in billing (read on orders granted for it),
	// and may not join audit.
	mustACL(t, adm, kadm.NewACLs().Allow("User:alice").Topics("orders").Operations(kadm.OpRead))
	consumer := userClient(t, addr, "alice", kgo.ConsumerGroup("billing"), kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	fs = consumer.PollRecords(ctx, 1)
	if err := fs.Err0(); err != nil || fs.NumRecords() == 0 {
		t.Fatalf("alice consumes orders in billing: %v", err)
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("alice commits in billing: %v", err)
	}
	other := userClient(t, addr, "alice", kgo.ConsumerGroup("audit"), kgo.ConsumeTopics("orders"))
	fctx, fcancel = context.WithTimeout(ctx, 10*time.Second)
	fs = other.PollFetches(fctx)
	fcancel()
	if err := fs.Err0(); !errors.Is(err, kerr.GroupAuthorizationFailed) {
		t.Fatalf("alice joins audit: %v, want GROUP_AUTHORIZATION_FAILED", err)
	}
	groups, err := kadm.NewClient(alice).ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := groups.Groups(); !slices.Equal(got, []string{"billing"}) {
		t.Fatalf("alice lists groups %v, want [billing]", got)
	}
}
