package s3

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/lifeboat-backup/lifeboat/internal/storage"
	"github.com/lifeboat-backup/lifeboat/internal/testutil/miniotest"
)

// faultProxy is a reverse proxy on loopback in front of a real MinIO that
// breaks chosen requests. Requests keep their Host header so that their
// signatures stay valid.
type faultProxy struct {
	srv *httptest.Server

	failParts atomic.Int32 // part uploads still to answer with 503
	failPuts  atomic.Int32 // single-request object PUTs still to answer with 503
	cutGets   atomic.Int32 // GET bodies still to cut after cutAt bytes
	cutAt     int64

	// hideLock makes the server behave like one that won't tell an
	// object's lock: no lock headers on HEAD, unreadable retention XML.
	hideLock atomic.Bool

	// loseCommits is how many object-creating requests (single PUT,
	// CompleteMultipartUpload) are carried out but answered by a dropped
	// connection, as when a response is lost on the way back.
	loseCommits atomic.Int32

	// beforeCommit, when set, runs before a request that creates an object
	// (CompleteMultipartUpload or a single PUT) is forwarded.
	beforeCommit func()

	mu  sync.Mutex
	log []string // "METHOD query range" of every request
}

func newFaultProxy(t *testing.T, srv *miniotest.Server) *faultProxy {
	t.Helper()
	target, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
		},
		ModifyResponse: func(resp *http.Response) error {
			if p.hideLock.Load() {
				for _, h := range []string{"X-Amz-Object-Lock-Mode", "X-Amz-Object-Lock-Retain-Until-Date", "X-Amz-Object-Lock-Legal-Hold"} {
					resp.Header.Del(h)
				}
				if resp.Request.URL.Query().Has("retention") {
					resp.Body.Close()
					const junk = "<ObjectLockRetention><Mode>COMPLIANCE</Mode></ObjectLockRetention>"
					resp.Body = io.NopCloser(strings.NewReader(junk))
					resp.ContentLength = int64(len(junk))
					resp.Header.Set("Content-Length", strconv.Itoa(len(junk)))
				}
			}
			if resp.Request.Method == http.MethodGet && resp.Request.URL.Query().Get("uploads") == "" &&
				resp.StatusCode/100 == 2 && resp.ContentLength > p.cutAt && isObjectRequest(resp.Request) {
				if p.cutGets.Add(-1) >= 0 {
					resp.Body = &cutBody{rc: resp.Body, left: p.cutAt}
				}
			}
			return nil
		},
		ErrorLog: log.New(io.Discard, "", 0), // the cuts are on purpose
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		p.mu.Lock()
		p.log = append(p.log, r.Method+" "+r.URL.RawQuery+" "+r.Header.Get("Range"))
		p.mu.Unlock()
		fail := false
		switch {
		case r.Method == http.MethodPut && q.Has("partNumber"):
			fail = p.failParts.Add(-1) >= 0
		case r.Method == http.MethodPut && !q.Has("uploadId") && isObjectRequest(r):
			fail = p.failPuts.Add(-1) >= 0
			if !fail && p.beforeCommit != nil {
				p.beforeCommit()
			}
		case r.Method == http.MethodPost && q.Has("uploadId") && p.beforeCommit != nil:
			p.beforeCommit()
		}
		commit := (r.Method == http.MethodPut && !q.Has("uploadId") && isObjectRequest(r)) ||
			(r.Method == http.MethodPost && q.Has("uploadId"))
		if !fail && commit && p.loseCommits.Add(-1) >= 0 {
			rp.ServeHTTP(httptest.NewRecorder(), r)
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		if fail {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>injected by the test proxy</Message></Error>`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// isObjectRequest tells object requests (/bucket/key) from bucket ones.
func isObjectRequest(r *http.Request) bool {
	return strings.Count(strings.Trim(r.URL.Path, "/"), "/") >= 1
}

func (p *faultProxy) requests(prefix string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, l := range p.log {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// cutBody ends a response body with an error after left bytes, which makes
// the proxy abort the connection mid-body.
type cutBody struct {
	rc   io.ReadCloser
	left int64
}

func (c *cutBody) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errors.New("test proxy: connection cut")
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.rc.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *cutBody) Close() error { return c.rc.Close() }

func proxiedStore(t *testing.T, srv *miniotest.Server, p *faultProxy, bucket string) *Store {
	t.Helper()
	cfg := testConfig(srv, bucket)
	cfg.Endpoint = p.srv.URL
	return newStore(t, cfg, storage.Options{})
}

func randomData(n int, seed byte) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

func TestRetryFailedParts(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := newBucket(t, srv, false)
	p := newFaultProxy(t, srv)
	st := proxiedStore(t, srv, p, bucket)

	data := randomData(3*MinPartSize+12345, 1) // four parts
	p.failParts.Store(3)
	put(t, st, "big", data)
	if left := p.failParts.Load(); left >= 0 {
		t.Fatalf("only %d of 3 injected part failures happened", 3-left)
	}
	if got := readAll(t, st, "big"); !bytes.Equal(got, data) {
		t.Fatal("content differs after retried parts")
	}
	if n := len(p.requests("PUT partNumber")); n < 4+3 {
		t.Fatalf("%d part uploads, want at least 7 (4 parts + 3 retries)", n)
	}

	// A small object (single PUT) is retried too.
	p.failPuts.Store(2)
	put(t, st, "small", []byte("tiny"))
	if got := readAll(t, st, "small"); string(got) != "tiny" {
		t.Fatalf("small = %q", got)
	}
	if ups := srv.IncompleteUploads(t, bucket, ""); len(ups) != 0 {
		t.Fatalf("incomplete uploads left: %+v", ups)
	}
}

func TestPartFailsForGood(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := newBucket(t, srv, false)
	p := newFaultProxy(t, srv)
	st := proxiedStore(t, srv, p, bucket)
	st.retry.attempts = 3

	p.failParts.Store(1000)
	_, err := st.Put(t.Context(), "big", onlyReader{bytes.NewReader(randomData(3*MinPartSize, 2))})
	if err == nil || !strings.Contains(err.Error(), "injected by the test proxy") {
		t.Fatalf("Put with every part failing = %v", err)
	}
	t.Logf("error: %v", err)
	if ups := srv.IncompleteUploads(t, bucket, ""); len(ups) != 0 {
		t.Fatalf("incomplete uploads left after a failed Put: %+v", ups)
	}
	if _, err := st.Stat(t.Context(), "big"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat after failed Put = %v", err)
	}
}

func TestResumableOpen(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := newBucket(t, srv, false)
	p := newFaultProxy(t, srv)
	st := proxiedStore(t, srv, p, bucket)

	data := randomData(3<<20, 3)
	put(t, st, "obj", data)

	p.cutAt = 1 << 20
	p.cutGets.Store(2) // the first GET and the first resume both break
	got := readAll(t, st, "obj")
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("content differs after resumed download (%d of %d bytes)", len(got), len(data))
	}
	gets := p.requests("GET  ") // object GETs: no query
	if len(gets) < 3 || !strings.HasSuffix(gets[1], "bytes=1048576-") || !strings.HasSuffix(gets[2], "bytes=2097152-") {
		t.Fatalf("GETs %q: want resumes with Range from the broken offsets", gets)
	}

	// More breaks than the resume budget: an error, never short data.
	p.cutAt = 256 << 10
	p.cutGets.Store(100)
	rc, err := st.Open(t.Context(), "obj")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err == nil {
		t.Fatalf("read %d bytes without error through a proxy that cuts every body", len(b))
	}
	t.Logf("after %d bytes: %v", len(b), err)
}

func TestResumePinnedToVersion(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := newBucket(t, srv, false)
	srv.EnableVersioning(t, bucket)
	p := newFaultProxy(t, srv)
	st := proxiedStore(t, srv, p, bucket)

	data := randomData(2<<20, 4)
	put(t, st, "obj", data)
	p.cutAt = 1 << 20
	p.cutGets.Store(1)
	rc, err := st.Open(t.Context(), "obj")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	// Another writer replaces the object before the resume.
	other := randomData(2<<20, 5)
	if _, err := srv.Client().PutObject(t.Context(), bucket, "obj", bytes.NewReader(other), int64(len(other)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("resumed download mixed two versions")
	}
}

// TestConditionalCommit shows Put never replaces an object that appeared
// after its existence check: the commit carries If-None-Match.
func TestConditionalCommit(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := newBucket(t, srv, false)
	p := newFaultProxy(t, srv)
	st := proxiedStore(t, srv, p, bucket)

	for _, tc := range []struct {
		name string
		size int
	}{{"multipart", 2 * MinPartSize}, {"single", 1000}} {
		t.Run(tc.name, func(t *testing.T) {
			var once sync.Once
			p.beforeCommit = func() {
				once.Do(func() {
					_, err := srv.Client().PutObject(t.Context(), bucket, tc.name, strings.NewReader("winner"), 6, minio.PutObjectOptions{})
					if err != nil {
						t.Error(err)
					}
				})
			}
			defer func() { p.beforeCommit = nil }()
			_, err := st.Put(t.Context(), tc.name, onlyReader{bytes.NewReader(randomData(tc.size, 6))})
			if !errors.Is(err, fs.ErrExist) {
				t.Fatalf("Put racing another writer = %v, want fs.ErrExist", err)
			}
			if got := readAll(t, st, tc.name); string(got) != "winner" {
				t.Fatalf("the other writer's object was replaced by %d bytes", len(got))
			}
			if ups := srv.IncompleteUploads(t, bucket, ""); len(ups) != 0 {
				t.Fatalf("incomplete uploads left: %+v", ups)
			}
		})
	}
}

// TestLockHiddenByServer: a server that refuses to delete a locked version
// but won't say why (no lock headers, retention unreadable) still gives
// storage.ErrLocked on a bucket with object lock.
func TestLockHiddenByServer(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := newBucket(t, srv, true)
	p := newFaultProxy(t, srv)
	cfg := testConfig(srv, bucket)
	cfg.Endpoint = p.srv.URL
	cfg.ObjectLock = &ObjectLock{Mode: "compliance", Days: 1}
	st := newStore(t, cfg, storage.Options{})
	put(t, st, "k", []byte("x"))

	p.hideLock.Store(true)
	if until, err := st.LockedUntil(t.Context(), "k"); err == nil {
		t.Fatalf("LockedUntil through the hiding proxy = %v, want an error (the setup hides nothing)", until)
	}
	err := st.Delete(t.Context(), "k")
	if !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("Delete = %v, want storage.ErrLocked", err)
	}
	if n := liveVersions(t, srv, bucket, "k"); n != 1 {
		t.Fatalf("%d versions left", n)
	}
}

// TestLostCommitAnswer: the request that creates the object succeeds but its
// answer is lost. The retry meets If-None-Match (or a finished upload), and
// Put recognises its own object by ETag instead of failing.
func TestLostCommitAnswer(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := newBucket(t, srv, false)
	p := newFaultProxy(t, srv)
	st := proxiedStore(t, srv, p, bucket)
	for _, tc := range []struct {
		name string
		size int
	}{{"multipart", 2*MinPartSize + 7}, {"single", 1000}} {
		t.Run(tc.name, func(t *testing.T) {
			data := randomData(tc.size, 11)
			p.loseCommits.Store(1)
			put(t, st, tc.name, data)
			if left := p.loseCommits.Load(); left >= 0 {
				t.Fatal("no commit answer was lost")
			}
			if got := readAll(t, st, tc.name); !bytes.Equal(got, data) {
				t.Fatal("content differs")
			}
		})
	}
	// Someone else's object under the key is not mistaken for ours.
	p.loseCommits.Store(1)
	p.beforeCommit = func() {
		p.beforeCommit = nil
		_, err := srv.Client().PutObject(t.Context(), bucket, "theirs", strings.NewReader("theirs"), 6, minio.PutObjectOptions{})
		if err != nil {
			t.Error(err)
		}
	}
	_, err := st.Put(t.Context(), "theirs", onlyReader{bytes.NewReader(randomData(1000, 12))})
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Put = %v, want fs.ErrExist", err)
	}
}
