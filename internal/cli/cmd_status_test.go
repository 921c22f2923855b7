package cli_test

import (
	"strings"
	"testing"
	"time"
)

func TestStatus(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(strings.Replace(baseConfig, "    schema_version: SELECT max(version) FROM schema_migrations\n",
		"    schema_version: SELECT max(version) FROM schema_migrations\n    rpo: 1h\n", 1))

	r := e.run("status")
	if r.code != 1 || !strings.Contains(r.stdout, "OVERDUE") || !strings.Contains(r.stdout, "PROBLEM: app-db: overdue: no good backup (rpo 1h)") ||
		!strings.Contains(r.stderr, "1 source(s) need attention: app-db") {
		t.Fatalf("before any backup: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	e.mustRun("backup")
	out := e.mustRun("status")
	for _, want := range []string{"SOURCE", "app-db", "/ 1h", "uploads", "STORAGE", "here"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "PROBLEM") {
		t.Errorf("problems after a fresh backup:\n%s", out)
	}

	// Two hours later nothing new was backed up: overdue, for monitoring.
	e.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	st, r := e.status()
	e.now = nil
	if r.code != 1 {
		t.Fatalf("overdue: exit %d", r.code)
	}
	for _, s := range st.Sources {
		if (s.Source == "app-db") != s.Overdue {
			t.Errorf("%s: overdue %v", s.Source, s.Overdue)
		}
	}
}
