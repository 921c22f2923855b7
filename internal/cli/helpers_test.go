package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/cli"
	"github.com/lifeboat-backup/lifeboat/internal/demo"
	agestage "github.com/lifeboat-backup/lifeboat/internal/pipeline/age"
)

var update = flag.Bool("update", false, "rewrite golden files")

// env is a project folder with a config, a key, a SQLite database and an
// uploads folder, like a small web app.
type env struct {
	t           *testing.T
	dir         string
	recipient   string
	keyFile     string
	vars        map[string]string
	now         func() time.Time
	interactive bool
}

const baseConfig = `encryption:
  recipients: [{{RECIPIENT}}]
  identity: ./key.txt
storages:
  here:
    type: local
    path: ./backups
defaults:
  storages: [here]
sources:
  app-db:
    type: sqlite
    path: ./app.db
    schema_version: SELECT max(version) FROM schema_migrations
  uploads:
    type: files
    paths: [./uploads]
    exclude: ["*.tmp"]
`

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	key, rcp, err := agestage.Generate()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, recipient: rcp, keyFile: filepath.Join(dir, "key.txt"), vars: map[string]string{"PATH": os.Getenv("PATH"), "HOME": dir}}
	if err := os.WriteFile(e.keyFile, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := demo.SeedSQLite(t.Context(), filepath.Join(dir, "app.db"), 300); err != nil {
		t.Fatal(err)
	}
	if err := demo.SeedFiles(filepath.Join(dir, "uploads")); err != nil {
		t.Fatal(err)
	}
	e.writeConfig(baseConfig)
	return e
}

func (e *env) path(p string) string { return filepath.Join(e.dir, p) }

func (e *env) writeConfig(cfg string) {
	e.t.Helper()
	cfg = strings.ReplaceAll(cfg, "{{RECIPIENT}}", e.recipient)
	if err := os.WriteFile(e.path("lifeboat.yaml"), []byte(cfg), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs lifeboat in-process with the env's config.
func (e *env) run(args ...string) result {
	return e.runCtx(e.t.Context(), "", args...)
}

// runInteractive runs as if a person were at a terminal typing stdin.
func (e *env) runInteractive(stdin string, args ...string) result {
	e.interactive = true
	defer func() { e.interactive = false }()
	return e.runCtx(e.t.Context(), stdin, args...)
}

func (e *env) runCtx(ctx context.Context, stdin string, args ...string) result {
	e.t.Helper()
	var out, errb bytes.Buffer
	now := e.now
	if now == nil {
		now = time.Now
	}
	app := &cli.App{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		Env:         func(k string) (string, bool) { v, ok := e.vars[k]; return v, ok },
		Now:         now,
		Hostname:    "testhost",
		Version:     "test",
		Interactive: e.interactive,
	}
	err := cli.Execute(ctx, app, append([]string{"-c", e.path("lifeboat.yaml")}, args...))
	if err != nil {
		cli.Render(&errb, err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: cli.ExitCode(err)}
}

func (e *env) mustRun(args ...string) string {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("lifeboat %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

type listed struct {
	ID       string    `json:"id"`
	Source   string    `json:"source"`
	Storage  string    `json:"storage"`
	Created  time.Time `json:"created"`
	Size     int64     `json:"size"`
	SHA256   string    `json:"sha256"`
	Tags     []string  `json:"tags"`
	Artifact string    `json:"artifact"`
	Suspect  bool      `json:"suspect"`
}

func (e *env) list(src ...string) []listed {
	e.t.Helper()
	out := e.mustRun(append([]string{"list", "--json"}, src...)...)
	var ls []listed
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		e.t.Fatalf("list --json: %v\n%s", err, out)
	}
	return ls
}

// golden compares got with testdata/NAME, rewriting it with -update and
// leaving NAME.actual on a mismatch.
func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		_ = os.WriteFile(p+".actual", []byte(got), 0o644)
		t.Fatalf("%s differs from golden file (see %s.actual; go test -update rewrites it)\n--- want\n%s\n--- got\n%s", p, p, want, got)
	}
	_ = os.Remove(p + ".actual")
}
