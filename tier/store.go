package tier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Store is an object store: a bucket (and prefix) of an S3-compatible
// service, or a local directory. Keys are slash-separated and relative to
// the store's prefix. Every error but ErrNotFound may be transient.
type Store interface {
	// Put writes an object whole: readers never see part of it.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Get reads length bytes from offset (length < 0: to the end).
	Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// Delete removes objects; missing ones are not an error.
	Delete(ctx context.Context, keys ...string) error
	// List calls fn for each object under prefix.
	List(ctx context.Context, prefix string, fn func(Object) error) error
	// String names the store for logs and errors, without credentials.
	String() string
}

// PartialSweeper is a store that keeps the remains of writes that never
// finished, as when a process is killed mid-Put: a directory's temporary
// files, a bucket's incomplete multipart uploads. SweepPartial removes
// those begun before before and reports how many it removed.
type PartialSweeper interface {
	SweepPartial(ctx context.Context, before time.Time) (int, error)
}

// Object is one listed object.
type Object struct {
	Key      string
	Size     int64
	Modified time.Time
}

// ErrNotFound: no object has that key.
var ErrNotFound = errors.New("tier: object not found")

// Credentials for an S3 store. Empty fields fall back to the standard
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN.
type Credentials struct {
	AccessKey, SecretKey, SessionToken string
}

// Open opens the store a tier URL names and checks it can be used:
//
//	file:///var/lib/strata/tier
//	s3://bucket/prefix?endpoint=host:port&region=us-east-1&insecure=true
//
// Without an endpoint, s3:// means AWS (s3.amazonaws.com). A bad URL, a
// missing bucket or refused credentials fail here with one line naming
// the problem.
//
// Keys in the URL (s3://ACCESS:SECRET@bucket/...) are taken as
// credentials, and no error or log line shows the secret.
func Open(ctx context.Context, rawURL string, creds Credentials) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("tier url: %w", redactErr(err, rawURL))
	}
	if u.User != nil {
		if pass, ok := u.User.Password(); ok && creds.SecretKey == "" {
			creds.SecretKey = pass
		}
		if creds.AccessKey == "" {
			creds.AccessKey = u.User.Username()
		}
		rawURL = u.Redacted()
		u.User = nil
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("tier url %q: a file URL has no host (file:///abs/path)", rawURL)
		}
		if u.Path == "" {
			return nil, fmt.Errorf("tier url %q: no directory", rawURL)
		}
		return OpenDir(u.Path)
	case "s3":
		cfg := S3Config{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/"), Endpoint: "s3.amazonaws.com", Credentials: creds}
		if cfg.Bucket == "" {
			return nil, fmt.Errorf("tier url %q: no bucket (s3://bucket/prefix)", rawURL)
		}
		q := u.Query()
		for k := range q {
			switch k {
			case "endpoint", "region", "insecure":
			default:
				return nil, fmt.Errorf("tier url %q: unknown parameter %q (endpoint, region, insecure)", rawURL, k)
			}
		}
		if e := q.Get("endpoint"); e != "" {
			cfg.Endpoint = e
		}
		cfg.Region = q.Get("region")
		if v := q.Get("insecure"); v != "" {
			if cfg.Insecure, err = strconv.ParseBool(v); err != nil {
				return nil, fmt.Errorf("tier url %q: insecure=%q is not true or false", rawURL, v)
			}
		}
		if cfg.Credentials.AccessKey == "" {
			cfg.Credentials.AccessKey = os.Getenv("AWS_ACCESS_KEY_ID")
		}
		if cfg.Credentials.SecretKey == "" {
			cfg.Credentials.SecretKey = os.Getenv("AWS_SECRET_ACCESS_KEY")
		}
		if cfg.Credentials.SessionToken == "" {
			cfg.Credentials.SessionToken = os.Getenv("AWS_SESSION_TOKEN")
		}
		return OpenS3(ctx, cfg)
	case "":
		return nil, fmt.Errorf("tier url %q: no scheme (file:// or s3://)", rawURL)
	}
	return nil, fmt.Errorf("tier url %q: unknown scheme %q (file:// or s3://)", rawURL, u.Scheme)
}

// validKey refuses keys that could leave the store's prefix.
func validKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") {
		return fmt.Errorf("tier: invalid key %q", key)
	}
	for _, part := range strings.Split(key, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("tier: invalid key %q", key)
		}
	}
	return nil
}

// redactErr keeps a URL's password out of a parse error, which quotes
// the URL.
func redactErr(err error, rawURL string) error {
	i := strings.Index(rawURL, "://")
	at := strings.LastIndex(rawURL, "@")
	if i < 0 || at < i {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), rawURL, rawURL[:i+3]+"xxxxx"+rawURL[at:]))
}
