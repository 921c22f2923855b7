package s3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
	"github.com/lifeboat-backup/lifeboat/internal/testutil/miniotest"
)

// The child-process tests re-run this test binary with -test.run and these
// variables set; the child then plays its part instead of the test.
const (
	envChild    = "LIFEBOAT_S3_TEST_CHILD"
	envEndpoint = "LIFEBOAT_S3_TEST_ENDPOINT"
	envBucket   = "LIFEBOAT_S3_TEST_BUCKET"
	envAccess   = "LIFEBOAT_S3_TEST_ACCESS_KEY"
	envSecret   = "LIFEBOAT_S3_TEST_SECRET_KEY"
)

func childConfig() *Config {
	cfg := DefaultConfig()
	cfg.Endpoint = os.Getenv(envEndpoint)
	cfg.Bucket = os.Getenv(envBucket)
	cfg.AccessKey = config.NewSecret(os.Getenv(envAccess))
	cfg.SecretKey = config.NewSecret(os.Getenv(envSecret))
	cfg.PathStyle = true
	return cfg
}

func childCommand(t *testing.T, ctx context.Context, test, role string, srv *miniotest.Server, bucket string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+test+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(),
		envChild+"="+role,
		envEndpoint+"="+srv.URL(),
		envBucket+"="+bucket,
		envAccess+"="+srv.AccessKey,
		envSecret+"="+srv.SecretKey,
	)
	return cmd
}

// endless is a stream that never ends, like a dump of a huge database.
type endless struct{ rng *rand.ChaCha8 }

func (e endless) Read(p []byte) (int, error) { return e.rng.Read(p) }

func TestCancelledMultipartLeavesNoUpload(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := newBucket(t, srv, false)
	st := newStore(t, testConfig(srv, bucket), storage.Options{})

	// Cancel once a few parts are up.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	src := &countingReader{r: endless{rand.NewChaCha8([32]byte{7})}, at: 3 * MinPartSize, do: cancel}
	_, err := st.Put(ctx, "cancelled", src)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Put = %v, want context.Canceled", err)
	}
	// A dump that dies after a few parts.
	boom := errors.New("pg_dump died")
	_, err = st.Put(t.Context(), "failed", &countingReader{r: endless{rand.NewChaCha8([32]byte{8})}, at: 2*MinPartSize + 100, fail: boom})
	if !errors.Is(err, boom) {
		t.Fatalf("failed Put = %v, want the reader's error", err)
	}
	if ups := srv.IncompleteUploads(t, bucket, ""); len(ups) != 0 {
		t.Fatalf("incomplete multipart uploads left: %+v", ups)
	}
	if vs := srv.Versions(t, bucket, ""); len(vs) != 0 {
		t.Fatalf("objects left: %+v", vs)
	}
}

// countingReader calls do, or fails with fail, once at bytes were read.
type countingReader struct {
	r    io.Reader
	n    int
	at   int
	do   func()
	fail error
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n >= c.at {
		if c.fail != nil {
			return 0, c.fail
		}
		if c.do != nil {
			c.do()
			c.do = nil
		}
	}
	n, err := c.r.Read(p[:min(len(p), 64<<10)])
	c.n += n
	return n, err
}

func TestKilledUploadIsAbortedByPrune(t *testing.T) {
	if os.Getenv(envChild) == "killed" {
		cfg := childConfig()
		cfg.PartSize = MinPartSize
		st, err := New(context.Background(), "child", cfg, storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.Put(context.Background(), "killed", endless{rand.NewChaCha8([32]byte{9})})
		t.Fatalf("endless Put returned: %v", err)
	}
	srv := miniotest.Start(t)
	bucket := newBucket(t, srv, false)
	cmd := childCommand(t, t.Context(), "TestKilledUploadIsAbortedByPrune", "killed", srv, bucket)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the upload has parts on the server, then kill -9.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if ups := srv.IncompleteUploads(t, bucket, ""); len(ups) > 0 {
			parts, err := minio.Core{Client: srv.Client()}.ListObjectParts(t.Context(), bucket, ups[0].Key, ups[0].UploadID, 0, 100)
			if err == nil && len(parts.ObjectParts) >= 2 {
				break
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("the child's upload never got going:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	st := newStore(t, testConfig(srv, bucket), storage.Options{})
	if _, err := st.Stat(t.Context(), "killed"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat of a killed upload = %v, want fs.ErrNotExist", err)
	}
	var listed []string
	if err := st.List(t.Context(), "", func(o storage.Object) error { listed = append(listed, o.Key); return nil }); err != nil || len(listed) != 0 {
		t.Fatalf("List after a killed upload = %v, %v", listed, err)
	}
	if ups := srv.IncompleteUploads(t, bucket, ""); len(ups) != 1 {
		t.Fatalf("%d incomplete uploads, want the killed one", len(ups))
	}
	if n, err := st.AbortIncomplete(t.Context(), time.Hour); err != nil || n != 0 {
		t.Fatalf("AbortIncomplete(1h) = %d, %v; want 0: the upload is recent", n, err)
	}
	if n, err := st.AbortIncomplete(t.Context(), 0); err != nil || n != 1 {
		t.Fatalf("AbortIncomplete(0) = %d, %v; want 1", n, err)
	}
	if ups := srv.IncompleteUploads(t, bucket, ""); len(ups) != 0 {
		t.Fatalf("incomplete uploads left after AbortIncomplete: %+v", ups)
	}
}

// TestPeakMemory streams 300 MiB up and down with the default part size and
// parallelism in a child process and reports the child's peak RSS.
func TestPeakMemory(t *testing.T) {
	const size = 300 << 20
	if os.Getenv(envChild) == "memory" {
		st, err := New(context.Background(), "child", childConfig(), storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		h := sha256.New()
		start := time.Now()
		obj, err := st.Put(ctx, "big", onlyReader{io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{10}), size), h)})
		if err != nil {
			t.Fatal(err)
		}
		up := time.Since(start)
		if obj.Size != size {
			t.Fatalf("stored %d bytes, want %d", obj.Size, size)
		}
		rc, err := st.Open(ctx, "big")
		if err != nil {
			t.Fatal(err)
		}
		h2 := sha256.New()
		start = time.Now()
		if _, err := io.Copy(h2, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
		down := time.Since(start)
		if !bytes.Equal(h.Sum(nil), h2.Sum(nil)) {
			t.Fatal("content differs after the round trip")
		}
		fmt.Printf("child: up %v, down %v\nVMHWM_KB=%d\n", up.Round(time.Millisecond), down.Round(time.Millisecond), vmHWM(t))
		return
	}
	if testing.Short() {
		t.Skip("300 MiB round trip skipped in -short mode")
	}
	srv := miniotest.Start(t)
	bucket := newBucket(t, srv, false)
	cmd := childCommand(t, t.Context(), "TestPeakMemory", "memory", srv, bucket)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`VMHWM_KB=(\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("child printed no peak memory:\n%s", out)
	}
	kb, _ := strconv.Atoi(string(m[1]))
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "child:") {
			t.Log(line)
		}
	}
	t.Logf("peak RSS of a 300 MiB upload+download (part_size 16MiB, parallel_parts 2): %d MB", kb/1000)
	// (parallel_parts+1) × part_size = 48 MiB of buffers, plus the runtime
	// and garbage; the bound is generous, the point is "not proportional to
	// the object".
	if kb > 200_000 {
		t.Fatalf("peak RSS %d kB exceeds 200 MB", kb)
	}
}

func vmHWM(t *testing.T) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}
