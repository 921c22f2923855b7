package cli_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// pruneConfig keeps the last two backups of app-db, whose rpo is a day.
var pruneConfig = strings.Replace(baseConfig, "    schema_version: SELECT max(version) FROM schema_migrations\n",
	"    schema_version: SELECT max(version) FROM schema_migrations\n    keep: {last: 2}\n    rpo: 24h\n", 1)

// backupAt backs src up with the clock at t.
func (e *env) backupAt(t time.Time, src string) {
	e.t.Helper()
	e.now = func() time.Time { return t }
	e.mustRun("backup", src)
	e.now = nil
}

func ids(ls []listed) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.ID)
	}
	slices.Sort(out)
	return out
}

var deleteLine = regexp.MustCompile(`(?m)^  delete +([0-9a-f]{12}) `)

// TestPruneDryRunIsWhatPruneDeletes: the backups a dry run lists as
// deleted are exactly those the real run deletes.
func TestPruneDryRunIsWhatPruneDeletes(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(pruneConfig)
	base := time.Now().Add(-50 * time.Minute)
	for i := range 5 {
		e.backupAt(base.Add(time.Duration(i)*10*time.Minute), "app-db")
	}
	before := e.list("app-db")
	if len(before) != 5 {
		t.Fatalf("%d backups", len(before))
	}
	// Garbage: an old artifact without manifest.
	junk := e.path("backups/app-db/testhost.20200101T000000Z.app-db.sqlite.zst.age")
	if err := os.WriteFile(junk, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	os.Chtimes(junk, old, old)

	dry := e.mustRun("prune", "--dry-run")
	var planned []string
	for _, m := range deleteLine.FindAllStringSubmatch(dry, -1) {
		planned = append(planned, m[1])
	}
	slices.Sort(planned)
	if len(planned) != 3 || !strings.Contains(dry, "would delete 3 backup copies and 1 garbage objects (dry run: nothing deleted)") ||
		!strings.Contains(dry, "last 2") || !strings.Contains(dry, "artifact without manifest") {
		t.Fatalf("dry run:\n%s", dry)
	}
	if got := ids(e.list("app-db")); !slices.Equal(got, ids(before)) {
		t.Fatal("dry run deleted backups")
	}
	if _, err := os.Stat(junk); err != nil {
		t.Fatal("dry run deleted garbage")
	}

	out := e.mustRun("prune")
	if !strings.Contains(out, "app-db: deleted 3 backup copies and 1 garbage objects") {
		t.Fatalf("prune:\n%s", out)
	}
	after := ids(e.list("app-db"))
	var deleted []string
	for _, id := range ids(before) {
		if !slices.Contains(after, id) {
			deleted = append(deleted, id)
		}
	}
	if !slices.Equal(deleted, planned) {
		t.Fatalf("deleted %v, dry run said %v", deleted, planned)
	}
	if _, err := os.Stat(junk); err == nil {
		t.Error("garbage kept")
	}
	// The two newest remain, with their manifests; nothing else is left.
	files, _ := filepath.Glob(e.path("backups/app-db/*"))
	if len(files) != 4 {
		t.Errorf("left in storage: %v", files)
	}
}

func TestPruneRefusals(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(pruneConfig)
	// Backups whose manifests say three hours ago, written now: the clocks disagree.
	base := time.Now().Add(-3 * time.Hour)
	for i := range 3 {
		e.backupAt(base.Add(time.Duration(i)*time.Minute), "app-db")
	}
	r := e.run("prune", "app-db")
	if r.code != 1 || !strings.Contains(r.stdout, "REFUSED, nothing deleted") || !strings.Contains(r.stdout, "clocks disagree") ||
		!strings.Contains(r.stdout, "--trust-clock") || !strings.Contains(r.stderr, "prune refused for app-db") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if n := len(e.list("app-db")); n != 3 {
		t.Fatalf("%d backups left after a refused prune", n)
	}
	out := e.mustRun("prune", "app-db", "--trust-clock")
	if !strings.Contains(out, "trusted: --trust-clock") || !strings.Contains(out, "deleted 1 backup copies") {
		t.Fatalf("trust clock:\n%s", out)
	}

	// Overdue: the newest good backup is older than the rpo.
	e.now = func() time.Time { return time.Now().Add(72 * time.Hour) }
	r = e.run("prune", "app-db", "--trust-clock")
	e.now = nil
	if r.code != 1 || !strings.Contains(r.stdout, "newest good backup is older than the rpo") {
		t.Fatalf("overdue: exit %d\n%s", r.code, r.stdout)
	}
	if n := len(e.list("app-db")); n != 2 {
		t.Fatalf("%d backups left after an overdue prune", n)
	}

	if r := e.run("prune", "nope"); r.code != 2 {
		t.Fatalf("unknown source: exit %d %s", r.code, r.stderr)
	}
}
