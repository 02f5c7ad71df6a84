package gateway_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/testenv"
)

// saslCluster starts a cluster whose gateway has a PLAINTEXT listener
// (first) and a SASL_PLAINTEXT one, with alice's password set through
// the plaintext one, and returns the gateway.
func saslCluster(t *testing.T, tune func(*gateway.Config)) *gateway.Gateway {
	t.Helper()
	return saslClusterIn(t, nil, tune)
}

// saslClusterIn is saslCluster with the cluster's metrics in reg.
func saslClusterIn(t *testing.T, reg *prometheus.Registry, tune func(*gateway.Config)) *gateway.Gateway {
	t.Helper()
	gw := testenv.InProcess(t, 1, testenv.Options{AutoCreateTopics: true, Registry: reg, Gateway: func(cfg *gateway.Config) {
		cfg.Listeners = []gateway.Listener{
			{Name: "INTERNAL", Addr: "127.0.0.1:0", Protocol: gateway.Plaintext},
			{Name: "EXTERNAL", Addr: "127.0.0.1:0", Protocol: gateway.SASLPlaintext},
		}
		if tune != nil {
			tune(cfg)
		}
	}}).Gateway
	adm := kadm.NewClient(newClient(t, gw.ListenerAddr("INTERNAL")))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{
		{User: "alice", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "alice-secret"},
	})
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatalf("set alice's SHA-256 credential: %v", err)
	}
	if res, err = adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{
		{User: "alice", Mechanism: kadm.ScramSha512, Iterations: 8192, Password: "alice-secret"},
	}); err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatalf("set alice's SHA-512 credential: %v", err)
	}
	return gw
}

// TestSASLMechanisms: a client authenticates with each mechanism on the
// SASL listener, is told that listener's address in Metadata, and
// produces and consumes; a wrong password gets SASL_AUTHENTICATION_FAILED.
func TestSASLMechanisms(t *testing.T) {
	gw := saslCluster(t, nil)
	ext := gw.ListenerAddr("EXTERNAL")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, m := range []struct {
		name string
		mech func(user, pass string) sasl.Mechanism
	}{
		{"PLAIN", func(u, p string) sasl.Mechanism { return plain.Auth{User: u, Pass: p}.AsMechanism() }},
		{"SCRAM-SHA-256", func(u, p string) sasl.Mechanism { return scram.Auth{User: u, Pass: p}.AsSha256Mechanism() }},
		{"SCRAM-SHA-512", func(u, p string) sasl.Mechanism { return scram.Auth{User: u, Pass: p}.AsSha512Mechanism() }},
	} {
		t.Run(m.name, func(t *testing.T) {
			topic := "sasl-" + strings.ToLower(m.name)
			cl := newClient(t, ext, kgo.SASL(m.mech("alice", "alice-secret")), kgo.ConsumeTopics(topic), kgo.AllowAutoTopicCreation())
			brokers, err := kadm.NewClient(cl).ListBrokers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range brokers {
				want := gw.NodePortAddr("EXTERNAL", b.NodeID)
				if got := net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))); got != want {
					t.Fatalf("Metadata names broker %d at %s, want the SASL listener's port for it, %s", b.NodeID, got, want)
				}
			}
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr(); err != nil {
				t.Fatalf("produce as alice: %v", err)
			}
			if fs := cl.PollRecords(ctx, 1); fs.Err0() != nil || fs.NumRecords() != 1 {
				t.Fatalf("consume as alice: %v, %d records", fs.Err0(), fs.NumRecords())
			}

			bad := newClient(t, ext, kgo.SASL(m.mech("alice", "wrong")), kgo.RequestRetries(0))
			_, err = kadm.NewClient(bad).ListTopics(ctx)
			if !errors.Is(err, kerr.SaslAuthenticationFailed) {
				t.Fatalf("a wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
			}
			nobody := newClient(t, ext, kgo.SASL(m.mech("mallory", "x")), kgo.RequestRetries(0))
			if _, err = kadm.NewClient(nobody).ListTopics(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
				t.Fatalf("an unknown user: %v, want SASL_AUTHENTICATION_FAILED", err)
			}
		})
	}
}

// rawConn is a connection that speaks Kafka frames by hand.
type rawConn struct {
	t    *testing.T
	c    net.Conn
	corr int32
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{t: t, c: c}
}

