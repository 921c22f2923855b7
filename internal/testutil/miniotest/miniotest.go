// Package miniotest starts throwaway MinIO servers for tests.
//
// [Start] runs the minio binary on a free 127.0.0.1 port with a fresh data
// directory in t.TempDir() and its own root credentials, waits until it is
// live, and stops it (by pid) when the test ends. It never touches an S3
// service the machine itself runs or anything off the machine.
//
// The binary is looked up in order: $LIFEBOAT_MINIO, <repo>/.cache/bin/minio
// (where scripts/install-minio.sh puts it), PATH, $(go env GOPATH)/bin/minio.
// When none exists the test is skipped locally and fails in CI (see
// testutil.Missing).
package miniotest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/lifeboat-backup/lifeboat/internal/testutil"
)

// Server is a running throwaway MinIO.
type Server struct {
	// AccessKey and SecretKey are the root credentials.
	AccessKey, SecretKey string
	// DataDir holds the server's objects.
	DataDir string
	// CAFile is the PEM file of the CA that signed the server's certificate
	// when started with [WithTLS]; empty otherwise.
	CAFile string

	addr   string // 127.0.0.1:port
	secure bool
	log    string
	client *minio.Client
	pid    int
}

// Option changes how [Start] runs the server.
type Option func(*options)

type options struct{ tls bool }

// WithTLS serves HTTPS with a certificate for 127.0.0.1 signed by a fresh CA,
// whose certificate is written to [Server.CAFile].
func WithTLS() Option { return func(o *options) { o.tls = true } }

// Binary returns the path of the minio binary, or calls testutil.Missing.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("LIFEBOAT_MINIO"); p != "" {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
		testutil.Missing(t, "minio", "LIFEBOAT_MINIO="+p+" does not exist")
	}
	var dirs []string
	if root := repoRoot(); root != "" {
		dirs = append(dirs, filepath.Join(root, ".cache", "bin"))
	}
	for _, d := range dirs {
		if p := filepath.Join(d, "minio"); isFile(p) {
			return p
		}
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, gp := range filepath.SplitList(strings.TrimSpace(string(out))) {
			if p := filepath.Join(gp, "bin", "minio"); isFile(p) {
				return p
			}
		}
	}
	testutil.Missing(t, "minio", "no minio binary (run scripts/install-minio.sh)")
	return ""
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// repoRoot walks up from the working directory (the package directory under
// `go test`) to the folder holding go.mod.
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if isFile(filepath.Join(dir, "go.mod")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Start starts a MinIO server for the rest of the test.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	bin := Binary(t)
	dir := t.TempDir()
	s := &Server{
		AccessKey: "lifeboat-root",
		SecretKey: randomHex(t, 16),
		DataDir:   filepath.Join(dir, "data"),
		secure:    o.tls,
		log:       filepath.Join(dir, "minio.log"),
	}
	certs := filepath.Join(dir, "certs")
	for _, d := range []string{s.DataDir, certs} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if o.tls {
		s.CAFile = writeCerts(t, certs)
	}
	// A free port can be taken by someone else between our probe and the
	// server's bind; try a few times.
	var lastErr error
	for range 3 {
		if lastErr = s.start(t, bin, certs); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("start minio: %v", lastErr)
	}
	c, err := s.NewClient(s.AccessKey, s.SecretKey)
	if err != nil {
		t.Fatal(err)
	}
	s.client = c
	return s
}

func (s *Server) start(t testing.TB, bin, certs string) error {
	t.Helper()
	port, console := freePort(t), freePort(t)
	s.addr = fmt.Sprintf("127.0.0.1:%d", port)
	args := []string{"server", s.DataDir,
		"--address", s.addr,
		"--console-address", fmt.Sprintf("127.0.0.1:%d", console),
		"--certs-dir", certs,
		"--quiet"}
	env := []string{
		"MINIO_ROOT_USER=" + s.AccessKey,
		"MINIO_ROOT_PASSWORD=" + s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	}
	hc := s.httpClient()
	return s.run(t, bin, args, env, func() error {
		resp, err := hc.Get(s.URL() + "/minio/health/live")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("health check: %s", resp.Status)
		}
		return nil
	})
}

// run starts bin and waits until live succeeds; the process is stopped by
// pid (SIGTERM, then SIGKILL) when the test ends.
func (s *Server) run(t testing.TB, bin string, args, env []string, live func() error) error {
	t.Helper()
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Dir(s.DataDir)}, env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("%s exited early (%v):\n%s", filepath.Base(bin), err, s.logTail())
		default:
		}
		err := live()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("%s not live after 60s (%v):\n%s", filepath.Base(bin), err, s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.pid = cmd.Process.Pid
	t.Cleanup(stop)
	return nil
}

func (s *Server) httpClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if s.CAFile != "" {
		pool := x509.NewCertPool()
		pem, _ := os.ReadFile(s.CAFile)
		pool.AppendCertsFromPEM(pem)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Second}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Endpoint is the server's host:port.
func (s *Server) Endpoint() string { return s.addr }

