package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/source"
	"github.com/lifeboat-backup/lifeboat/internal/source/mysql"
	"github.com/lifeboat-backup/lifeboat/internal/source/postgres"
	"github.com/lifeboat-backup/lifeboat/internal/testutil/mysqltest"
	"github.com/lifeboat-backup/lifeboat/internal/testutil/pgtest"
)

// sqlCase is one drill of a SQL backup; the same cases run on PostgreSQL
// and MariaDB.
type sqlCase struct {
	name       string
	alter      func(t *testing.T, e *env, en catalog.Entry) catalog.Entry
	assertions []config.Assertion
	failed     string // check expected to fail; empty for a passing drill
	detail     string
}

func sqlCases(orders string) []sqlCase {
	return []sqlCase{
		{name: "passes", assertions: []config.Assertion{
			{Name: "orders", SQL: "SELECT count(*) = 3 FROM " + orders},
			{Name: "target set", Command: `test -n "$LIFEBOAT_DRILL_TARGET"`},
		}},
		{name: "row counts altered after the manifest", failed: "row_counts", detail: "table " + orders + ": 3 rows, manifest says 4",
			alter: func(t *testing.T, e *env, en catalog.Entry) catalog.Entry {
				return e.rewriteManifest(en, func(m *catalog.Manifest) { m.RowCounts[orders] = 4 })
			}},
		{name: "artifact altered", failed: "restore", detail: "SHA-256",
			alter: func(t *testing.T, e *env, en catalog.Entry) catalog.Entry {
				b, err := os.ReadFile(e.path(en.Key))
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)-40] ^= 1
				if err := os.WriteFile(e.path(en.Key), b, 0o600); err != nil {
					t.Fatal(err)
				}
				return en
			}},
		{name: "assertion returns false", failed: "assertion big orders", detail: "returned false",
			assertions: []config.Assertion{{Name: "big orders", SQL: "SELECT count(*) > 100 FROM " + orders}}},
	}
}

func runSQLCases(t *testing.T, cases []sqlCase, backup func(e *env) (catalog.Entry, source.Restorer), insp Inspector, query string, leftover func() int) {
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			en, rs := backup(e)
			if tt.alter != nil {
				en = tt.alter(t, e, en)
			}
			res, err := Run(context.Background(), e.runner, Request{Entry: en, Restorer: rs, Stages: e.decode(), Inspector: insp,
				SchemaVersionQuery: query, Assertions: tt.assertions})
			if err != nil {
				t.Fatal(err)
			}
			rep := res.Report
			if tt.failed == "" {
				if !rep.OK {
					t.Fatalf("drill failed: %v %q", rep.Error, res.Failed())
				}
				for _, want := range []string{"restore", "row_counts", "schema_version", "assertion orders", "assertion target set"} {
					if c, ok := checkNamed(rep, want); !ok || !c.OK {
						t.Errorf("check %s: %+v", want, c)
					}
				}
			} else {
				c, ok := checkNamed(rep, tt.failed)
				if rep.OK || !ok || c.OK || !strings.Contains(c.Detail, tt.detail) || len(res.Failed()) != 1 {
					t.Fatalf("want only %s failed with %q; failed: %q", tt.failed, tt.detail, res.Failed())
				}
			}
			if n := leftover(); n != 0 {
				t.Errorf("%d drill databases left behind", n)
			}
		})
	}
}

const pgSeed = `
CREATE SCHEMA shop;
CREATE TABLE shop.orders (id serial PRIMARY KEY, total numeric NOT NULL);
CREATE TABLE public.schema_migrations (version bigint);
INSERT INTO shop.orders (total) VALUES (10), (20.5), (30);
INSERT INTO public.schema_migrations VALUES (20261101), (20261120);
`

