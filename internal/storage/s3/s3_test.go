package s3

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/doctor"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
	"github.com/lifeboat-backup/lifeboat/internal/storage/storagetest"
	"github.com/lifeboat-backup/lifeboat/internal/testutil/miniotest"
)

// bucketSeq numbers the buckets made by one test binary.
var bucketSeq atomic.Int64

// newBucket makes a fresh bucket on srv and returns its name.
func newBucket(t *testing.T, srv *miniotest.Server, objectLock bool) string {
	t.Helper()
	name := fmt.Sprintf("lifeboat-test-%d", bucketSeq.Add(1))
	srv.MakeBucket(t, name, objectLock)
	return name
}

// testConfig is a Config for bucket on srv with the root credentials and
// the smallest part size, so multipart paths run with little data.
func testConfig(srv *miniotest.Server, bucket string) *Config {
	cfg := DefaultConfig()
	cfg.Endpoint = srv.URL()
	cfg.Bucket = bucket
	cfg.AccessKey = config.NewSecret(srv.AccessKey)
	cfg.SecretKey = config.NewSecret(srv.SecretKey)
	cfg.PathStyle = true
	cfg.PartSize = MinPartSize
	return cfg
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newStore(t *testing.T, cfg *Config, opt storage.Options) *Store {
	t.Helper()
	if opt.Logger == nil {
		opt.Logger = testLogger(t)
	}
	st, err := New(t.Context(), "test", cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	// Tests wait less between retries; the policy is the same.
	st.retry.base, st.retry.max = 20*time.Millisecond, 200*time.Millisecond
	return st
}

func TestConformance(t *testing.T) {
	srv := miniotest.Start(t)
	t.Run("Plain", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.Storage {
			return newStore(t, testConfig(srv, newBucket(t, srv, false)), storage.Options{})
		})
	})
	t.Run("VersionedWithPrefix", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.Storage {
			bucket := newBucket(t, srv, false)
			srv.EnableVersioning(t, bucket)
			cfg := testConfig(srv, bucket)
			cfg.Prefix = "/team/lifeboat/"
			cfg.ParallelParts = 3
			// Something outside the prefix must stay invisible.
			if _, err := srv.Client().PutObject(t.Context(), bucket, "other/x", strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
			return newStore(t, cfg, storage.Options{})
		})
	})
}

func TestPrefixAndUsed(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := newBucket(t, srv, false)
	cfg := testConfig(srv, bucket)
	cfg.Prefix = "apps/shop"
	st := newStore(t, cfg, storage.Options{})
	for _, k := range []string{"db/a", "db/b"} {
		if _, err := st.Put(t.Context(), k, strings.NewReader(k+"-data")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := srv.Client().StatObject(t.Context(), bucket, "apps/shop/db/a", minio.StatObjectOptions{}); err != nil {
		t.Fatalf("object not stored under the prefix: %v", err)
	}
	n, err := st.Used(t.Context())
	if err != nil || n != int64(len("db/a-data")*2) {
		t.Fatalf("Used = %d, %v", n, err)
	}
}

func TestTLSWithCAFile(t *testing.T) {
	srv := miniotest.Start(t, miniotest.WithTLS())
	bucket := newBucket(t, srv, false)

	// Without the CA the server's certificate is refused, at once (a TLS
	// problem is not retried).
	cfg := testConfig(srv, bucket)
	st := newStore(t, cfg, storage.Options{})
	if _, err := st.Put(t.Context(), "k", strings.NewReader("x")); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Put without ca_file: %v, want a certificate error", err)
	}

	cfg.CAFile = filepath.Base(srv.CAFile)
	st = newStore(t, cfg, storage.Options{Dir: filepath.Dir(srv.CAFile)})
	if _, err := st.Put(t.Context(), "k", strings.NewReader("over tls")); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, st, "k"); string(got) != "over tls" {
		t.Fatalf("got %q", got)
	}
}