// send writes a request with a v1 header (v2 for a flexible one).
func (r *rawConn) send(req kmsg.Request) {
	r.t.Helper()
	r.corr++
	b := make([]byte, 4, 64)
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(r.corr))
	b = binary.BigEndian.AppendUint16(b, 1)
	b = append(b, 't')
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

// recv reads a response into resp, or returns the read error (io.EOF
// when the gateway closed the connection).
func (r *rawConn) recv(resp kmsg.Response) error {
	r.t.Helper()
	var size [4]byte
	if _, err := io.ReadFull(r.c, size[:]); err != nil {
		return err
	}
	b := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(r.c, b); err != nil {
		return err
	}
	b = b[4:]
	if resp.IsFlexible() && resp.Key() != 18 {
		b = b[1:]
	}
	return resp.ReadFrom(b)
}

// closed reports whether the gateway closes the connection before
// answering.
func (r *rawConn) closed() bool {
	var one [1]byte
	_, err := r.c.Read(one[:])
	return err == io.EOF
}

func versioned[T interface{ SetVersion(int16) }](m T, v int16) T { m.SetVersion(v); return m }

// TestSASLBadInput: on a SASL listener, every request but ApiVersions
// and the exchange closes the connection before authentication;
// SaslAuthenticate before SaslHandshake and an unknown mechanism get
// their Kafka errors; an oversized frame before authentication, a
// malformed SCRAM message and a second handshake close the connection.
func TestSASLBadInput(t *testing.T) {
	gw := saslCluster(t, nil)
	ext := gw.ListenerAddr("EXTERNAL")

	r := dialRaw(t, ext)
	r.send(versioned(kmsg.NewPtrApiVersionsRequest(), 3))
	if err := r.recv(versioned(kmsg.NewPtrApiVersionsResponse(), 3)); err != nil {
		t.Fatalf("ApiVersions before authentication: %v", err)
	}
	r.send(versioned(kmsg.NewPtrMetadataRequest(), 12))
	if !r.closed() {
		t.Fatal("Metadata before authentication was not refused by closing")
	}

	r = dialRaw(t, ext)
	auth := versioned(kmsg.NewPtrSASLAuthenticateRequest(), 2)
	auth.SASLAuthBytes = []byte("\x00alice\x00alice-secret")
	r.send(auth)
	resp := versioned(kmsg.NewPtrSASLAuthenticateResponse(), 2)
	if err := r.recv(resp); err != nil || resp.ErrorCode != kerr.IllegalSaslState.Code {
		t.Fatalf("SaslAuthenticate before SaslHandshake: %v, code %d, want ILLEGAL_SASL_STATE", err, resp.ErrorCode)
	}
	if !r.closed() {
		t.Fatal("the connection stayed open after SaslAuthenticate before SaslHandshake")
	}

	r = dialRaw(t, ext)
	hs := versioned(kmsg.NewPtrSASLHandshakeRequest(), 1)
	hs.Mechanism = "GSSAPI"
	r.send(hs)
	hsResp := versioned(kmsg.NewPtrSASLHandshakeResponse(), 1)
	if err := r.recv(hsResp); err != nil || hsResp.ErrorCode != kerr.UnsupportedSaslMechanism.Code {
		t.Fatalf("an unknown mechanism: %v, code %d, want UNSUPPORTED_SASL_MECHANISM", err, hsResp.ErrorCode)
	}
	if want := []string{"SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"}; strings.Join(hsResp.SupportedMechanisms, ",") != strings.Join(want, ",") {
		t.Fatalf("mechanisms offered: %v, want %v", hsResp.SupportedMechanisms, want)
	}

	// A frame over 512 KiB before authentication.
	r = dialRaw(t, ext)
	big := make([]byte, 4+600<<10)
	binary.BigEndian.PutUint32(big, uint32(len(big)-4))
	r.c.Write(big[:64])
	if !r.closed() {
		t.Fatal("a 600 KiB frame before authentication was read")
	}

	// A malformed SCRAM message: SASL_AUTHENTICATION_FAILED, then closed.
	r = dialRaw(t, ext)
	hs.Mechanism = "SCRAM-SHA-256"
	r.send(hs)
	if err := r.recv(versioned(kmsg.NewPtrSASLHandshakeResponse(), 1)); err != nil {
		t.Fatal(err)
	}
	auth.SASLAuthBytes = []byte("not scram at all")
	r.send(auth)
	resp = versioned(kmsg.NewPtrSASLAuthenticateResponse(), 2)
	if err := r.recv(resp); err != nil || resp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("a malformed SCRAM message: %v, code %d, want SASL_AUTHENTICATION_FAILED", err, resp.ErrorCode)
	}
	if !r.closed() {
		t.Fatal("the connection stayed open after a failed authentication")
	}

	// PLAIN over SaslHandshake v0: raw tokens, as old clients send.
	r = dialRaw(t, ext)
	hs0 := versioned(kmsg.NewPtrSASLHandshakeRequest(), 0)
	hs0.Mechanism = "PLAIN"
	r.send(hs0)
	if err := r.recv(versioned(kmsg.NewPtrSASLHandshakeResponse(), 0)); err != nil {
		t.Fatal(err)
	}
	token := []byte("\x00alice\x00alice-secret")
	r.c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(token))), token...))
	var empty [4]byte
	if _, err := io.ReadFull(r.c, empty[:]); err != nil || binary.BigEndian.Uint32(empty[:]) != 0 {
		t.Fatalf("raw PLAIN answer: %v %x, want an empty token", err, empty)
	}
	r.send(versioned(kmsg.NewPtrMetadataRequest(), 12))
	if err := r.recv(versioned(kmsg.NewPtrMetadataResponse(), 12)); err != nil {
		t.Fatalf("Metadata after raw PLAIN: %v", err)
	}
}