// Secure reports whether the server speaks HTTPS ([WithTLS]).
func (s *Server) Secure() bool { return s.secure }

// URL is the server's base URL (http://127.0.0.1:port or https://...).
func (s *Server) URL() string {
	if s.secure {
		return "https://" + s.addr
	}
	return "http://" + s.addr
}

// Pid is the server process's id.
func (s *Server) Pid() int { return s.pid }

// Client is a minio-go client with the root credentials, for setting up and
// asserting on the server's state independently of the code under test.
func (s *Server) Client() *minio.Client { return s.client }

// NewClient returns a client for this server with other credentials.
func (s *Server) NewClient(accessKey, secretKey string) (*minio.Client, error) {
	return minio.New(s.addr, &minio.Options{
		Creds:     credentials.NewStaticV4(accessKey, secretKey, ""),
		Secure:    s.secure,
		Transport: s.httpClient().Transport,
		Region:    "us-east-1",
	})
}

// MakeBucket creates a bucket; with objectLock it has object lock (and so
// versioning) enabled.
func (s *Server) MakeBucket(t testing.TB, name string, objectLock bool) {
	t.Helper()
	err := s.client.MakeBucket(context.Background(), name, minio.MakeBucketOptions{ObjectLocking: objectLock})
	if err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
}

// EnableVersioning turns on versioning of a bucket.
func (s *Server) EnableVersioning(t testing.TB, name string) {
	t.Helper()
	if err := s.client.EnableVersioning(context.Background(), name); err != nil {
		t.Fatalf("enable versioning on %s: %v", name, err)
	}
}

// IncompleteUploads lists the multipart uploads in progress below prefix.
func (s *Server) IncompleteUploads(t testing.TB, bucket, prefix string) []minio.ObjectMultipartInfo {
	t.Helper()
	var out []minio.ObjectMultipartInfo
	for u := range s.client.ListIncompleteUploads(context.Background(), bucket, prefix, true) {
		if u.Err != nil {
			t.Fatalf("list incomplete uploads in %s: %v", bucket, u.Err)
		}
		out = append(out, u)
	}
	return out
}

// Versions lists every version (delete markers included) of objects below
// prefix.
func (s *Server) Versions(t testing.TB, bucket, prefix string) []minio.ObjectInfo {
	t.Helper()
	var out []minio.ObjectInfo
	for o := range s.client.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{
		Prefix: prefix, Recursive: true, WithVersions: true,
	}) {
		if o.Err != nil {
			t.Fatalf("list versions in %s: %v", bucket, o.Err)
		}
		out = append(out, o)
	}
	return out
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}

// writeCerts makes a CA and a server certificate for 127.0.0.1 in the layout
// MinIO reads (public.crt, private.key) and returns the CA's PEM file.
func writeCerts(t testing.TB, dir string) string {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "lifeboat test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) {
		if err := os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "public.crt"), "CERTIFICATE", der)
	write(filepath.Join(dir, "private.key"), "EC PRIVATE KEY", keyDER)
	ca := filepath.Join(filepath.Dir(dir), "ca.pem")
	write(ca, "CERTIFICATE", caDER)
	return ca
}

// StartVersity starts a versitygw (github.com/versity/versitygw, posix
// backend with versioning) as a second, optional S3 implementation whose
// error codes match AWS's. The binary is $LIFEBOAT_VERSITYGW,
// <repo>/.cache/bin/versitygw or versitygw on PATH; when absent the test is
// skipped, even in CI: versitygw is never required.
func StartVersity(t testing.TB) *Server {
	t.Helper()
	bin := os.Getenv("LIFEBOAT_VERSITYGW")
	if bin == "" {
		if root := repoRoot(); root != "" && isFile(filepath.Join(root, ".cache", "bin", "versitygw")) {
			bin = filepath.Join(root, ".cache", "bin", "versitygw")
		} else if p, err := exec.LookPath("versitygw"); err == nil {
			bin = p
		}
	}
	if bin == "" || !isFile(bin) {
		t.Skip("versitygw not installed (optional: GOBIN=<repo>/.cache/bin go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
	}
	dir := t.TempDir()
	s := &Server{
		AccessKey: "lifeboat-root",
		SecretKey: randomHex(t, 16),
		DataDir:   filepath.Join(dir, "data"),
		log:       filepath.Join(dir, "versitygw.log"),
	}
	versions := filepath.Join(dir, "versions")
	for _, d := range []string{s.DataDir, versions} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var lastErr error
	for range 3 {
		s.addr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		args := []string{"--port", s.addr, "--quiet", "posix", "--versioning-dir", versions, s.DataDir}
		env := []string{"ROOT_ACCESS_KEY=" + s.AccessKey, "ROOT_SECRET_KEY=" + s.SecretKey}
		lastErr = s.run(t, bin, args, env, func() error {
			c, err := net.DialTimeout("tcp", s.addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("start versitygw: %v", lastErr)
	}
	c, err := s.NewClient(s.AccessKey, s.SecretKey)
	if err != nil {
		t.Fatal(err)
	}
	s.client = c
	return s
}
