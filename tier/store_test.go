package tier_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-io/strata/meta"
	"github.com/strata-io/strata/testenv"
	"github.com/strata-io/strata/tier"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	return b
}

func get(t *testing.T, s tier.Store, key string, off, n int64) []byte {
	t.Helper()
	r, err := s.Get(context.Background(), key, off, n)
	if err != nil {
		t.Fatalf("get %s [%d,+%d): %v", key, off, n, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// storeContract is what every Store must do.
func storeContract(t *testing.T, s tier.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	small := randomBytes(100_000)
	if err := s.Put(ctx, "t-abc/0/00000000000000000000-0.log", bytes.NewReader(small), int64(len(small))); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, "t-abc/0/00000000000000000000-0.log", 0, -1); !bytes.Equal(got, small) {
		t.Fatalf("whole object: %d bytes back, want %d", len(got), len(small))
	}
	if got := get(t, s, "t-abc/0/00000000000000000000-0.log", 1000, 500); !bytes.Equal(got, small[1000:1500]) {
		t.Fatal("range read differs")
	}
	if got := get(t, s, "t-abc/0/00000000000000000000-0.log", 99_000, -1); !bytes.Equal(got, small[99_000:]) {
		t.Fatal("read to the end differs")
	}
	if _, err := s.Get(ctx, "t-abc/0/missing.log", 0, -1); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("missing object: %v", err)
	}
	// Over the multipart threshold.
	big := randomBytes(40 << 20)
	if err := s.Put(ctx, "t-abc/1/00000000000000001000-3.log", bytes.NewReader(big), int64(len(big))); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, "t-abc/1/00000000000000001000-3.log", 20<<20, 1<<20); !bytes.Equal(got, big[20<<20:21<<20]) {
		t.Fatal("range of a multipart object differs")
	}
	// Overwrite replaces whole.
	if err := s.Put(ctx, "t-abc/0/00000000000000000000-0.log", strings.NewReader("new"), 3); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, "t-abc/0/00000000000000000000-0.log", 0, -1); string(got) != "new" {
		t.Fatalf("after overwrite: %q", got)
	}
	if err := s.Put(ctx, "other/x", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	list := func(prefix string) map[string]int64 {
		m := map[string]int64{}
		if err := s.List(ctx, prefix, func(o tier.Object) error { m[o.Key] = o.Size; return nil }); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if got := list("t-abc/"); len(got) != 2 || got["t-abc/0/00000000000000000000-0.log"] != 3 || got["t-abc/1/00000000000000001000-3.log"] != 40<<20 {
		t.Fatalf("list t-abc/: %v", got)
	}
	if err := s.Delete(ctx, "t-abc/0/00000000000000000000-0.log", "t-abc/0/never-was"); err != nil {
		t.Fatal(err)
	}
	if got := list(""); len(got) != 2 || got["other/x"] != 1 {
		t.Fatalf("list after delete: %v", got)
	}
	for _, bad := range []string{"", "/abs", "a/../b", "a//b", "./a", `a\b`} {
		if err := s.Put(ctx, bad, strings.NewReader("x"), 1); err == nil {
			t.Fatalf("key %q accepted", bad)
		}
	}
}

func TestDirStore(t *testing.T) {
	s, err := tier.Open(context.Background(), "file://"+t.TempDir(), tier.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	storeContract(t, s)
}

func TestS3Store(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.CreateBucket("tier")
	s, err := tier.Open(context.Background(), m.URL("tier", "cluster-a"), tier.Credentials{AccessKey: m.AccessKey, SecretKey: m.Secret})
	if err != nil {
		t.Fatal(err)
	}
	storeContract(t, s)
}

// TestOpenErrors: every bad tier URL or credential fails at open with one
// line naming the problem.
func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	for url, want := range map[string]string{
		"":                              "no scheme",
		"/var/tier":                     "no scheme",
		"gs://bucket":                   `unknown scheme "gs"`,
		"file://host/path":              "no host",
		"s3:///prefix":                  "no bucket",
		"s3://b/p?endpoint=x&secure=1":  `unknown parameter "secure"`,
		"s3://b/p?insecure=maybe":       "insecure",
		"s3://b/p?endpoint=127.0.0.1:1": "no credentials",
	} {
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		_, err := tier.Open(ctx, url, tier.Credentials{})
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v, want one line with %q", url, err, want)
		}
	}
}

func TestS3OpenErrors(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.CreateBucket("tier")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []struct {
		url   string
		creds tier.Credentials
		want  string
	}{
		{m.URL("nope", ""), tier.Credentials{AccessKey: m.AccessKey, SecretKey: m.Secret}, `bucket "nope" does not exist`},
		{m.URL("tier", ""), tier.Credentials{AccessKey: "someone", SecretKey: m.Secret}, "access key not accepted"},
		{m.URL("tier", ""), tier.Credentials{AccessKey: m.AccessKey, SecretKey: "wrong-secret"}, "secret key not accepted"},
	} {
		_, err := tier.Open(ctx, c.url, c.creds)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line with %q", c.url, err, c.want)
		}
	}
	// The standard AWS variables are read when no credentials are given.
	t.Setenv("AWS_ACCESS_KEY_ID", m.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", m.Secret)
	if _, err := tier.Open(ctx, m.URL("tier", "p"), tier.Credentials{}); err != nil {
		t.Fatal(err)
	}
}