func TestCredentialChain(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := newBucket(t, srv, false)
	base := testConfig(srv, bucket)
	base.AccessKey, base.SecretKey = config.Secret{}, config.Secret{}

	envOf := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".aws"), 0o700); err != nil {
		t.Fatal(err)
	}
	creds := fmt.Sprintf("[default]\naws_access_key_id = wrong\naws_secret_access_key = wrongwrong\n\n[backup]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
		srv.AccessKey, srv.SecretKey)
	if err := os.WriteFile(filepath.Join(home, ".aws", "credentials"), []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		env  map[string]string
		ok   bool
	}{
		{"env", map[string]string{"AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey}, true},
		{"file profile", map[string]string{"HOME": home, "AWS_PROFILE": "backup"}, true},
		{"env before file", map[string]string{"HOME": home, "AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey}, true},
		{"file default profile", map[string]string{"HOME": home}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := *base
			st := newStore(t, &cfg, storage.Options{Env: envOf(tc.env)})
			_, err := st.Stat(t.Context(), "nothing")
			if tc.ok && !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Stat = %v, want fs.ErrNotExist (authenticated)", err)
			}
			if !tc.ok && (err == nil || errors.Is(err, fs.ErrNotExist) || !storage.IsPermanent(err)) {
				t.Fatalf("Stat = %v, want a permanent credentials error", err)
			}
		})
	}
}

func TestPruneCredentials(t *testing.T) {
	srv := miniotest.Start(t)
	cfg := testConfig(srv, newBucket(t, srv, false))
	cfg.PruneCredentials = &Credentials{AccessKey: config.NewSecret("prune-user"), SecretKey: config.NewSecret("not-the-root-secret")}

	backup := newStore(t, cfg, storage.Options{})
	if _, err := backup.Put(t.Context(), "k", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	// Prune uses its own key, which this server doesn't know: its requests
	// fail, which shows the other key pair is the one used.
	prune := newStore(t, cfg, storage.Options{Prune: true})
	err := prune.Delete(t.Context(), "k")
	if err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("Delete with prune credentials = %v, want them rejected", err)
	}
	if _, err := backup.Stat(t.Context(), "k"); err != nil {
		t.Fatalf("object gone: %v", err)
	}
}

func TestDoctor(t *testing.T) {
	srv := miniotest.Start(t)
	plain := newBucket(t, srv, false)
	locked := newBucket(t, srv, true)
	lockCfg := func(bucket string) *Config {
		cfg := testConfig(srv, bucket)
		cfg.ObjectLock = &ObjectLock{Mode: "compliance", Days: 7}
		return cfg
	}
	find := func(fs []doctor.Finding, l doctor.Level, substr string) *doctor.Finding {
		for i := range fs {
			if fs[i].Level == l && strings.Contains(fs[i].Msg, substr) {
				return &fs[i]
			}
		}
		return nil
	}

	t.Run("LockConfiguredBucketWithout", func(t *testing.T) {
		got := newStore(t, lockCfg(plain), storage.Options{}).Doctor(t.Context())
		f := find(got, doctor.Fail, "no object lock")
		if f == nil || !strings.Contains(f.Hint, "created") {
			t.Fatalf("no Fail about object lock with a hint: %+v", got)
		}
		if find(got, doctor.Fail, "versioning") == nil {
			t.Fatalf("no Fail about versioning: %+v", got)
		}
	})
	t.Run("LockBucket", func(t *testing.T) {
		got := newStore(t, lockCfg(locked), storage.Options{}).Doctor(t.Context())
		for _, f := range got {
			if f.Level != doctor.OK {
				t.Fatalf("unexpected finding %+v in %+v", f, got)
			}
		}
		if find(got, doctor.OK, "has object lock") == nil || find(got, doctor.OK, "versioning") == nil {
			t.Fatalf("findings %+v", got)
		}
	})
	t.Run("NoLockConfigured", func(t *testing.T) {
		got := newStore(t, testConfig(srv, plain), storage.Options{}).Doctor(t.Context())
		if find(got, doctor.Warn, "can be deleted") == nil {
			t.Fatalf("no warning about deletable backups: %+v", got)
		}
	})
	t.Run("MissingBucket", func(t *testing.T) {
		got := newStore(t, testConfig(srv, "no-such-bucket"), storage.Options{}).Doctor(t.Context())
		if f := find(got, doctor.Fail, "does not exist"); f == nil || f.Hint == "" {
			t.Fatalf("findings %+v", got)
		}
	})
	t.Run("WrongKey", func(t *testing.T) {
		cfg := testConfig(srv, plain)
		cfg.SecretKey = config.NewSecret("wrong-secret")
		got := newStore(t, cfg, storage.Options{}).Doctor(t.Context())
		if f := find(got, doctor.Fail, "cannot reach"); f == nil || !strings.Contains(f.Hint, "secret_key") {
			t.Fatalf("findings %+v", got)
		}
		for _, f := range got {
			if strings.Contains(f.Msg+f.Hint, "wrong-secret") {
				t.Fatalf("secret leaked into %+v", f)
			}
		}
	})
}

func TestValidate(t *testing.T) {
	ok := func() *Config {
		c := DefaultConfig()
		c.Bucket = "b"
		return c
	}
	ref := func(string) config.Secret { return config.NewSecret("x") }
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		field string // "" means valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no bucket", func(c *Config) { c.Bucket = "" }, "bucket"},
		{"bucket with path", func(c *Config) { c.Bucket = "b/dir" }, "bucket"},
		{"url endpoint", func(c *Config) { c.Endpoint = "https://minio.internal:9000" }, ""},
		{"endpoint with path", func(c *Config) { c.Endpoint = "https://minio.internal:9000/bucket" }, "endpoint"},
		{"endpoint scheme", func(c *Config) { c.Endpoint = "ftp://x" }, "endpoint"},
		{"https but insecure", func(c *Config) { c.Endpoint, c.Insecure = "https://x", true }, "endpoint"},
		{"endpoint userinfo", func(c *Config) { c.Endpoint = "https://k:s@x" }, "endpoint"},
		{"only access key", func(c *Config) { c.AccessKey = ref("${env:K}") }, "secret_key"},
		{"only secret key", func(c *Config) { c.SecretKey = ref("${env:S}") }, "access_key"},
		{"both keys", func(c *Config) { c.AccessKey, c.SecretKey = ref("${env:K}"), ref("${env:S}") }, ""},
		{"part too small", func(c *Config) { c.PartSize = 1 << 20 }, "part_size"},
		{"parallel", func(c *Config) { c.ParallelParts = -1 }, "parallel_parts"},
		{"ca with insecure", func(c *Config) { c.CAFile, c.Insecure = "ca.pem", true }, "ca_file"},
		{"lock mode", func(c *Config) { c.ObjectLock = &ObjectLock{Mode: "forever", Days: 3} }, "object_lock.mode"},
		{"lock days", func(c *Config) { c.ObjectLock = &ObjectLock{Mode: "compliance"} }, "object_lock.days"},
		{"lock ok", func(c *Config) { c.ObjectLock = &ObjectLock{Mode: "GOVERNANCE", Days: 3} }, ""},
		{"prune half", func(c *Config) { c.PruneCredentials = &Credentials{AccessKey: ref("${env:P}")} }, "prune_credentials.secret_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok()
			tc.edit(c)
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var fe *config.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || fe.Hint == "" {
				t.Fatalf("Validate = %v, want a FieldError on %s with a hint", err, tc.field)
			}
		})
	}
}

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct {
		in       string
		insecure bool
		host     string
		secure   bool
	}{
		{"", false, "s3.amazonaws.com", true},
		{"minio:9000", false, "minio:9000", true},
		{"minio:9000", true, "minio:9000", false},
		{"http://minio:9000", false, "minio:9000", false},
		{"https://minio:9000/", false, "minio:9000", true},
	} {
		host, secure, err := parseEndpoint(tc.in, tc.insecure)
		if err != nil || host != tc.host || secure != tc.secure {
			t.Errorf("parseEndpoint(%q, %v) = %q, %v, %v", tc.in, tc.insecure, host, secure, err)
		}
	}
}

