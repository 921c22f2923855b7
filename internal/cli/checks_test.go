package cli_test

import (
	"strings"
	"testing"

	"github.com/lifeboat-backup/lifeboat/internal/source/sqlite"
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
