package cli

import (
	"context"
	"crypto/x509/pkix"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
)

// TestSecuredNATS runs strata node and strata gateway against a NATS
// server configured by deploy/nats/strata.conf: they log in as strata
// and serve Kafka clients; a NATS client without credentials is refused,
// and another user can neither ask the controller anything, nor listen
// to Strata's subjects or replies.
func TestSecuredNATS(t *testing.T) {
	t.Setenv("STRATA_NATS_PASSWORD", "strata-secret")
	t.Setenv("APP_NATS_PASSWORD", "app-secret")
	opts, err := server.ProcessConfigFile(filepath.Join("..", "deploy", "nats", "strata.conf"))
	if err != nil {
		t.Fatalf("deploy/nats/strata.conf: %v", err)
	}
	opts.Host, opts.Port, opts.NoLog, opts.NoSigs = "127.0.0.1", -1, true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown) // after the servers stop (cleanups run last first)
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats not ready")
	}
	url := ns.ClientURL()
	kafka, raftAddr := freeAddr(t), freeAddr(t)
	// The node's Raft transport is mutual TLS too.
	certs := testenv.NewCerts(t)
	_, nodeCert, nodeKey := certs.Client(pkix.Name{CommonName: "node-1"}, false)
	runServer(t, "node", "--id", "1", "--data-dir", t.TempDir(), "--nats", url, "--nats-user", "strata", "--raft-addr", raftAddr,
		"--raft-tls-cert", nodeCert, "--raft-tls-key", nodeKey, "--raft-tls-ca", certs.CAFile)
	runServer(t, "gateway", "--id", "0", "--nats", url, "--nats-user", "strata", "--kafka-addr", kafka, "--admin-addr", "")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka), kgo.DisableIdempotentWrite(), kgo.DefaultProduceTopic("t"), kgo.AllowAutoTopicCreation(),
		kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for {
		if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "t"); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the cluster did not come up over authenticated NATS")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce over authenticated NATS: %v", err)
	}
	if fs := cl.PollRecords(ctx, 1); fs.Err0() != nil || fs.NumRecords() != 1 {
		t.Fatalf("consume: %v", fs.Err0())
	}

	if _, err := nats.Connect(url); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("a client without credentials connected: %v", err)
	}
	var violations []error
	errs := make(chan error, 16)
	app, err := nats.Connect(url, nats.UserInfo("app", "app-secret"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	for _, subj := range []string{"strata.>", "_INBOX_strata.>"} {
		sub, err := app.SubscribeSync(subj)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
	}
	_, err = app.Request("strata.strata.meta.read", []byte(`{"kind":"credentials"}`), 2*time.Second)
	if err == nil {
		t.Fatal("another NATS user read the metadata")
	}
	_, err = app.Request("strata.strata.meta.apply", []byte{1, 13, 2}, 2*time.Second)
	if err == nil {
		t.Fatal("another NATS user proposed a metadata command")
	}
	deadline := time.After(5 * time.Second)
	for len(violations) < 2 {
		select {
		case err := <-errs:
			if errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				violations = append(violations, err)
			}
		case <-deadline:
			t.Fatalf("the server reported %d permission violations for another user's subscriptions to Strata's subjects, want 2 or more", len(violations))
		}
	}
	// The Raft address speaks only TLS with a certificate the CA signed.
	if c, err := net.Dial("tcp", raftAddr); err == nil {
		c.Write(make([]byte, 64))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Error("the Raft address answered plaintext")
		}
		c.Close()
	}
	// Records produced meanwhile reach no one but Strata.
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("w")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}
