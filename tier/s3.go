package tier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config names a bucket on an S3-compatible service.
type S3Config struct {
	Endpoint    string // host:port
	Region      string
	Bucket      string
	Prefix      string // without slashes at either end
	Insecure    bool   // plain HTTP
	Credentials Credentials
}

// S3 is a Store in an S3 bucket, through minio-go. Objects over
// s3PartSize go up as multipart uploads, parts in parallel.
//
// Puts go through a client that does not retry: minio-go rewinds a
// request body for its retry while net/http may still be sending it (a
// server that answers 503 SlowDown before reading the body), a data race
// on the reader. The uploader retries whole uploads, with backoff,
// instead. Reads, lists and deletes carry no body and keep minio-go's
// retries.
type S3 struct {
	cfg       S3Config
	client    *minio.Client
	putClient *minio.Client
}

const s3PartSize = 16 << 20

// OpenS3 connects and checks the bucket is there and the credentials are
// accepted.
func OpenS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if cfg.Credentials.AccessKey == "" || cfg.Credentials.SecretKey == "" {
		return nil, fmt.Errorf("tier %s: no credentials (--tier-access-key/--tier-secret-key or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)", cfg.name())
	}
	opts := func(retries int) *minio.Options {
		return &minio.Options{
			Creds:  credentials.NewStaticV4(cfg.Credentials.AccessKey, cfg.Credentials.SecretKey, cfg.Credentials.SessionToken),
			Secure: !cfg.Insecure, Region: cfg.Region, MaxRetries: retries,
		}
	}
	client, err := minio.New(cfg.Endpoint, opts(0))
	if err != nil {
		return nil, fmt.Errorf("tier %s: %w", cfg.name(), err)
	}
	putClient, err := minio.New(cfg.Endpoint, opts(1))
	if err != nil {
		return nil, fmt.Errorf("tier %s: %w", cfg.name(), err)
	}
	s := &S3{cfg: cfg, client: client, putClient: putClient}
	ok, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("tier %s: %s", cfg.name(), describeS3Error(err))
	}
	if !ok {
		return nil, fmt.Errorf("tier %s: bucket %q does not exist", cfg.name(), cfg.Bucket)
	}
	return s, nil
}

func (c S3Config) name() string {
	scheme := "https"
	if c.Insecure {
		scheme = "http"
	}
	return fmt.Sprintf("s3://%s/%s (%s://%s)", c.Bucket, c.Prefix, scheme, c.Endpoint)
}

func (s *S3) String() string { return s.cfg.name() }

// describeS3Error turns the usual startup failures into one plain line.
func describeS3Error(err error) string {
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "InvalidAccessKeyId":
		return "access key not accepted"
	case "SignatureDoesNotMatch":
		return "secret key not accepted"
	case "AccessDenied":
		return "access denied"
	case "":
		return strings.ReplaceAll(err.Error(), "\n", " ")
	}
	return resp.Code + ": " + resp.Message
}

func (s *S3) object(key string) (string, error) {
	if err := validKey(key); err != nil {
		return "", err
	}
	if s.cfg.Prefix == "" {
		return key, nil
	}
	return s.cfg.Prefix + "/" + key, nil
}

func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	obj, err := s.object(key)
	if err != nil {
		return err
	}
	_, err = s.putClient.PutObject(ctx, s.cfg.Bucket, obj, r, size, minio.PutObjectOptions{
		PartSize: s3PartSize, NumThreads: 4, ContentType: "application/octet-stream",
	})
	if err != nil {
		return fmt.Errorf("tier: put %s: %w", key, err)
	}
	return nil
}

func (s *S3) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	obj, err := s.object(key)
	if err != nil {
		return nil, err
	}
	var opts minio.GetObjectOptions
	switch {
	case length == 0:
		return io.NopCloser(strings.NewReader("")), nil
	case length > 0:
		err = opts.SetRange(offset, offset+length-1)
	case offset > 0:
		err = opts.SetRange(offset, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("tier: get %s: %w", key, err)
	}
	// GetObject is lazy: Stat makes the request now, so a missing object
	// or an outage is an error here, not on the first Read.
	o, err := s.client.GetObject(ctx, s.cfg.Bucket, obj, opts)
	if err == nil {
		_, err = o.Stat()
	}
	if err != nil {
		if o != nil {
			o.Close()
		}
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		return nil, fmt.Errorf("tier: get %s: %w", key, err)
	}
	return o, nil
}

func (s *S3) Delete(ctx context.Context, keys ...string) error {
	objs := make(chan minio.ObjectInfo, len(keys))
	for _, key := range keys {
		obj, err := s.object(key)
		if err != nil {
			return err
		}
		objs <- minio.ObjectInfo{Key: obj}
	}
	close(objs)
	var errs []error
	for e := range s.client.RemoveObjects(ctx, s.cfg.Bucket, objs, minio.RemoveObjectsOptions{}) {
		if e.Err != nil && minio.ToErrorResponse(e.Err).Code != "NoSuchKey" {
			errs = append(errs, fmt.Errorf("tier: delete %s: %w", e.ObjectName, e.Err))
		}
	}
	return errors.Join(errs...)
}

func (s *S3) List(ctx context.Context, prefix string, fn func(Object) error) error {
	full := prefix
	if s.cfg.Prefix != "" {
		full = s.cfg.Prefix + "/" + prefix
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine if fn fails
	for o := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: full, Recursive: true}) {
		if o.Err != nil {
			return fmt.Errorf("tier: list %s: %w", prefix, o.Err)
		}
		key := o.Key
		if s.cfg.Prefix != "" {
			key = strings.TrimPrefix(key, s.cfg.Prefix+"/")
		}
		if err := fn(Object{Key: key, Size: o.Size, Modified: o.LastModified}); err != nil {
			return err
		}
	}
	return nil
}

// SweepPartial aborts multipart uploads initiated before before: a
// process killed mid-Put leaves one, and the bucket keeps (and bills) its
// parts until it is aborted.
func (s *S3) SweepPartial(ctx context.Context, before time.Time) (int, error) {
	prefix := ""
	if s.cfg.Prefix != "" {
		prefix = s.cfg.Prefix + "/"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	core := minio.Core{Client: s.client}
	removed := 0
	for u := range s.client.ListIncompleteUploads(ctx, s.cfg.Bucket, prefix, true) {
		if u.Err != nil {
			return removed, fmt.Errorf("tier: list incomplete uploads: %w", u.Err)
		}
		if !u.Initiated.Before(before) {
			continue
		}
		if err := core.AbortMultipartUpload(ctx, s.cfg.Bucket, u.Key, u.UploadID); err != nil {
			return removed, fmt.Errorf("tier: abort upload of %s: %w", u.Key, err)
		}
		removed++
	}
	return removed, nil
}
