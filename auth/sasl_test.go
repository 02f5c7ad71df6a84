package auth_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/xdg-go/scram"

	"github.com/strata-io/strata/auth"
)

// users is a credential store of alice (both SCRAM mechanisms) and bob
// (SHA-512 only).
func users(t testing.TB) auth.Lookup {
	t.Helper()
	store := map[[2]string]auth.Credential{}
	add := func(user, mech, password string) {
		c, err := auth.NewCredential(mech, password, auth.MinIterations)
		if err != nil {
			t.Fatal(err)
		}
		store[[2]string{user, mech}] = c
	}
	add("alice", auth.ScramSHA256, "alice-secret")
	add("alice", auth.ScramSHA512, "alice-secret")
	add("bob", auth.ScramSHA512, "bob-secret")
	return func(user, mech string) (auth.Credential, bool) {
		c, ok := store[[2]string{user, mech}]
		return c, ok
	}
}

// scramLogin runs a SCRAM exchange with xdg-go's client.
func scramLogin(t *testing.T, lookup auth.Lookup, mech, user, password string) error {
	t.Helper()
	h := scram.SHA256
	if mech == auth.ScramSHA512 {
		h = scram.SHA512
	}
	cl, err := h.NewClient(user, password, "")
	if err != nil {
		t.Fatal(err)
	}
	conv := cl.NewConversation()
	x, err := auth.NewExchange(mech, lookup)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := conv.Step("")
	if err != nil {
		t.Fatal(err)
	}
	for !x.Done() {
		out, err := x.Step([]byte(msg))
		if err != nil {
			return err
		}
		if msg, err = conv.Step(string(out)); err != nil {
			t.Fatalf("the client refused the server's answer: %v", err)
		}
	}
	if !conv.Valid() {
		t.Fatal("the client did not verify the server's signature")
	}
	if x.User() != user {
		t.Fatalf("authenticated %q, want %q", x.User(), user)
	}
	return nil
}

func TestScram(t *testing.T) {
	lookup := users(t)
	for _, c := range []struct {
		mech, user, password string
		ok                   bool
	}{
		{auth.ScramSHA256, "alice", "alice-secret", true},
		{auth.ScramSHA512, "alice", "alice-secret", true},
		{auth.ScramSHA512, "bob", "bob-secret", true},
		{auth.ScramSHA256, "bob", "bob-secret", false}, // no SHA-256 credential
		{auth.ScramSHA256, "alice", "wrong", false},
		{auth.ScramSHA512, "nobody", "x", false},
	} {
		err := scramLogin(t, lookup, c.mech, c.user, c.password)
		if c.ok && err != nil {
			t.Errorf("%s %s: %v", c.mech, c.user, err)
		}
		if !c.ok && !errors.Is(err, auth.ErrAuthFailed) {
			t.Errorf("%s %s with a bad password: %v, want ErrAuthFailed", c.mech, c.user, err)
		}
	}
}

func TestPlain(t *testing.T) {
	lookup := users(t)
	for _, c := range []struct {
		msg  string
		want error
	}{
		{"\x00alice\x00alice-secret", nil},
		{"alice\x00alice\x00alice-secret", nil},
		{"\x00bob\x00bob-secret", nil}, // SHA-512 only
		{"\x00alice\x00wrong", auth.ErrAuthFailed},
		{"\x00nobody\x00x", auth.ErrAuthFailed},
		{"bob\x00alice\x00alice-secret", auth.ErrAuthFailed}, // acting for someone else
		{"\x00alice\x00", auth.ErrAuthFailed},
		{"alice-secret", auth.ErrMalformed},
		{"\x00\x00x", auth.ErrMalformed},
		{"\x00a\x00b\x00c", auth.ErrMalformed},
	} {
		x, err := auth.NewExchange(auth.Plain, lookup)
		if err != nil {
			t.Fatal(err)
		}
		_, err = x.Step([]byte(c.msg))
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("PLAIN %q: %v, want %v", c.msg, err, c.want)
		}
		if err == nil && !x.Done() {
			t.Errorf("PLAIN %q: accepted but not done", c.msg)
		}
		if _, err := x.Step([]byte(c.msg)); err == nil {
			t.Errorf("PLAIN %q: a second message accepted", c.msg)
		}
	}
}

func TestScramMalformed(t *testing.T) {
	lookup := users(t)
	for _, msg := range []string{"", "garbage", "n,,", "n,,n=alice", "p=tls-unique,,n=alice,r=abc"} {
		x, _ := auth.NewExchange(auth.ScramSHA256, lookup)
		if _, err := x.Step([]byte(msg)); err == nil {
			t.Errorf("SCRAM first message %q accepted", msg)
		}
	}
	// A valid first message, then a final one that is garbage or holds a
	// forged proof.
	for _, final := range []string{"", "c=biws", "c=biws,r=wrongnonce,p=AAAA", "x"} {
		x, _ := auth.NewExchange(auth.ScramSHA256, lookup)
		if _, err := x.Step([]byte("n,,n=alice,r=clientnonce")); err != nil {
			t.Fatal(err)
		}
		if _, err := x.Step([]byte(final)); err == nil || x.Done() {
			t.Errorf("SCRAM final message %q accepted", final)
		}
	}
}

