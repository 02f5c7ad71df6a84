package gateway_test

import (
	"crypto/rand"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/testenv"
)

// BenchmarkSecurityOverhead runs the peer workload (200,000 records of
// 1 KiB, one partition, acks=all, then read back) against a plaintext
// cluster with no authorizer and against one whose client speaks
// SASL_SSL (SCRAM-SHA-512 over TLS 1.3) with ACLs checked on every
// request, alternating twice in the same run; it reports each one's
// median MB/s and the secured one's ratio to plaintext.
//
//	go test -run '^$' -bench SecurityOverhead -benchtime 1x ./gateway
func BenchmarkSecurityOverhead(b *testing.B) {
	payload := make([]byte, peerSize)
	rand.Read(payload)
	for range b.N {
		var plainP, plainC, secP, secC []float64
		for range 2 {
			c := testenv.InProcess(b, 1, testenv.Options{LocalPath: true})
			r := benchStrata(b, c.Addr(), payload)
			plainP, plainC = append(plainP, r.produce), append(plainC, r.consume)
			c.Close()

			addr, opts := securedCluster(b)
			r = benchStrata(b, addr, payload, opts...)
			secP, secC = append(secP, r.produce), append(secC, r.consume)
		}
		mp, mc, sp, sc := median(plainP), median(plainC), median(secP), median(secC)
		b.ReportMetric(mp, "plaintext-produce-MB/s")
		b.ReportMetric(mc, "plaintext-consume-MB/s")
		b.ReportMetric(sp, "sasl-ssl-acl-produce-MB/s")
		b.ReportMetric(sc, "sasl-ssl-acl-consume-MB/s")
		b.ReportMetric(sp/mp, "produce-ratio")
		b.ReportMetric(sc/mc, "consume-ratio")
	}
}

// securedCluster starts a cluster whose gateway has a SASL_SSL listener
// and the authorizer on, with a user allowed the workload's topic, and
// returns the address and the client options to reach it.
func securedCluster(b *testing.B) (string, []kgo.Opt) {
	certs := testenv.NewCerts(b)
	c := testenv.InProcess(b, 1, testenv.Options{LocalPath: true, Gateway: func(cfg *gateway.Config) {
		cfg.Listeners = []gateway.Listener{{Name: "SECURE", Addr: "127.0.0.1:0", Protocol: gateway.SASLSSL, TLS: certs.ServerTLS(false)}}
		cfg.Authorizer = true
	}})
	gw := c.Gateway
	internal := kadm.NewClient(newClient(b, gw.Addr(), kgo.Dialer(gw.DialInternal)))
	ctx := b.Context()
	if res, err := internal.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "bench", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "bench-secret"}}); err != nil || res.Error() != nil {
		b.Fatal(err, res.Error())
	}
	res, err := internal.CreateACLs(ctx, kadm.NewACLs().Allow("User:bench").Topics("peer").
		Operations(kadm.OpCreate, kadm.OpWrite, kadm.OpRead, kadm.OpDescribe))
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	return gw.Addr(), []kgo.Opt{kgo.DialTLSConfig(certs.ClientTLS()),
		kgo.SASL(scram.Auth{User: "bench", Pass: "bench-secret"}.AsSha512Mechanism())}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