// slowDownProxy stands in front of an S3 endpoint and answers 503
// SlowDown, as S3 does under load, while budget is above zero (each such
// answer spends one) or always while stuck is set.
type slowDownProxy struct {
	budget atomic.Int64
	stuck  atomic.Bool
	served atomic.Int64
}

func (p *slowDownProxy) start(t *testing.T, endpoint string) string {
	target, _ := url.Parse("http://" + endpoint)
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.stuck.Load() || p.budget.Add(-1) >= 0 {
			p.served.Add(1)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestS3SlowDown: reads retry through a few 503 SlowDown answers; a Put
// answered SlowDown fails at once (minio-go's own retry of a request body
// races with net/http, so Puts leave retrying to the uploader), and the
// uploader gets segments through a stretch of SlowDowns with backoff. A
// store stuck on SlowDown fails calls cleanly, never with partial data.
func TestS3SlowDown(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.CreateBucket("tier")
	p := &slowDownProxy{}
	endpoint := p.start(t, m.Endpoint)
	creds := tier.Credentials{AccessKey: m.AccessKey, SecretKey: m.Secret}
	s, err := tier.Open(context.Background(), fmt.Sprintf("s3://tier/slow?endpoint=%s&insecure=true", endpoint), creds)
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(300 << 10)
	ctx := context.Background()
	if err := s.Put(ctx, "a", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}

	p.budget.Store(3)
	if got := get(t, s, "a", 1000, 5000); !bytes.Equal(got, data[1000:6000]) {
		t.Fatal("get through SlowDowns returned other bytes")
	}
	p.budget.Store(1)
	if err := s.Put(ctx, "b", bytes.NewReader(data), int64(len(data))); err == nil || !strings.Contains(err.Error(), "reduce your request rate") {
		t.Fatalf("put answered SlowDown: %v", err)
	}
	if p.served.Load() != 4 {
		t.Fatalf("the proxy answered SlowDown %d times, want 4", p.served.Load())
	}

	// The uploader retries whole uploads through 20 SlowDowns.
	p.budget.Store(20)
	man := &fakeManifest{entries: map[int64]meta.TierSegment{}}
	u := tier.NewUploader(tier.UploaderConfig{Store: s, Recorder: man, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	defer u.Close()
	segs := closedSegments(t, 13, 1000) // three segments of four records
	done := make(chan error, len(segs))
	for _, seg := range segs {
		u.Enqueue(newJob(seg, func() (int32, bool) { return 0, true }, done))
	}
	for range segs {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if p.budget.Load() > 0 || len(man.entries) != len(segs) {
		t.Fatalf("%d SlowDowns left, %d of %d segments recorded", p.budget.Load(), len(man.entries), len(segs))
	}
	for _, seg := range segs {
		e := man.entries[seg.BaseOffset]
		if got := get(t, s, e.ObjectKey, 0, -1); int64(len(got)) != seg.Size {
			t.Fatalf("%s: %d bytes, segment has %d", e.ObjectKey, len(got), seg.Size)
		}
	}

	p.stuck.Store(true)
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if r, err := s.Get(short, "a", 0, -1); err == nil {
		b, rerr := io.ReadAll(r)
		r.Close()
		if rerr == nil {
			t.Fatalf("get succeeded with %d bytes while the store answers only SlowDown", len(b))
		}
	}
	p.stuck.Store(false)
	if got := get(t, s, "a", 0, -1); !bytes.Equal(got, data) {
		t.Fatal("after SlowDown ends: other bytes")
	}
}

// TestOpenKeepsSecretsOutOfErrors: keys in a tier URL are credentials,
// and no error names the secret.
func TestOpenKeepsSecretsOutOfErrors(t *testing.T) {
	for _, raw := range []string{
		"s3://AKIA:sup3rs3cret@bucket/p?bogus=1",
		"s3://AKIA:sup3rs3cret@bucket/p?insecure=maybe",
		"s3://AKIA:sup3rs3cret@/p",
		"s3://AKIA:sup3rs3cret@bucket/p?endpoint=127.0.0.1:1&insecure=true",
		"s3://AKIA:sup3rs3cret@bu%zzcket/p",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := tier.Open(ctx, raw, tier.Credentials{})
		cancel()
		if err == nil {
			t.Fatalf("%s opened", raw)
		}
		if strings.Contains(err.Error(), "sup3rs3cret") {
			t.Errorf("the error shows the secret: %v", err)
		}
	}
}
