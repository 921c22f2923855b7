package cli_test

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// lifeboatBinary builds the real binary once per test run.
func lifeboatBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lifeboat-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "lifeboat")
		out, err := exec.Command("go", "build", "-o", binPath, "../../cmd/lifeboat").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("build lifeboat: %v", buildErr)
	}
	return binPath
}

// bigFiles writes n MiB of incompressible data so a backup takes a while.
func bigFiles(t *testing.T, dir string, mib int) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	rng := rand.NewChaCha8([32]byte{3})
	buf := make([]byte, 1<<20)
	for f := 0; f < mib/16; f++ {
		fh, err := os.Create(filepath.Join(dir, "blob"+string(rune('a'+f))))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 16; i++ {
			rng.Read(buf)
			fh.Write(buf)
		}
		fh.Close()
	}
}

func partFiles(t *testing.T, root string) []string {
	var parts []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".part") {
			parts = append(parts, p)
		}
		return nil
	})
	return parts
}

// Killing lifeboat in the middle of a backup leaves nothing listed, and the
// next backup works.
func TestInterruptedBackup(t *testing.T) {
	bin := lifeboatBinary(t)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			e := newEnv(t)
			bigFiles(t, e.path("big"), 256)
			e.writeConfig(baseConfig + "  big:\n    type: files\n    paths: [./big]\n    compression: none\n")
			cmd := exec.Command(bin, "-c", e.path("lifeboat.yaml"), "backup", "big")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Wait until the artifact is being written, then interrupt.
			deadline := time.Now().Add(30 * time.Second)
			for len(partFiles(t, e.path("backups"))) == 0 {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatal("backup never started writing")
				}
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond)
			cmd.Process.Signal(sig)
			err := cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("interrupted backup exited cleanly: %v\n%s", err, stderr.String())
			}
			if sig == syscall.SIGINT {
				if ee.ExitCode() != 130 {
					t.Fatalf("exit code %d after Ctrl-C, want 130\n%s", ee.ExitCode(), stderr.String())
				}
				if p := partFiles(t, e.path("backups")); len(p) != 0 {
					t.Fatalf("Ctrl-C left temp files: %v", p)
				}
			}
			if ls := e.list("big"); len(ls) != 0 {
				t.Fatalf("interrupted backup is listed: %+v", ls)
			}
			// The next run on this machine (the binary, as cron would run
			// it) takes over the dead process's lock and works.
			if out, err := exec.Command(bin, "-c", e.path("lifeboat.yaml"), "backup", "big").CombinedOutput(); err != nil {
				t.Fatalf("next backup after the interruption: %v\n%s", err, out)
			}
			if ls := e.list("big"); len(ls) != 1 {
				t.Fatalf("after a good backup %d are listed", len(ls))
			}
			e.mustRun("verify", "big")
		})
	}
}
