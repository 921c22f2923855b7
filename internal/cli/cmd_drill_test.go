package cli_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/lifeboat-backup/lifeboat/internal/report"
)

// drillConfig gives app-db an rto and drill assertions.
func drillConfig(assertSQL string) string {
	return strings.Replace(baseConfig, "    schema_version: SELECT max(version) FROM schema_migrations\n",
		"    schema_version: SELECT max(version) FROM schema_migrations\n"+
			"    rto: 15m\n"+
			"    drill:\n"+
			"      assertions:\n"+
			"        - name: has customers\n"+
			"          sql: "+assertSQL+"\n"+
			"        - name: file is there\n"+
			"          command: test -s \"$LIFEBOAT_DRILL_TARGET\"\n", 1)
}

type statusJSON struct {
	Sources []struct {
		Source    string `json:"source"`
		Overdue   bool   `json:"overdue"`
		Suspect   bool   `json:"suspect"`
		LastDrill *struct {
			BackupID   string   `json:"backup_id"`
			OK         bool     `json:"ok"`
			RTOSeconds float64  `json:"rto_seconds"`
			Failed     []string `json:"failed"`
		} `json:"last_drill"`
		NewestGood *struct {
			ID string `json:"id"`
		} `json:"newest_good"`
		Problems []string `json:"problems"`
	} `json:"sources"`
}

func (e *env) status() (statusJSON, result) {
	e.t.Helper()
	r := e.run("status", "--json")
	var st statusJSON
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		e.t.Fatalf("status --json: %v\n%s\n%s", err, r.stdout, r.stderr)
	}
	return st, r
}

func TestDrill(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(drillConfig("SELECT count(*) > 0 FROM customers"))
	e.mustRun("backup")
	out := e.mustRun("drill")
	for _, want := range []string{
		"app-db: drill passed", "uploads: drill passed", "ok      row_counts       3 tables match the manifest",
		"ok      schema_version   20261115", "ok      assertion has customers", "ok      assertion file is there",
		"ok      rto              usable copy after", "ok      file_count",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("drill output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "app-db: drill passed: usable copy after") || !strings.Contains(out, ", rto 15m (report app-db/") {
		t.Errorf("drill summary:\n%s", out)
	}
	var run report.Run
	if err := json.Unmarshal([]byte(e.mustRun("drill", "uploads", "--json")), &run); err != nil {
		t.Fatal(err)
	}
	if run.Kind != report.Drill || len(run.Items) != 1 || run.Items[0].Status != report.OK || len(run.Items[0].Checks) != 2 {
		t.Fatalf("drill --json: %+v", run)
	}
	st, r := e.status()
	if r.code != 0 {
		t.Fatalf("status after a passing drill: exit %d\n%s", r.code, r.stderr)
	}
	for _, s := range st.Sources {
		if s.LastDrill == nil || !s.LastDrill.OK || s.LastDrill.BackupID != s.NewestGood.ID {
			t.Errorf("%s: last drill %+v", s.Source, s.LastDrill)
		}
	}

	// An assertion that returns false fails the drill, and status shows it.
	e.writeConfig(drillConfig("SELECT count(*) > 1000000 FROM customers"))
	r = e.run("drill", "app-db")
	if r.code != 1 || !strings.Contains(r.stdout, "FAILED  assertion has customers returned false") ||
		!strings.Contains(r.stdout, "app-db: DRILL FAILED") || !strings.Contains(r.stderr, "drill failed for app-db") {
		t.Fatalf("failing assertion: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	st, r = e.status()
	if r.code != 1 || !strings.Contains(strings.Join(st.Sources[0].Problems, " "), "returned false") {
		t.Fatalf("status after a failed drill: exit %d %+v", r.code, st.Sources[0])
	}
}

func TestDrillOfAlteredBackup(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(drillConfig("SELECT 1"))
	e.mustRun("backup", "app-db")
	l := e.list("app-db")[0]
	p := e.path("backups/app-db/" + l.Artifact)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x55
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.run("drill", "app-db", "--id", l.ID[:6])
	if r.code != 1 || !strings.Contains(r.stdout, "FAILED  restore") || !strings.Contains(r.stdout, "SHA-256") {
		t.Fatalf("altered backup: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout, "row_counts") {
		t.Errorf("data checks ran on a failed restore:\n%s", r.stdout)
	}
	if r := e.run("drill", "--id", "ffffffff"); r.code != 2 {
		t.Fatalf("unknown id: exit %d %s", r.code, r.stderr)
	}
}
