package cli_test

import (
	"strings"
	"testing"

	"github.com/lifeboat-backup/lifeboat/internal/daemon"
	"github.com/lifeboat-backup/lifeboat/internal/lock"
	"github.com/lifeboat-backup/lifeboat/internal/source/sqlite"
	"github.com/lifeboat-backup/lifeboat/internal/storage/local"
)

// A backup that shrank, or a table that lost rows, is committed but marked
// suspect, the run fails, and the message names what shrank.
func TestChecksFlagSuspect(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(strings.Replace(baseConfig, "defaults:\n  storages: [here]\n",
		"defaults:\n  storages: [here]\n  checks: {max_shrink: 20%, max_row_drop: 10%}\n", 1))
	e.mustRun("backup", "app-db")
	db, err := sqlite.Open(e.path("app.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"DELETE FROM orders WHERE id > 150", "DELETE FROM customers WHERE id > 150 AND id NOT IN (SELECT customer_id FROM orders)", "VACUUM"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	db.Close()
	r := e.run("backup", "app-db")
	if r.code == 0 {
		t.Fatalf("a shrunken backup passed:\n%s", r.stdout)
	}
	out := r.stdout + r.stderr
	for _, want := range []string{"SUSPECT", "orders", "300 -> 150"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	ls := e.list("app-db")
	if len(ls) != 2 || !ls[1].Suspect {
		t.Fatalf("suspect backup not kept and flagged: %+v", ls)
	}
	// Restore picks the newest good (not suspect) backup by default.
	out = e.mustRun("restore", "app-db", "--to", e.path("r.db"))
	if !strings.Contains(out, ls[0].ID) {
		t.Fatalf("restore did not pick the good backup %s:\n%s", ls[0].ID, out)
	}
}

// A manual backup never overlaps another run of the same source (the
// daemon's, another host's): it says who holds the lock and runs nothing.
func TestBackupRespectsLock(t *testing.T) {
	e := newEnv(t)
	st, err := local.New("here", e.path("backups"))
	if err != nil {
		t.Fatal(err)
	}
	lk, err := lock.Acquire(t.Context(), st, "app-db", lock.Options{Clock: daemon.SystemClock{}, Host: "other-host", PID: 4242, Purpose: "backup"})
	if err != nil {
		t.Fatal(err)
	}
	r := e.run("backup", "app-db")
	if r.code == 0 || !strings.Contains(r.stdout, "other-host (pid 4242") {
		t.Fatalf("backup while locked: exit %d\n%s", r.code, r.stdout)
	}
	if n := len(e.list("app-db")); n != 0 {
		t.Fatalf("%d backups made while the source was locked", n)
	}
	if err := lk.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.mustRun("backup", "app-db")
	e.mustRun("backup", "app-db") // its own lock was released
	if n := len(e.list("app-db")); n != 2 {
		t.Fatalf("%d backups, want 2", n)
	}
}
