package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

// Store is a bucket, or a prefix in one.
type Store struct {
	name     string
	bucket   string
	prefix   string // "" or ending in "/"
	client   *minio.Client
	core     minio.Core
	partSize int64
	parallel int
	lock     *lockPolicy
	log      *slog.Logger
	now      func() time.Time
	retry    retryPolicy
	endpoint string
}

type lockPolicy struct {
	mode minio.RetentionMode
	days int
}

var (
	_ storage.Storage = (*Store)(nil)
)

// New returns a Store for cfg. It does not contact the server; use
// [Store.Doctor] to check the setup. ctx is reserved for credential lookups
// that need the network; New currently makes none.
func New(ctx context.Context, name string, cfg *Config, opt storage.Options) (*Store, error) {
	_ = ctx
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("storage %s: %w", name, err)
	}
	host, secure, err := parseEndpoint(cfg.Endpoint, cfg.Insecure)
	if err != nil {
		return nil, fmt.Errorf("storage %s: %w", name, err)
	}
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("storage %s: make HTTP transport: %w", name, err)
	}
	if cfg.CAFile != "" {
		pool, err := loadCAs(config.Abs(opt.Dir, cfg.CAFile))
		if err != nil {
			return nil, fmt.Errorf("storage %s: %w", name, err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(host, &minio.Options{
		Creds:        chooseCredentials(cfg, opt),
		Secure:       secure,
		Transport:    tr,
		Region:       cfg.Region,
		BucketLookup: lookup,
		// One retry policy, ours (retry.go), which logs and knows which
		// requests can be repeated.
		MaxRetries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("storage %s: make S3 client for %s: %w", name, host, err)
	}
	s := &Store{
		name:     name,
		bucket:   cfg.Bucket,
		prefix:   normPrefix(cfg.Prefix),
		client:   client,
		core:     minio.Core{Client: client},
		partSize: int64(cfg.PartSize),
		parallel: cfg.ParallelParts,
		log:      opt.Logger,
		now:      time.Now,
		retry:    defaultRetry(),
		endpoint: host,
	}
	if s.partSize == 0 {
		s.partSize = DefaultPartSize
	}
	if s.parallel == 0 {
		s.parallel = DefaultParallelParts
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if l := cfg.ObjectLock; l != nil {
		mode, _ := retentionMode(l.Mode) // checked by Validate
		s.lock = &lockPolicy{mode: mode, days: l.Days}
	}
	return s, nil
}

func loadCAs(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read ca_file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("ca_file %s holds no PEM certificate", path)
	}
	return pool, nil
}

func normPrefix(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return ""
	}
	return p + "/"
}

// Name implements storage.Storage.
func (s *Store) Name() string { return s.name }

// String describes the store for messages, without credentials.
func (s *Store) String() string { return "s3://" + s.bucket + "/" + s.prefix }

func (s *Store) objectName(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "//") {
		return "", fmt.Errorf("invalid key %q", key)
	}
	return s.prefix + key, nil
}

// Stat implements storage.Storage.
func (s *Store) Stat(ctx context.Context, key string) (storage.Object, error) {
	name, err := s.objectName(key)
	if err != nil {
		return storage.Object{}, err
	}
	var info minio.ObjectInfo
	err = s.retry.do(ctx, s, "stat", key, func() error {
		var err error
		info, err = s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
		return err
	})
	if err != nil {
		return storage.Object{}, s.wrap("stat", key, err)
	}
	return storage.Object{Key: key, Size: info.Size, ModTime: info.LastModified}, nil
}

// List implements storage.Storage. A listing that fails mid-way is resumed
// after the last key seen.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.Object) error) error {
	return s.list(ctx, prefix, func(o minio.ObjectInfo) error {
		return fn(storage.Object{Key: strings.TrimPrefix(o.Key, s.prefix), Size: o.Size, ModTime: o.LastModified})
	})
}

// errStop is how list learns that fn failed, as opposed to the listing.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }

func (s *Store) list(ctx context.Context, prefix string, fn func(minio.ObjectInfo) error) error {
	after := ""
	err := s.retry.do(ctx, s, "list", prefix, func() error {
		lctx, cancel := context.WithCancel(ctx)
		defer cancel() // stops minio-go's listing goroutine when fn fails
		for o := range s.client.ListObjects(lctx, s.bucket, minio.ListObjectsOptions{
			Prefix: s.prefix + prefix, Recursive: true, StartAfter: after,
		}) {
			if o.Err != nil {
				return o.Err
			}
			if err := fn(o); err != nil {
				return errStop{err}
			}
			after = o.Key
		}
		return ctx.Err()
	})
	var stop errStop
	if errors.As(err, &stop) {
		return stop.err
	}
	if err != nil {
		return s.wrap("list", prefix, err)
	}
	return nil
}

