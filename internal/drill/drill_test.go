package drill

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/job"
	"github.com/lifeboat-backup/lifeboat/internal/pipeline"
	agestage "github.com/lifeboat-backup/lifeboat/internal/pipeline/age"
	"github.com/lifeboat-backup/lifeboat/internal/pipeline/zstd"
	"github.com/lifeboat-backup/lifeboat/internal/report"
	"github.com/lifeboat-backup/lifeboat/internal/source"
	"github.com/lifeboat-backup/lifeboat/internal/source/files"
	"github.com/lifeboat-backup/lifeboat/internal/source/sqlite"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
	"github.com/lifeboat-backup/lifeboat/internal/storage/local"
)

// env is a backup setup: a key pair, a local storage and a runner.
type env struct {
	t      *testing.T
	id     *age.X25519Identity
	st     *local.Store
	runner *job.Runner
}

func newEnv(t *testing.T) *env {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	st, err := local.New("local", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := &job.Runner{Host: "test", Version: "test", Now: time.Now, Recipients: []string{id.Recipient().String()},
		Env: func(k string) (string, bool) { return os.LookupEnv(k) }}
	return &env{t: t, id: id, st: st, runner: r}
}

// backup backs src up and returns its catalog entry.
func (e *env) backup(name, typ string, src source.Source) catalog.Entry {
	e.t.Helper()
	items := e.runner.Backup(context.Background(), job.Backup{Name: name, Type: typ, Source: src,
		Stages:   []pipeline.Stage{zstd.Stage{}, &agestage.Stage{Recipients: []age.Recipient{e.id.Recipient()}}},
		Storages: []storage.Storage{e.st}})
	if len(items) != 1 || items[0].Status != report.OK {
		e.t.Fatalf("backup: %+v", items)
	}
	es, err := catalog.List(context.Background(), e.st, name, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, en := range es {
		if en.ID == items[0].BackupID {
			return en
		}
	}
	e.t.Fatal("backup not listed")
	return catalog.Entry{}
}

func (e *env) decode() []pipeline.Stage {
	return []pipeline.Stage{zstd.Stage{}, &agestage.Stage{Identities: []age.Identity{e.id}}}
}

func (e *env) path(key string) string { return filepath.Join(e.st.Root(), filepath.FromSlash(key)) }

// rewriteManifest changes the stored manifest of en with fn.
func (e *env) rewriteManifest(en catalog.Entry, fn func(m *catalog.Manifest)) catalog.Entry {
	e.t.Helper()
	m := *en.Manifest
	fn(&m)
	b, err := m.Encode()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(e.path(catalog.ManifestKey(en.Key)), b, 0o600); err != nil {
		e.t.Fatal(err)
	}
	en.Manifest = &m
	return en
}

// shop makes a SQLite database with 5 orders and a schema version.
func shop(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "shop.db")
	db, err := sqlite.Open(p, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		"CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER)",
		"CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)",
		"CREATE TABLE schema_migrations (version TEXT)",
		"INSERT INTO orders (total) VALUES (10), (20), (30), (40), (50)",
		"INSERT INTO customers (name) VALUES ('ada'), ('grace')",
		"INSERT INTO schema_migrations VALUES ('20261101'), ('20261120')",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

const schemaQuery = "SELECT max(version) FROM schema_migrations"

func sqliteSource(t *testing.T, path string) *sqlite.Source {
	t.Helper()
	s, err := sqlite.New(&sqlite.Config{Path: path, SchemaVersion: schemaQuery}, source.Deps{Name: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func checkNamed(rep *catalog.DrillReport, name string) (catalog.Check, bool) {
	for _, c := range rep.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return catalog.Check{}, false
}

func scratchRoot(t *testing.T) string {
	t.Helper()
	return t.TempDir()
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range des {
		out = append(out, d.Name())
	}
	return out
}

func TestSQLiteDrillPasses(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	dbPath := shop(t)
	src := sqliteSource(t, dbPath)
	en := e.backup("shop", "sqlite", src)
	root := scratchRoot(t)
	res, err := Run(ctx, e.runner, Request{Entry: en, Restorer: src, Stages: e.decode(), Inspector: SQLite{Root: root},
		SchemaVersionQuery: schemaQuery, RTO: time.Hour,
		Assertions: []config.Assertion{
			{Name: "orders exist", SQL: "SELECT count(*) = 5 FROM orders"},
			{Name: "file is there", Command: `test -s "$LIFEBOAT_DRILL_TARGET" && test "$LIFEBOAT_SOURCE" = shop`},
		}})
	if err != nil {
		t.Fatal(err)
	}
	rep := res.Report
	if !rep.OK || res.RTOExceeded {
		t.Fatalf("drill failed: %v %q", rep.Error, res.Failed())
	}
	var names []string
	for _, c := range rep.Checks {
		names = append(names, c.Name)
	}
	want := []string{"restore", "row_counts", "schema_version", "assertion orders exist", "assertion file is there", "rto"}
	if !slices.Equal(names, want) {
		t.Fatalf("checks %v, want %v", names, want)
	}
	if c, _ := checkNamed(rep, "row_counts"); c.Detail != "3 tables match the manifest" {
		t.Errorf("row_counts: %q", c.Detail)
	}
	if c, _ := checkNamed(rep, "schema_version"); c.Detail != "20261120" {
		t.Errorf("schema_version: %q", c.Detail)
	}
	if rep.RTOSeconds <= 0 || rep.RTOTarget != 3600 {
		t.Errorf("rto %v of %v", rep.RTOSeconds, rep.RTOTarget)
	}
	if !strings.HasPrefix(filepath.Base(filepath.Dir(rep.Target)), "lifeboat_drill_shop_") {
		t.Errorf("target %s", rep.Target)
	}
	// The scratch copy is gone; the report is stored beside the backup and listed.
	if left := entries(t, root); len(left) != 0 {
		t.Errorf("scratch folder left behind: %v", left)
	}
	es, err := catalog.List(ctx, e.st, "shop", nil)
	if err != nil {
		t.Fatal(err)
	}
	if es[0].Drill == nil || !es[0].Drill.OK || es[0].Drill.BackupID != en.ID || res.Key != catalog.DrillKey(en.Key, rep.Started) {
		t.Fatalf("listed drill %+v, key %s", es[0].Drill, res.Key)
	}
	var stored catalog.DrillReport
	b, _ := os.ReadFile(e.path(res.Key))
	if err := json.Unmarshal(b, &stored); err != nil || len(stored.Checks) != len(rep.Checks) {
		t.Fatalf("stored report: %v %s", err, b)
	}
}

func TestSQLiteDrillFailures(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// alter changes the stored backup (or the request) after the manifest was written.
		alter  func(t *testing.T, e *env, en catalog.Entry, src *sqlite.Source, req *Request) catalog.Entry
		failed string // check name
		detail string
	}{
		{name: "artifact altered after the manifest was written", failed: "restore", detail: "fails its SHA-256 check",
			alter: func(t *testing.T, e *env, en catalog.Entry, _ *sqlite.Source, _ *Request) catalog.Entry {
				b, err := os.ReadFile(e.path(en.Key))
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)/2] ^= 0xff
				if err := os.WriteFile(e.path(en.Key), b, 0o600); err != nil {
					t.Fatal(err)
				}
				return en
			}},
		{name: "artifact truncated", failed: "restore", detail: "truncated or damaged",
			alter: func(t *testing.T, e *env, en catalog.Entry, _ *sqlite.Source, _ *Request) catalog.Entry {
				if err := os.Truncate(e.path(en.Key), en.StoredSize/2); err != nil {
					t.Fatal(err)
				}
				return en
			}},
		// The artifact is replaced by a consistent backup of other data, its
		// checksum too: only comparing the restored rows finds it.
		{name: "data replaced, checksum consistent", failed: "row_counts", detail: "table orders: 2 rows, manifest says 5",
			alter: func(t *testing.T, e *env, en catalog.Entry, src *sqlite.Source, _ *Request) catalog.Entry {
				db, err := sqlite.Open(src.Path(), false)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := db.Exec("DELETE FROM orders WHERE id > 2"); err != nil {
					t.Fatal(err)
				}
				db.Close()
				e.runner.Now = func() time.Time { return time.Now().Add(time.Minute) } // another artifact name
				other := e.backup("shop", "sqlite", src)
				e.runner.Now = time.Now
				b, err := os.ReadFile(e.path(other.Key))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(e.path(en.Key), b, 0o600); err != nil {
					t.Fatal(err)
				}
				return e.rewriteManifest(en, func(m *catalog.Manifest) { m.SHA256, m.StoredSize = other.SHA256, other.StoredSize })
			}},
		{name: "schema version differs", failed: "schema_version", detail: `restored copy has "20261120", manifest says "20261201"`,
			alter: func(t *testing.T, e *env, en catalog.Entry, _ *sqlite.Source, _ *Request) catalog.Entry {
				return e.rewriteManifest(en, func(m *catalog.Manifest) { m.SchemaVersion = "20261201" })
			}},
		{name: "a table is missing", failed: "row_counts", detail: "table invoices: missing (manifest: 3 rows)",
			alter: func(t *testing.T, e *env, en catalog.Entry, _ *sqlite.Source, _ *Request) catalog.Entry {
				return e.rewriteManifest(en, func(m *catalog.Manifest) {
					m.RowCounts = map[string]int64{"orders": 5, "customers": 2, "schema_migrations": 2, "invoices": 3}
				})
			}},
		{name: "sql assertion returns false", failed: "assertion no big orders", detail: "returned false",
			alter: func(t *testing.T, e *env, en catalog.Entry, _ *sqlite.Source, req *Request) catalog.Entry {
				req.Assertions = []config.Assertion{{Name: "no big orders", SQL: "SELECT max(total) < 40 FROM orders"}}
				return en
			}},
		{name: "sql assertion fails to run", failed: "assertion broken", detail: "query failed",
			alter: func(t *testing.T, e *env, en catalog.Entry, _ *sqlite.Source, req *Request) catalog.Entry {
				req.Assertions = []config.Assertion{{Name: "broken", SQL: "SELECT nope FROM nowhere"}}
				return en
			}},
		{name: "command assertion exits 1", failed: "assertion check", detail: "exited with status 3: too few",
			alter: func(t *testing.T, e *env, en catalog.Entry, _ *sqlite.Source, req *Request) catalog.Entry {
				req.Assertions = []config.Assertion{{Name: "check", Command: "echo too few >&2; exit 3"}}
				return en
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			src := sqliteSource(t, shop(t))
			en := e.backup("shop", "sqlite", src)
			root := scratchRoot(t)
			req := Request{Restorer: src, Stages: e.decode(), Inspector: SQLite{Root: root}, SchemaVersionQuery: schemaQuery}
			req.Entry = tt.alter(t, e, en, src, &req)
			res, err := Run(ctx, e.runner, req)
			if err != nil {
				t.Fatal(err)
			}
			if res.Report.OK {
				t.Fatalf("drill passed: %+v", res.Report.Checks)
			}
			c, ok := checkNamed(res.Report, tt.failed)
			if !ok || c.OK || !strings.Contains(c.Detail, tt.detail) {
				t.Fatalf("check %s = %+v (found %v), want failed with %q; all: %+v", tt.failed, c, ok, tt.detail, res.Report.Checks)
			}
			if len(res.Failed()) != 1 {
				t.Errorf("failed checks %q, want only %s", res.Failed(), tt.failed)
			}
			if left := entries(t, root); len(left) != 0 {
				t.Errorf("scratch folder left behind: %v", left)
			}
			es, err := catalog.List(ctx, e.st, "shop", nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range es {
				if x.ID == en.ID && (x.Drill == nil || x.Drill.OK) {
					t.Errorf("failed drill not recorded: %+v", x.Drill)
				}
			}
		})
	}
}

func TestRTOExceeded(t *testing.T) {
	e := newEnv(t)
	src := sqliteSource(t, shop(t))
	en := e.backup("shop", "sqlite", src)
	res, err := Run(context.Background(), e.runner, Request{Entry: en, Restorer: src, Stages: e.decode(),
		Inspector: SQLite{Root: scratchRoot(t)}, SchemaVersionQuery: schemaQuery, RTO: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := checkNamed(res.Report, "rto")
	if !res.RTOExceeded || c.OK || !strings.Contains(c.Detail, "rto 1ns") {
		t.Fatalf("rto check %+v, exceeded %v", c, res.RTOExceeded)
	}
	// The copy itself is good: the backup is not marked bad for being slow.
	if !res.Report.OK {
		t.Fatalf("report not OK: %q", res.Failed())
	}
}

// sourceAsTarget is an inspector gone wrong: it offers the source itself as
// the scratch target.
type sourceAsTarget struct {
	SQLite
	path string
}

func (s sourceAsTarget) NewTarget(ctx context.Context, name string) (string, error) {
	return s.path, nil
}
func (s sourceAsTarget) Drop(ctx context.Context, target string) error { return nil }

func TestDrillNeverTouchesTheSource(t *testing.T) {
	e := newEnv(t)
	dbPath := shop(t)
	src := sqliteSource(t, dbPath)
	en := e.backup("shop", "sqlite", src)
	before, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), e.runner, Request{Entry: en, Restorer: src, Stages: e.decode(),
		Inspector: sourceAsTarget{path: dbPath}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Report.OK || !strings.Contains(res.Report.Error, "is not new") {
		t.Fatalf("report %+v", res.Report)
	}
	after, _ := os.ReadFile(dbPath)
	if string(after) != string(before) {
		t.Fatal("the source database changed")
	}
}

func TestFilesDrill(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "uploads")
	for p, body := range map[string]string{"a.txt": "alpha", "sub/b.txt": "bravo!", "sub/c/d.bin": strings.Repeat("x", 5000)} {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src, err := files.New(&files.Config{Paths: []string{dir}}, source.Deps{Name: "uploads"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name       string
		alter      func(m *catalog.Manifest)
		assertions []config.Assertion
		failed     string
	}{
		{name: "passes", assertions: []config.Assertion{
			{Name: "alpha restored", Command: `grep -q alpha "$LIFEBOAT_DRILL_TARGET/uploads/a.txt"`}}},
		{name: "file count differs", alter: func(m *catalog.Manifest) { m.Files = 4 }, failed: "file_count"},
		{name: "assertion fails", failed: "assertion bravo", assertions: []config.Assertion{
			{Name: "bravo", Command: `grep -q charlie "$LIFEBOAT_DRILL_TARGET/uploads/sub/b.txt"`}}},
		{name: "sql on files is refused", failed: "assertion sql", assertions: []config.Assertion{
			{Name: "sql", SQL: "SELECT 1"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			en := e.backup("uploads", "files", src)
			if tt.alter != nil {
				en = e.rewriteManifest(en, tt.alter)
			}
			root := scratchRoot(t)
			res, err := Run(ctx, e.runner, Request{Entry: en, Restorer: src, Stages: e.decode(), Inspector: Files{Root: root},
				Assertions: tt.assertions})
			if err != nil {
				t.Fatal(err)
			}
			if tt.failed == "" {
				c, _ := checkNamed(res.Report, "file_count")
				if !res.Report.OK || c.Detail != "3 files, 5.0 kB" {
					t.Fatalf("drill failed: %q %v; file_count %q", res.Failed(), res.Report.Error, c.Detail)
				}
			} else {
				c, ok := checkNamed(res.Report, tt.failed)
				if res.Report.OK || !ok || c.OK || len(res.Failed()) != 1 {
					t.Fatalf("want only %s failed, got %q", tt.failed, res.Failed())
				}
			}
			if left := entries(t, root); len(left) != 0 {
				t.Errorf("scratch folder left behind: %v", left)
			}
		})
	}
}

func TestTargetName(t *testing.T) {
	at := time.Date(2026, 11, 21, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct{ src, part, want string }{
		{"app-db", "", "lifeboat_drill_app_db_20261121t030405"},
		{"pg", "Shop.EU", "lifeboat_drill_pg_shop_eu_20261121t030405"},
		{strings.Repeat("a", 70), "", "lifeboat_drill_" + strings.Repeat("a", 32) + "_20261121t030405"},
	} {
		got := TargetName(tt.src, tt.part, at)
		if got != tt.want || len(got) > 63 {
			t.Errorf("TargetName(%q, %q) = %q (%d), want %q", tt.src, tt.part, got, len(got), tt.want)
		}
	}
}

func TestTruthy(t *testing.T) {
	for s, want := range map[string]bool{"1": true, "t": true, "TRUE": true, "yes": true, "0": false, "f": false, "": false, "2": false} {
		if truthy(s) != want {
			t.Errorf("truthy(%q) = %v", s, !want)
		}
	}
}