func readAll(t *testing.T, st storage.Storage, key string) []byte {
	t.Helper()
	rc, err := st.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open(%s): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

func put(t *testing.T, st storage.Storage, key string, data []byte) {
	t.Helper()
	if _, err := st.Put(t.Context(), key, onlyReader{bytes.NewReader(data)}); err != nil {
		t.Fatalf("Put(%s): %v", key, err)
	}
}

// onlyReader hides bytes.Reader's other methods: a stream of unknown length.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// TestYAML decodes a storage entry through the real config loader: every key
// and type the docs promise, defaults kept, secrets resolved.
func TestYAML(t *testing.T) {
	reg := config.Registry{Storages: map[string]func() config.Spec{"s3": func() config.Spec { return DefaultConfig() }}}
	env := func(k string) (string, bool) { return "value-of-" + k, true }
	doc := `
encryption:
  recipients: [age1example]
storages:
  offsite:
    type: s3
    endpoint: https://minio.internal:9000
    region: eu-central-1
    bucket: acme-backups
    prefix: lifeboat
    access_key: ${env:S3_KEY}
    secret_key: ${env:S3_SECRET}
    path_style: true
    ca_file: ca.pem
    part_size: 64MiB
    parallel_parts: 4
    object_lock: {mode: compliance, days: 30}
    prune_credentials:
      access_key: ${env:PRUNE_KEY}
      secret_key: ${env:PRUNE_SECRET}
  minimal:
    type: s3
    bucket: other
`
	cfg, err := config.Parse("lifeboat.yaml", t.TempDir(), []byte(doc), reg, env)
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Storages["offsite"].Spec.(*Config)
	if got.Endpoint != "https://minio.internal:9000" || got.Region != "eu-central-1" || got.Bucket != "acme-backups" ||
		got.Prefix != "lifeboat" || !got.PathStyle || got.CAFile != "ca.pem" || got.PartSize != 64<<20 ||
		got.ParallelParts != 4 || got.ObjectLock == nil || got.ObjectLock.Mode != "compliance" || got.ObjectLock.Days != 30 {
		t.Fatalf("decoded %+v", got)
	}
	if got.AccessKey.Reveal() != "value-of-S3_KEY" || got.PruneCredentials.SecretKey.Reveal() != "value-of-PRUNE_SECRET" {
		t.Fatal("secrets not resolved")
	}
	min := cfg.Storages["minimal"].Spec.(*Config)
	if min.Endpoint != defaultEndpoint || min.PartSize != DefaultPartSize || min.ParallelParts != DefaultParallelParts {
		t.Fatalf("defaults lost: %+v", min)
	}

	bad := strings.Replace(doc, "days: 30", "days: 0", 1)
	_, err = config.Parse("lifeboat.yaml", t.TempDir(), []byte(bad), reg, env)
	if err == nil || !strings.Contains(err.Error(), "object_lock.days") || !strings.Contains(err.Error(), "lifeboat.yaml:") {
		t.Fatalf("bad days: %v", err)
	}
}