// TestSASLReauthentication: with connections.max.reauth.ms set, a client
// is told its session's lifetime and re-authenticates on its connection
// as it goes on (franz-go does); a connection that does not is closed at
// its next request after the session ends.
func TestSASLReauthentication(t *testing.T) {
	reg := prometheus.NewRegistry()
	gw := saslClusterIn(t, reg, func(cfg *gateway.Config) { cfg.ReauthMax = 1500 * time.Millisecond })
	ext := gw.ListenerAddr("EXTERNAL")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := newClient(t, ext, kgo.SASL(scram.Auth{User: "alice", Pass: "alice-secret"}.AsSha256Mechanism()), kgo.AllowAutoTopicCreation())
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "reauth", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	accepted0, auths0 := gatewayCounter(t, reg, "strata_kafka_connections_accepted_total"), gatewayCounter(t, reg, "strata_kafka_authentications_total")
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "reauth", Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatalf("produce across re-authentications: %v", err)
		}
	}
	accepted, auths := gatewayCounter(t, reg, "strata_kafka_connections_accepted_total")-accepted0, gatewayCounter(t, reg, "strata_kafka_authentications_total")-auths0
	t.Logf("over 5 s with 1.5 s sessions: %v connections accepted, %v authentications", accepted, auths)
	if auths < 3 || accepted > 0 {
		t.Fatalf("%v authentications on %v new connections: the client did not re-authenticate on its connections", auths, accepted)
	}

	r := dialRaw(t, ext)
	hs := versioned(kmsg.NewPtrSASLHandshakeRequest(), 1)
	hs.Mechanism = "PLAIN"
	r.send(hs)
	if err := r.recv(versioned(kmsg.NewPtrSASLHandshakeResponse(), 1)); err != nil {
		t.Fatal(err)
	}
	auth := versioned(kmsg.NewPtrSASLAuthenticateRequest(), 1)
	auth.SASLAuthBytes = []byte("\x00alice\x00alice-secret")
	r.send(auth)
	resp := versioned(kmsg.NewPtrSASLAuthenticateResponse(), 1)
	if err := r.recv(resp); err != nil || resp.ErrorCode != 0 {
		t.Fatalf("PLAIN: %v, code %d", err, resp.ErrorCode)
	}
	if resp.SessionLifetimeMillis != 1500 {
		t.Fatalf("session lifetime %d ms, want 1500", resp.SessionLifetimeMillis)
	}
	time.Sleep(2 * time.Second)
	r.send(versioned(kmsg.NewPtrMetadataRequest(), 12))
	if !r.closed() {
		t.Fatal("a request after the session ended was served")
	}
}

// gatewayCounter sums a counter's series in reg.
func gatewayCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
