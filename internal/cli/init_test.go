package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// init writes a valid commented config holding only the public key, and a
// 0600 private key outside the project; it never overwrites either.
func TestInit(t *testing.T) {
	e := newEnv(t)
	os.Remove(e.path("lifeboat.yaml"))
	out := e.mustRun("init")
	if !strings.Contains(out, "KEEP A COPY") {
		t.Fatalf("init does not say where the key must be kept:\n%s", out)
	}
	key := filepath.Join(e.dir, ".config/lifeboat/keys", filepath.Base(e.dir)+".txt")
	fi, err := os.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, want 0600", fi.Mode().Perm())
	}
	cfg, _ := os.ReadFile(e.path("lifeboat.yaml"))
	if strings.Contains(string(cfg), "AGE-SECRET-KEY") {
		t.Fatal("the private key is in the config")
	}
	e.mustRun("validate")
	if r := e.run("init"); r.code == 0 {
		t.Fatal("init overwrote an existing config")
	}
	if r := e.run("init", "--force"); r.code == 0 || !strings.Contains(r.stderr, "refusing to overwrite a key") {
		t.Fatalf("init --force replaced the key: %s", r.stderr)
	}
	// The starter config is usable once a source is added.
	os.WriteFile(e.path("lifeboat.yaml"), append(cfg, []byte("  app-db:\n    type: sqlite\n    path: ./app.db\n")...), 0o644)
	if r := e.run("validate"); r.code != 0 {
		t.Fatalf("starter config with a source appended: %s", r.stderr)
	}
}
