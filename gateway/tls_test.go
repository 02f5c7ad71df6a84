package gateway_test

import (
	"context"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509/pkix"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	xscram "github.com/xdg-go/scram"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/testenv"
)

// tlsCluster starts a cluster whose gateway has an internal PLAINTEXT
// listener, an mTLS SSL listener and a SASL_SSL one; alice has a
// password.
func tlsCluster(t *testing.T) (*gateway.Gateway, *testenv.Certs) {
	t.Helper()
	certs := testenv.NewCerts(t)
	gw := saslCluster(t, func(cfg *gateway.Config) {
		cfg.Listeners = append(cfg.Listeners[:1],
			gateway.Listener{Name: "MTLS", Addr: "127.0.0.1:0", Protocol: gateway.SSL, TLS: certs.ServerTLS(true)},
			gateway.Listener{Name: "EXTERNAL", Addr: "127.0.0.1:0", Protocol: gateway.SASLSSL, TLS: certs.ServerTLS(false)})
	})
	return gw, certs
}

// TestTLSListeners: a client with a certificate the CA signed works on
// the mTLS listener; one with an expired certificate, with none, or
// speaking plaintext is turned away at the handshake; SCRAM-SHA-512
// works over SASL_SSL, and a wrong password still fails.
func TestTLSListeners(t *testing.T) {
	gw, certs := tlsCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mtls := gw.ListenerAddr("MTLS")

	alice, _, _ := certs.Client(pkix.Name{CommonName: "alice", OrganizationalUnit: []string{"eng"}}, false)
	cl := newClient(t, mtls, kgo.DialTLSConfig(certs.ClientTLS(alice)), kgo.AllowAutoTopicCreation())
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "over-mtls", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce over mTLS: %v", err)
	}

	expired, _, _ := certs.Client(pkix.Name{CommonName: "old"}, true)
	for name, opt := range map[string]kgo.Opt{
		"expired certificate": kgo.DialTLSConfig(certs.ClientTLS(expired)),
		"no certificate":      kgo.DialTLSConfig(certs.ClientTLS()),
		"plaintext":           kgo.DialTimeout(5 * time.Second),
	} {
		bad := newClient(t, mtls, opt, kgo.RequestRetries(0))
		sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := kadm.NewClient(bad).ListTopics(sctx)
		scancel()
		if err == nil {
			t.Errorf("%s: served on the mTLS listener", name)
		}
	}

	ext := gw.ListenerAddr("EXTERNAL")
	cl = newClient(t, ext, kgo.DialTLSConfig(certs.ClientTLS()),
		kgo.SASL(scram.Auth{User: "alice", Pass: "alice-secret"}.AsSha512Mechanism()), kgo.AllowAutoTopicCreation())
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "over-sasl-ssl", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce over SASL_SSL: %v", err)
	}
	bad := newClient(t, ext, kgo.DialTLSConfig(certs.ClientTLS()),
		kgo.SASL(scram.Auth{User: "alice", Pass: "nope"}.AsSha512Mechanism()), kgo.RequestRetries(0))
	if _, err := kadm.NewClient(bad).ListTopics(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("a wrong password over SASL_SSL: %v", err)
	}
	// The gateway outlives a client that hangs up mid-handshake.
	if c, err := net.Dial("tcp", ext); err == nil {
		c.Write([]byte{0x16, 0x03, 0x01, 0x00})
		c.Close()
	}
	if _, err := kadm.NewClient(cl).ListTopics(ctx); err != nil {
		t.Fatalf("after a broken handshake: %v", err)
	}
}

// saramaSCRAM is Sarama's SCRAM client, on xdg-go/scram as Sarama's own
// examples do.
type saramaSCRAM struct {
	conv *xscram.ClientConversation
}

func (s *saramaSCRAM) Begin(user, password, authz string) error {
	cl, err := xscram.HashGeneratorFcn(sha512.New).NewClient(user, password, authz)
	if err != nil {
		return err
	}
	s.conv = cl.NewConversation()
	return nil
}
func (s *saramaSCRAM) Step(challenge string) (string, error) { return s.conv.Step(challenge) }
func (s *saramaSCRAM) Done() bool                            { return s.conv.Done() }

// TestSaramaSASLSSL: Sarama connects over SASL_SSL with SCRAM-SHA-512,
// produces and consumes.
func TestSaramaSASLSSL(t *testing.T) {
	gw, certs := tlsCluster(t)
	cfg := sarama.NewConfig()
	cfg.Net.TLS.Enable = true
	cfg.Net.TLS.Config = &tls.Config{RootCAs: certs.CA, MinVersion: tls.VersionTLS12}
	cfg.Net.SASL.Enable = true
	cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
	cfg.Net.SASL.User, cfg.Net.SASL.Password = "alice", "alice-secret"
	cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &saramaSCRAM{} }
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	addrs := []string{gw.ListenerAddr("EXTERNAL")}
	admin, err := sarama.NewClusterAdmin(addrs, cfg)
	if err != nil {
		t.Fatalf("Sarama over SASL_SSL: %v", err)
	}
	defer admin.Close()
	if err := admin.CreateTopic("sarama-scram", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	prod, err := sarama.NewSyncProducer(addrs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: "sarama-scram", Value: sarama.StringEncoder("hello")}); err != nil {
		t.Fatalf("send: %v", err)
	}
	cons, err := sarama.NewConsumer(addrs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	pc, err := cons.ConsumePartition("sarama-scram", 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	select {
	case m := <-pc.Messages():
		if string(m.Value) != "hello" {
			t.Fatalf("read %q", m.Value)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("nothing consumed in 30s")
	}

	cfg.Net.SASL.Password = "wrong"
	if _, err := sarama.NewClusterAdmin(addrs, cfg); err == nil {
		t.Fatal("Sarama with a wrong password connected")
	}
}

// TestMTLSPrincipal: on an SSL listener with client certificates, the
// principal is the certificate's subject, and ACLs name it so.
func TestMTLSPrincipal(t *testing.T) {
	certs := testenv.NewCerts(t)
	gw := testenv.InProcess(t, 1, testenv.Options{Gateway: func(cfg *gateway.Config) {
		cfg.Listeners = []gateway.Listener{{Name: "MTLS", Addr: "127.0.0.1:0", Protocol: gateway.SSL, TLS: certs.ServerTLS(true)}}
		cfg.Authorizer = true
	}}).Gateway
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	internal := kadm.NewClient(newClient(t, gw.Addr(), kgo.Dialer(gw.DialInternal)))
	if _, err := internal.CreateTopic(ctx, 1, 1, nil, "certified"); err != nil {
		t.Fatal(err)
	}
	mustACL(t, internal, kadm.NewACLs().Allow("User:CN=alice,OU=eng").Topics("certified").Operations(kadm.OpWrite))
	alice, _, _ := certs.Client(pkix.Name{CommonName: "alice", OrganizationalUnit: []string{"eng"}}, false)
	bob, _, _ := certs.Client(pkix.Name{CommonName: "bob", OrganizationalUnit: []string{"eng"}}, false)
	ok := newClient(t, gw.Addr(), kgo.DialTLSConfig(certs.ClientTLS(alice)))
	if err := ok.ProduceSync(ctx, &kgo.Record{Topic: "certified", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("alice's certificate: %v", err)
	}
	denied := newClient(t, gw.Addr(), kgo.DialTLSConfig(certs.ClientTLS(bob)))
	if err := denied.ProduceSync(ctx, &kgo.Record{Topic: "certified", Value: []byte("v")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("bob's certificate: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
}