// Used returns the total size of the objects below the store's prefix
// (current versions only).
func (s *Store) Used(ctx context.Context) (int64, error) {
	var n int64
	err := s.list(ctx, "", func(o minio.ObjectInfo) error {
		n += o.Size
		return nil
	})
	return n, err
}

// AbortIncomplete aborts multipart uploads below the store's prefix started
// more than olderThan ago: what a killed backup leaves behind. It returns how
// many it aborted. Keep olderThan above the longest backup's duration so a
// running upload is not cut.
func (s *Store) AbortIncomplete(ctx context.Context, olderThan time.Duration) (int, error) {
	cutoff := s.now().Add(-olderThan)
	type upload struct{ key, id string }
	var old []upload
	err := s.retry.do(ctx, s, "list uploads", "", func() error {
		old = old[:0]
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		for u := range s.client.ListIncompleteUploads(lctx, s.bucket, s.prefix, true) {
			if u.Err != nil {
				return u.Err
			}
			if !u.Initiated.After(cutoff) {
				old = append(old, upload{u.Key, u.UploadID})
			}
		}
		return ctx.Err()
	})
	if err != nil {
		return 0, s.wrap("list incomplete uploads", "", err)
	}
	n := 0
	for _, u := range old {
		err := s.retry.do(ctx, s, "abort upload", u.key, func() error {
			return s.core.AbortMultipartUpload(ctx, s.bucket, u.key, u.id)
		})
		if err != nil && !isCode(err, "NoSuchUpload") {
			return n, s.wrap("abort incomplete upload", strings.TrimPrefix(u.key, s.prefix), err)
		}
		n++
		s.log.Info("aborted incomplete upload", "storage", s.name, "key", strings.TrimPrefix(u.key, s.prefix))
	}
	return n, nil
}

// Open implements storage.Storage. The returned reader resumes with a Range
// request when the connection breaks mid-way, pinned to the same object
// version (ETag and version id).
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	name, err := s.objectName(key)
	if err != nil {
		return nil, err
	}
	r := &reader{s: s, ctx: ctx, key: key, name: name}
	if err := s.retry.do(ctx, s, "get", key, func() error { return r.open(0) }); err != nil {
		return nil, s.wrap("open", key, err)
	}
	return r, nil
}

// wrap adds the action and key to err and classifies it: missing objects
// wrap fs.ErrNotExist, errors retrying can't fix are storage.PermanentError.
func (s *Store) wrap(op, key string, err error) error {
	where := fmt.Sprintf("%s %s in storage %s (%s)", op, key, s.name, s)
	if key == "" {
		where = fmt.Sprintf("%s in storage %s (%s)", op, s.name, s)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", where, err)
	}
	resp := errResponse(err)
	switch {
	case resp.Code == "NoSuchKey" || (resp.Code == "" && resp.StatusCode == http.StatusNotFound) || resp.Code == "NoSuchVersion":
		return fmt.Errorf("%s: %w", where, fs.ErrNotExist)
	case resp.Code == "NoSuchBucket":
		return &storage.PermanentError{Err: fmt.Errorf("%s: bucket %q does not exist (create it, or fix bucket: in the config): %w", where, s.bucket, err)}
	case resp.Code == "InvalidAccessKeyId", resp.Code == "SignatureDoesNotMatch":
		return &storage.PermanentError{Err: fmt.Errorf("%s: the server rejects the credentials (check access_key/secret_key): %w", where, err)}
	case resp.Code == "AccessDenied" || resp.StatusCode == http.StatusForbidden:
		return &storage.PermanentError{Err: fmt.Errorf("%s: access denied (check the key's bucket policy): %w", where, err)}
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout:
		return &storage.PermanentError{Err: fmt.Errorf("%s: %w", where, err)}
	}
	return fmt.Errorf("%s: %w", where, err)
}

// errResponse finds the server's answer in err, also when wrapped
// (minio.ToErrorResponse looks at err itself only).
func errResponse(err error) minio.ErrorResponse {
	var resp minio.ErrorResponse
	errors.As(err, &resp)
	return resp
}

func isCode(err error, codes ...string) bool {
	code := errResponse(err).Code
	for _, c := range codes {
		if code == c {
			return true
		}
	}
	return false
}
