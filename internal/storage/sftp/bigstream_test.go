package sftp_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lifeboat-backup/lifeboat/internal/storage/sftp"
	"github.com/lifeboat-backup/lifeboat/internal/testutil/sftptest"
)

const (
	bigSize = 300 << 20
	// bigBound is a generous limit on the client's peak RSS for the whole
	// round trip; the stream itself should take a few MiB.
	bigBound = 200 << 20
	childEnv = "LIFEBOAT_SFTP_BIG_CHILD"
)

func bigStream() io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{'l', 'b'}), bigSize)
}

// onlyRead hides WriteTo and friends so the store sees a plain stream.
type onlyRead struct{ r io.Reader }

func (o onlyRead) Read(p []byte) (int, error) { return o.r.Read(p) }

// TestBigStream uploads and reads back 300 MB of unknown length in a child
// process, so that the child's peak RSS (VmHWM) measures the client alone
// while the server runs here.
func TestBigStream(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		bigStreamChild(t)
		return
	}
	srv := sftptest.Start(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), exe, "-test.run=^TestBigStream$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(),
		childEnv+"=1",
		"BIG_HOST="+srv.Host,
		"BIG_PORT="+strconv.Itoa(srv.Port),
		"BIG_USER="+srv.User,
		"BIG_KEY="+srv.KeyFile,
		"BIG_KNOWN_HOSTS="+srv.KnownHosts,
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s\n%s", err, out, stderr.Bytes())
	}
	res := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "BIGRESULT "); ok {
			for _, kv := range strings.Fields(rest) {
				k, v, _ := strings.Cut(kv, "=")
				res[k] = v
			}
		}
	}
	if res["hwm"] == "" {
		t.Fatalf("child printed no result:\n%s", out)
	}

	h := sha256.New()
	if _, err := io.Copy(h, bigStream()); err != nil {
		t.Fatal(err)
	}
	want := hex.EncodeToString(h.Sum(nil))
	f, err := os.Open(filepath.Join(srv.Root, "big", "db", "dump.zst.age"))
	if err != nil {
		t.Fatalf("object not on the server: %v", err)
	}
	defer f.Close()
	h.Reset()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	if n != bigSize || hex.EncodeToString(h.Sum(nil)) != want {
		t.Fatalf("stored file: %d bytes, sha256 %x; want %d bytes, %s", n, h.Sum(nil), bigSize, want)
	}
	if res["read"] != want {
		t.Fatalf("read back sha256 %s, want %s", res["read"], want)
	}
	hwm, _ := strconv.ParseInt(res["hwm"], 10, 64)
	t.Logf("client peak RSS (VmHWM) for a %d MiB upload + download: %d MiB", bigSize>>20, hwm>>20)
	if hwm <= 0 || hwm > bigBound {
		t.Fatalf("client peak RSS %d MiB, want under %d MiB", hwm>>20, bigBound>>20)
	}
}

func bigStreamChild(t *testing.T) {
	port, _ := strconv.Atoi(os.Getenv("BIG_PORT"))
	cfg := &sftp.Config{
		Host: os.Getenv("BIG_HOST"), Port: port, User: os.Getenv("BIG_USER"),
		KeyFile: os.Getenv("BIG_KEY"), KnownHosts: os.Getenv("BIG_KNOWN_HOSTS"), Path: "big",
	}
	st := open(t, cfg, options(t, nil))
	obj, err := st.Put(t.Context(), "db/dump.zst.age", onlyRead{bigStream()})
	if err != nil {
		t.Fatal(err)
	}
	if obj.Size != bigSize {
		t.Fatalf("size %d", obj.Size)
	}
	rc, err := st.Open(t.Context(), "db/dump.zst.age")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatal(err)
	}
	_ = rc.Close()
	fmt.Printf("BIGRESULT read=%x hwm=%d\n", h.Sum(nil), vmHWM(t))
}

// vmHWM returns this process's peak resident set size in bytes.
func vmHWM(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}