func TestCredentialBounds(t *testing.T) {
	if _, err := auth.NewCredential(auth.ScramSHA256, "pw", auth.MinIterations-1); !errors.Is(err, auth.ErrBadCredential) {
		t.Errorf("%d iterations: %v", auth.MinIterations-1, err)
	}
	if _, err := auth.NewCredential(auth.ScramSHA256, "pw", auth.MaxIterations+1); !errors.Is(err, auth.ErrBadCredential) {
		t.Errorf("%d iterations: %v", auth.MaxIterations+1, err)
	}
	if _, err := auth.NewCredential("SCRAM-SHA-1", "pw", auth.MinIterations); !errors.Is(err, auth.ErrUnknownMechanism) {
		t.Errorf("SCRAM-SHA-1: %v", err)
	}
	if _, err := auth.NewCredential(auth.ScramSHA256, "", auth.MinIterations); !errors.Is(err, auth.ErrBadCredential) {
		t.Errorf("empty password: %v", err)
	}
	if _, err := auth.NewExchange("GSSAPI", nil); !errors.Is(err, auth.ErrUnknownMechanism) {
		t.Errorf("GSSAPI: %v", err)
	}
}

// FuzzExchange feeds each mechanism arbitrary client messages: an
// exchange fails or goes on, never panics, and never ends authenticated
// without the password.
func FuzzExchange(f *testing.F) {
	lookup := users(f)
	f.Add(uint8(0), []byte("\x00alice\x00wrong"), []byte(""))
	f.Add(uint8(1), []byte("n,,n=alice,r=abc"), []byte("c=biws,r=abc,p=AAAA"))
	f.Add(uint8(2), []byte("n,a=bob,n=bob,r=x"), []byte("c=biws,r=x,p=="))
	f.Fuzz(func(t *testing.T, m uint8, first, second []byte) {
		mech := auth.Mechanisms[int(m)%len(auth.Mechanisms)]
		x, err := auth.NewExchange(mech, lookup)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x.Step(first); err != nil {
			return
		}
		if x.Done() && !bytes.Contains(first, []byte("-secret")) { // PLAIN with the password
			t.Fatalf("%s authenticated %q from one message %q", mech, x.User(), first)
		}
		if x.Done() {
			return
		}
		if _, err := x.Step(second); err == nil && x.Done() {
			t.Fatalf("%s authenticated %q without the password: %q, %q", mech, x.User(), first, second)
		}
	})
}

// TestScramDoubledNonce: librdkafka 2.0 answers the server's nonce with
// its own nonce before it again; Kafka's server accepts a final nonce
// that ends with its own, and so does this one, checking the proof over
// the messages as sent. Any other nonce is refused.
func TestScramDoubledNonce(t *testing.T) {
	lookup := users(t)
	for _, c := range []struct {
		name     string
		password string
		nonce    func(cNonce, sNonce string) string
		ok       bool
	}{
		{"doubled", "alice-secret", func(c, s string) string { return c + s }, true},
		{"doubled, wrong password", "nope", func(c, s string) string { return c + s }, false},
		{"another suffix", "alice-secret", func(c, s string) string { return c + s + "x" }, false},
	} {
		x, _ := auth.NewExchange(auth.ScramSHA256, lookup)
		const c1bare = "n=alice,r=clientnonce"
		s1, err := x.Step([]byte("n,," + c1bare))
		if err != nil {
			t.Fatal(err)
		}
		sNonce, salt64, iters := "", "", 0
		for _, a := range strings.Split(string(s1), ",") {
			switch {
			case strings.HasPrefix(a, "r="):
				sNonce = a[2:]
			case strings.HasPrefix(a, "s="):
				salt64 = a[2:]
			case strings.HasPrefix(a, "i="):
				iters, _ = strconv.Atoi(a[2:])
			}
		}
		salt, _ := base64.StdEncoding.DecodeString(salt64)
		salted, _ := pbkdf2.Key(sha256.New, c.password, salt, iters, sha256.Size)
		hm := func(key []byte, msg string) []byte {
			m := hmac.New(sha256.New, key)
			m.Write([]byte(msg))
			return m.Sum(nil)
		}
		clientKey := hm(salted, "Client Key")
		stored := sha256.Sum256(clientKey)
		c2wop := "c=biws,r=" + c.nonce("clientnonce", sNonce)
		sig := hm(stored[:], c1bare+","+string(s1)+","+c2wop)
		proof := make([]byte, len(sig))
		for i := range sig {
			proof[i] = clientKey[i] ^ sig[i]
		}
		out, err := x.Step([]byte(c2wop + ",p=" + base64.StdEncoding.EncodeToString(proof)))
		if c.ok {
			want := "v=" + base64.StdEncoding.EncodeToString(hm(hm(salted, "Server Key"), c1bare+","+string(s1)+","+c2wop))
			if err != nil || !x.Done() || string(out) != want {
				t.Errorf("%s: %v, done %v, answer %q", c.name, err, x.Done(), out)
			}
		} else if err == nil || x.Done() {
			t.Errorf("%s: accepted", c.name)
		}
	}
}