func TestPostgresDrill(t *testing.T) {
	srv := pgtest.Start(t)
	srv.CreateDB(t, "app")
	srv.Exec(t, "app", pgSeed)
	const query = "SELECT max(version) FROM schema_migrations"
	cfg := &postgres.Config{Host: srv.Host, Port: srv.Port, User: pgtest.Superuser, Database: "app", SSLMode: "disable",
		BinDir: srv.BinDir, SchemaVersion: query}
	vars := map[string]string{"PATH": "/usr/bin:/bin", "HOME": t.TempDir(), "LANG": "C"}
	src, err := postgres.New(cfg, source.Deps{Name: "app", Env: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	insp := Postgres{Server: fmt.Sprintf("postgres://%s@%s:%d/?sslmode=disable", pgtest.Superuser, srv.Host, srv.Port)}
	leftover := func() int {
		var n int
		srv.QueryRow(t, "postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'lifeboat_drill_%'", &n)
		return n
	}
	backup := func(e *env) (catalog.Entry, source.Restorer) {
		en := e.backup("app", "postgres", src)
		if en.RowCounts["shop.orders"] != 3 || en.SchemaVersion != "20261120" {
			t.Fatalf("manifest: rows %v, schema %q", en.RowCounts, en.SchemaVersion)
		}
		return en, src
	}
	runSQLCases(t, sqlCases("shop.orders"), backup, insp, query, leftover)

	// A drill server reached as another role with a password: the password
	// reaches the restore tools but never the report.
	t.Run("drill server password stays out of the report", func(t *testing.T) {
		const pw = "s3cret-drill-pw"
		srv.CreateRole(t, "driller", pw, "CREATEDB")
		e := newEnv(t)
		en, _ := backup(e)
		var logs bytes.Buffer
		e.runner.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		di := Postgres{Server: fmt.Sprintf("postgres://driller@%s:%d/postgres?sslmode=disable", srv.Host, srv.Port), Password: pw}
		res, err := Run(context.Background(), e.runner, Request{Entry: en, Restorer: src, Stages: e.decode(), Inspector: di,
			SchemaVersionQuery: query, Assertions: []config.Assertion{{Name: "fails", Command: `echo "$LIFEBOAT_DRILL_TARGET" >&2; exit 1`}}})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(res.Report)
		if strings.Contains(string(b), pw) {
			t.Fatalf("password in report: %s", b)
		}
		if strings.Contains(logs.String(), pw) || !strings.Contains(logs.String(), "restore started") {
			t.Fatalf("password in logs, or nothing logged:\n%s", logs.String())
		}
		if c, _ := checkNamed(res.Report, "restore"); !c.OK || !strings.HasPrefix(res.Report.Target, "postgres://driller@") {
			t.Fatalf("restore %+v, target %s", c, res.Report.Target)
		}
		if n := leftover(); n != 0 {
			t.Errorf("%d drill databases left behind", n)
		}
	})

	t.Run("an existing database is never a scratch target", func(t *testing.T) {
		srv.CreateDB(t, "lifeboat_drill_taken")
		if _, err := insp.NewTarget(context.Background(), "lifeboat_drill_taken"); !errors.Is(err, ErrNotNew) {
			t.Fatalf("NewTarget of an existing database: %v", err)
		}
		if err := insp.Drop(context.Background(), insp.Server[:len(insp.Server)-len("/?sslmode=disable")]+"/app"); err == nil {
			t.Fatal("Drop accepted a database that is not a drill's")
		}
	})
}

func TestMySQLDrill(t *testing.T) {
	srv := mysqltest.Start(t)
	srv.CreateDB(t, "app")
	srv.Exec(t, "app", "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, total DECIMAL(10,2) NOT NULL)")
	srv.Exec(t, "app", "CREATE TABLE schema_migrations (version BIGINT)")
	srv.Exec(t, "app", "INSERT INTO orders (total) VALUES (10), (20.5), (30)")
	srv.Exec(t, "app", "INSERT INTO schema_migrations VALUES (20261101), (20261120)")
	const query = "SELECT max(version) FROM schema_migrations"
	cfg := &mysql.Config{Host: srv.Host, Port: srv.Port, User: "root", Password: config.NewSecret(mysqltest.RootPassword),
		Database: "app", SchemaVersion: query}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"PATH": "/usr/bin:/bin", "HOME": t.TempDir(), "LANG": "C"}
	src, err := mysql.New(cfg, source.Deps{Name: "app", Env: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	insp := MySQL{Server: fmt.Sprintf("mysql://root@%s:%d", srv.Host, srv.Port), Password: mysqltest.RootPassword}
	leftover := func() int {
		var n int
		if err := srv.DB(t, "").QueryRow("SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'lifeboat_drill_%'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	backup := func(e *env) (catalog.Entry, source.Restorer) {
		en := e.backup("app", "mysql", src)
		if en.RowCounts["orders"] != 3 || en.SchemaVersion != "20261120" {
			t.Fatalf("manifest: rows %v, schema %q", en.RowCounts, en.SchemaVersion)
		}
		return en, src
	}
	runSQLCases(t, sqlCases("orders"), backup, insp, query, leftover)

	t.Run("an existing database is never a scratch target", func(t *testing.T) {
		srv.CreateDB(t, "lifeboat_drill_taken")
		if _, err := insp.NewTarget(context.Background(), "lifeboat_drill_taken"); !errors.Is(err, ErrNotNew) {
			t.Fatalf("NewTarget of an existing database: %v", err)
		}
		if err := insp.Drop(context.Background(), insp.Server+"/app"); err == nil {
			t.Fatal("Drop accepted a database that is not a drill's")
		}
	})
}
