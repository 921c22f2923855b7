package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lifeboat-backup/lifeboat/internal/demo"
	agestage "github.com/lifeboat-backup/lifeboat/internal/pipeline/age"
	"github.com/lifeboat-backup/lifeboat/internal/source/sqlite"
	"github.com/lifeboat-backup/lifeboat/internal/testutil"
)

func skipTmp(rel string) bool { ok, _ := path.Match("*.tmp", path.Base(rel)); return ok }

// The truth test: back up both sources through the CLI, list, verify,
// restore into new targets, compare.
func TestRoundTrip(t *testing.T) {
	e := newEnv(t)
	out := e.mustRun("backup", "--tag", "pre-deploy")
	if !strings.Contains(out, "app-db: committed backup") || !strings.Contains(out, "uploads: committed backup") {
		t.Fatalf("backup output:\n%s", out)
	}
	ls := e.list()
	if len(ls) != 2 {
		t.Fatalf("list: %d entries, want 2: %+v", len(ls), ls)
	}
	for _, l := range ls {
		if l.ID == "" || l.Storage != "here" || l.Created.IsZero() || l.Size == 0 || len(l.SHA256) != 64 || !slices.Contains(l.Tags, "pre-deploy") {
			t.Errorf("list entry incomplete: %+v", l)
		}
		want := "testhost." + l.Created.UTC().Format("20060102T150405Z") + "." + l.Source + "."
		if !strings.HasPrefix(l.Artifact, want) {
			t.Errorf("artifact %q does not start with %q", l.Artifact, want)
		}
		if _, err := os.Stat(e.path("backups/" + l.Source + "/" + l.Artifact + ".meta.json")); err != nil {
			t.Errorf("manifest beside the artifact: %v", err)
		}
	}
	out = e.mustRun("verify", "--all")
	if strings.Count(out, "decrypts and decompresses") != 2 {
		t.Fatalf("verify did not decode both:\n%s", out)
	}

	e.mustRun("restore", "app-db", "--to", e.path("r/app.db"))
	if err := demo.CompareSQLite(t.Context(), e.path("app.db"), e.path("r/app.db")); err != nil {
		t.Fatal(err)
	}
	e.mustRun("restore", "uploads", "--to", e.path("r/files"))
	if err := demo.CompareTrees(e.path("uploads"), e.path("r/files/uploads"), skipTmp); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(e.path("r/files/uploads/scratch.tmp")); err == nil {
		t.Fatal("excluded *.tmp file was backed up")
	}
}

// A second backup gets a higher sequence; restore picks the newest.
func TestRestoreNewestAndByID(t *testing.T) {
	e := newEnv(t)
	e.mustRun("backup", "app-db")
	first := e.list("app-db")[0].ID
	db, err := sqlite.Open(e.path("app.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("DELETE FROM orders"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	e.mustRun("backup", "app-db")
	if n := len(e.list("app-db")); n != 2 {
		t.Fatalf("%d backups, want 2", n)
	}
	e.mustRun("restore", "app-db", "--to", e.path("newest.db"))
	e.mustRun("restore", "app-db", "--id", first[:6], "--to", e.path("first.db"))
	count := func(p string) int {
		db, err := sqlite.Open(p, true)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		if err := db.QueryRow("SELECT count(*) FROM orders").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if count(e.path("newest.db")) != 0 || count(e.path("first.db")) != 300 {
		t.Fatalf("newest has %d orders (want 0), first has %d (want 300)", count(e.path("newest.db")), count(e.path("first.db")))
	}
}

func TestCorruptionIsDetected(t *testing.T) {
	e := newEnv(t)
	e.mustRun("backup", "app-db")
	l := e.list("app-db")[0]
	art := e.path("backups/app-db/" + l.Artifact)

	t.Run("flipped byte fails verify and names the backup", func(t *testing.T) {
		b, _ := os.ReadFile(art)
		orig := slices.Clone(b)
		b[len(b)/2] ^= 0x01
		os.WriteFile(art, b, 0o600)
		defer os.WriteFile(art, orig, 0o600)
		r := e.run("verify", "app-db")
		if r.code == 0 || !strings.Contains(r.stdout, "FAILED") || !strings.Contains(r.stdout+r.stderr, l.ID) {
			t.Fatalf("verify of a damaged artifact: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		// Restore must fail too, and leave no target behind.
		r = e.run("restore", "app-db", "--to", e.path("flip.db"))
		if r.code == 0 {
			t.Fatal("restore of a damaged artifact succeeded")
		}
		if _, err := os.Stat(e.path("flip.db")); err == nil {
			t.Fatal("restore of a damaged artifact left a target file")
		}
	})
	t.Run("truncated artifact fails restore clearly", func(t *testing.T) {
		b, _ := os.ReadFile(art)
		os.WriteFile(art, b[:len(b)-100], 0o600)
		defer os.WriteFile(art, b, 0o600)
		r := e.run("restore", "app-db", "--to", e.path("trunc.db"))
		if r.code == 0 || !strings.Contains(r.stderr, "truncated") {
			t.Fatalf("restore of a truncated artifact: exit %d\n%s", r.code, r.stderr)
		}
		if _, err := os.Stat(e.path("trunc.db")); err == nil {
			t.Fatal("restore of a truncated artifact left a target file")
		}
	})
	t.Run("deleted manifest means no backup", func(t *testing.T) {
		if err := os.Remove(art + ".meta.json"); err != nil {
			t.Fatal(err)
		}
		if ls := e.list("app-db"); len(ls) != 0 {
			t.Fatalf("backup without manifest is listed: %+v", ls)
		}
	})
}

func TestRestoreGuard(t *testing.T) {
	e := newEnv(t)
	e.mustRun("backup")
	sum := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	before := sum(e.path("app.db"))

	r := e.run("restore", "app-db", "--to", e.path("app.db"))
	if r.code == 0 || !strings.Contains(r.stderr, "it is the source this backup was taken from") || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("restore over the source: exit %d\n%s", r.code, r.stderr)
	}
	// The same file reached through another path is still the source.
	os.Symlink(e.path("app.db"), e.path("alias.db"))
	if r := e.run("restore", "app-db", "--to", e.path("alias.db")); r.code == 0 {
		t.Fatal("restore over the source through a symlink was allowed")
	}
	r = e.run("restore", "uploads", "--to", e.dir)
	if r.code == 0 || !strings.Contains(r.stderr, "source") {
		t.Fatalf("restore of files over their own folder: exit %d\n%s", r.code, r.stderr)
	}
	os.MkdirAll(e.path("busy"), 0o755)
	os.WriteFile(e.path("busy/keep.txt"), []byte("mine"), 0o644)
	r = e.run("restore", "uploads", "--to", e.path("busy"))
	if r.code == 0 || !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("restore into a non-empty folder: exit %d\n%s", r.code, r.stderr)
	}
	if sum(e.path("app.db")) != before || sum(e.path("busy/keep.txt")) != "mine" {
		t.Fatal("a refused restore changed something")
	}
	if _, err := os.Stat(e.path("busy/uploads")); err == nil {
		t.Fatal("a refused restore wrote files")
	}

	// With --force: a safety backup of the target first, then the restore.
	out := e.mustRun("restore", "uploads", "--to", e.path("busy"), "--force")
	if !strings.Contains(out, "safety backup") {
		t.Fatalf("no safety backup mentioned:\n%s", out)
	}
	var pre int
	for _, l := range e.list("uploads") {
		if slices.Contains(l.Tags, "pre-restore") {
			pre++
		}
	}
	if pre != 1 {
		t.Fatalf("%d pre-restore backups, want 1", pre)
	}
	if err := demo.CompareTrees(e.path("uploads"), e.path("busy/uploads"), skipTmp); err != nil {
		t.Fatal(err)
	}

	// A protected target is refused even with --force.
	e.writeConfig(baseConfig + "    protected: [./prod]\n")
	os.MkdirAll(e.path("prod"), 0o755)
	if r := e.run("restore", "uploads", "--to", e.path("prod"), "--force"); r.code == 0 || !strings.Contains(r.stderr, "protected") {
		t.Fatalf("restore into a protected target: exit %d\n%s", r.code, r.stderr)
	}
}

// On a terminal, --force asks for the source name; a wrong answer changes nothing.
func TestRestoreForceConfirmation(t *testing.T) {
	e := newEnv(t)
	e.mustRun("backup", "app-db")
	os.WriteFile(e.path("target.db"), []byte("precious"), 0o644)
	var interactive = func(stdin string) result {
		return e.runInteractive(stdin, "restore", "app-db", "--to", e.path("target.db"), "--force")
	}
	if r := interactive("nope\n"); r.code == 0 || !strings.Contains(r.stderr, "Type the source name") {
		t.Fatalf("wrong confirmation accepted: exit %d\n%s", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(e.path("target.db")); string(b) != "precious" {
		t.Fatal("unconfirmed restore changed the target")
	}
	if r := interactive("app-db\n"); r.code != 0 {
		t.Fatalf("confirmed restore failed: %s", r.stderr)
	}
	if err := demo.CompareSQLite(t.Context(), e.path("app.db"), e.path("target.db")); err != nil {
		t.Fatal(err)
	}
}

// The manual restore commands in the manifest work with standard tools.
func TestManualRestoreCommands(t *testing.T) {
	for _, tool := range []string{"age", "zstd", "sqlite3", "tar", "sha256sum"} {
		testutil.LookPath(t, "tools", tool)
	}
	e := newEnv(t)
	e.mustRun("backup")
	for _, c := range []struct{ src, to string }{{"app-db", e.path("manual/app.db")}, {"uploads", e.path("manual/files")}} {
		plan := e.mustRun("restore", c.src, "--to", c.to, "--plan")
		cmd := exec.CommandContext(t.Context(), "sh", "-e", "-c", plan)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("manual restore of %s failed: %v\n%s\nplan:\n%s", c.src, err, out, plan)
		}
	}
	if err := demo.CompareSQLite(t.Context(), e.path("app.db"), e.path("manual/app.db")); err != nil {
		t.Fatal(err)
	}
	if err := demo.CompareTrees(e.path("uploads"), e.path("manual/files/uploads"), skipTmp); err != nil {
		t.Fatal(err)
	}
}

func TestBackupFailureCommitsNothing(t *testing.T) {
	e := newEnv(t)
	os.Remove(e.path("app.db"))
	r := e.run("backup")
	if r.code != 1 || !strings.Contains(r.stdout, "app-db: FAILED, nothing committed") {
		t.Fatalf("backup of a missing database: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// The other source still ran.
	ls := e.list()
	if len(ls) != 1 || ls[0].Source != "uploads" {
		t.Fatalf("after a failed source: %+v", ls)
	}
	// Unwritable storage: one clear line, non-zero, nothing listed.
	if os.Geteuid() != 0 {
		os.Chmod(e.path("backups"), 0o500)
		defer os.Chmod(e.path("backups"), 0o700)
		if r := e.run("backup", "uploads"); r.code == 0 {
			t.Fatal("backup into an unwritable storage succeeded")
		}
	}
}

func TestHooks(t *testing.T) {
	e := newEnv(t)
	cfg := baseConfig + `    hooks:
      before: ["echo maintenance on > hook.log"]
      after: ["echo after $LIFEBOAT_STATUS >> hook.log"]
`
	e.writeConfig(cfg)
	e.mustRun("backup", "uploads")
	b, _ := os.ReadFile(e.path("hook.log"))
	if string(b) != "maintenance on\nafter ok\n" {
		t.Fatalf("hook log %q", b)
	}
	// A failing before hook stops the backup; the after hook still runs.
	e.writeConfig(baseConfig + `    hooks:
      before: ["exit 3"]
      after: ["echo after $LIFEBOAT_STATUS > hook.log"]
`)
	r := e.run("backup", "uploads")
	if r.code == 0 || !strings.Contains(r.stdout, "before hook") {
		t.Fatalf("failing before hook: exit %d\n%s", r.code, r.stdout)
	}
	b, _ = os.ReadFile(e.path("hook.log"))
	if string(b) != "after failed\n" {
		t.Fatalf("after hook did not run after a failure: %q", b)
	}
	if n := len(e.list("uploads")); n != 1 {
		t.Fatalf("%d backups, want 1 (the failed run must not add one)", n)
	}
}

func TestVerifyWithoutIdentity(t *testing.T) {
	e := newEnv(t)
	e.mustRun("backup", "app-db")
	os.Rename(e.keyFile, e.path("elsewhere.txt"))
	out := e.mustRun("verify", "app-db")
	if !strings.Contains(out, "checksum ok") || !strings.Contains(out, "contents were not decrypted") {
		t.Fatalf("verify without identity:\n%s", out)
	}
	r := e.run("restore", "app-db", "--to", e.path("x.db"))
	if r.code == 0 || !strings.Contains(r.stderr, "--identity") {
		t.Fatalf("restore without identity: %s", r.stderr)
	}
	e.mustRun("restore", "app-db", "--to", e.path("x.db"), "--identity", e.path("elsewhere.txt"))
	if err := demo.CompareSQLite(context.Background(), e.path("app.db"), e.path("x.db")); err != nil {
		t.Fatal(err)
	}
	_ = filepath.Join
}

// verify's outcome is recorded and `status` shows it, failures included.
func TestStatusShowsLastVerify(t *testing.T) {
	e := newEnv(t)
	e.mustRun("backup", "app-db")
	e.mustRun("verify", "app-db")
	type st struct {
		Sources []struct {
			Source     string `json:"source"`
			LastVerify *struct {
				OK bool `json:"ok"`
			} `json:"last_verify"`
		} `json:"sources"`
	}
	read := func() *struct {
		OK bool `json:"ok"`
	} {
		r := e.run("status", "--json", "app-db")
		var s st
		if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || len(s.Sources) != 1 {
			t.Fatalf("status --json: %v\n%s", err, r.stdout)
		}
		return s.Sources[0].LastVerify
	}
	if v := read(); v == nil || !v.OK {
		t.Fatalf("status after a good verify: %+v", v)
	}
	l := e.list("app-db")[0]
	p := e.path("backups/app-db/" + l.Artifact)
	b, _ := os.ReadFile(p)
	b[len(b)-10] ^= 1
	os.WriteFile(p, b, 0o600)
	if r := e.run("verify", "app-db"); r.code == 0 {
		t.Fatal("verify of a damaged backup passed")
	}
	if v := read(); v == nil || v.OK {
		t.Fatalf("status after a failed verify: %+v", v)
	}
}

// Errors a user can act on come as one clear line and commit nothing.
func TestActionableErrors(t *testing.T) {
	e := newEnv(t)
	e.mustRun("backup", "app-db")

	// Wrong key: says so, writes nothing.
	other, _, err := agestage.Generate()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(e.path("other-key.txt"), []byte(other), 0o600)
	r := e.run("restore", "app-db", "--to", e.path("x.db"), "--identity", e.path("other-key.txt"))
	if r.code == 0 || !strings.Contains(r.stderr, "does not match any recipient") {
		t.Fatalf("restore with the wrong key: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(e.path("x.db")); err == nil {
		t.Fatal("restore with the wrong key created the target")
	}

	// Storage not writable (its folder is a file): one line naming it.
	e2 := newEnv(t)
	os.WriteFile(e2.path("backups"), []byte("not a folder"), 0o644)
	r = e2.run("backup", "app-db")
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "storage here") {
		t.Fatalf("backup into an unusable storage: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	// Missing source path: names it.
	os.Remove(e.path("app.db"))
	r = e.run("backup", "app-db")
	if r.code == 0 || !strings.Contains(r.stdout, e.path("app.db")) {
		t.Fatalf("backup of a missing database does not name it:\n%s", r.stdout)
	}
}
