package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/doctor"
	"github.com/lifeboat-backup/lifeboat/internal/source"
	"github.com/lifeboat-backup/lifeboat/internal/testutil/pgtest"
)

// newTestSource returns a source for db on srv as the superuser, with a HOME
// of its own so that no ~/.pgpass of the machine is read.
func newTestSource(t *testing.T, srv *pgtest.Server, db string, mod func(*Config)) *Source {
	t.Helper()
	cfg := &Config{Host: srv.Host, Port: srv.Port, User: pgtest.Superuser, Database: db, SSLMode: "disable", BinDir: srv.BinDir}
	if mod != nil {
		mod(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	env := map[string]string{"PATH": "/usr/bin:/bin", "HOME": t.TempDir(), "LANG": "C"}
	s, err := New(cfg, source.Deps{Name: "app", Env: testEnv(env)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

const seedSQL = `
CREATE SCHEMA billing;
CREATE TABLE kinds (
	id serial PRIMARY KEY,
	amount numeric(20,6), big numeric, txt text, raw bytea, doc json, docb jsonb,
	at timestamptz, tags text[], nums int[], flag boolean, day date
);
INSERT INTO kinds (amount, big, txt, raw, doc, docb, at, tags, nums, flag, day) VALUES
	(12345678901234.123456, 'NaN', 'Grüße, 世界 🚀 ''quoted'' "dq" \ backslash', '\x00ff10e2', '{"a": [1, 2.50, null], "b": "ü"}',
	 '{"z": {"deep": [true, false]}, "a": 1}', '2026-03-28 02:30:00+01', '{"one","two words",NULL}', '{1,-2,3}', true, '2026-11-21'),
	(-0.000001, 1e40, E'tab\tnewline\nend', '', '[]', 'null', '1970-01-01 00:00:00+00', '{}', NULL, NULL, 'infinity'),
	(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, NULL);
CREATE SEQUENCE counter START 1000 INCREMENT 7;
SELECT setval('counter', 123456789);
CREATE TABLE parent (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE child (id bigserial PRIMARY KEY, parent_id bigint NOT NULL REFERENCES parent(id) ON DELETE CASCADE, note text);
CREATE INDEX child_parent ON child (parent_id);
INSERT INTO parent (name) SELECT 'p' || i FROM generate_series(1, 50) i;
INSERT INTO child (parent_id, note) SELECT 1 + i % 50, 'c' || i FROM generate_series(1, 200) i;
CREATE TABLE billing.invoices (no int PRIMARY KEY, parent_id bigint REFERENCES parent(id), total numeric(10,2) CHECK (total >= 0));
INSERT INTO billing.invoices SELECT i, 1 + i % 50, i * 1.5 FROM generate_series(1, 30) i;
CREATE TABLE audit (at timestamptz DEFAULT now(), what text);
CREATE FUNCTION log_child() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO audit (what) VALUES ('child ' || NEW.id); RETURN NEW; END $$;
CREATE TRIGGER child_audit AFTER INSERT ON child FOR EACH ROW EXECUTE FUNCTION log_child();
CREATE FUNCTION add(a int, b int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT a + b';
CREATE VIEW parent_sizes AS SELECT p.name, count(c.id) AS n FROM parent p LEFT JOIN child c ON c.parent_id = p.id GROUP BY p.name;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE moods (m mood, r int4range);
INSERT INTO moods VALUES ('happy', '[1,10)'), ('sad', 'empty');
CREATE TABLE schema_migrations (version bigint);
INSERT INTO schema_migrations VALUES (20260101), (20261121);
COMMENT ON TABLE parent IS 'the parents';
`

// userTables lists "schema.table" of db's ordinary tables.
func userTables(t *testing.T, srv *pgtest.Server, db string) []string {
	t.Helper()
	return srv.Strings(t, db, `SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' ORDER BY 1`)
}

// tableRows returns every row of a table as text, sorted.
func tableRows(t *testing.T, srv *pgtest.Server, db, table string) []string {
	t.Helper()
	schema, name, _ := strings.Cut(table, ".")
	return srv.Strings(t, db, "SELECT t::text FROM "+pgx.Identifier{schema, name}.Sanitize()+" t ORDER BY 1")
}

// sameDatabase compares two databases: schema (pg_dump --schema-only), every
// table's rows, and sequence positions.
func sameDatabase(t *testing.T, srv *pgtest.Server, a, b string) {
	t.Helper()
	if sa, sb := srv.SchemaDump(t, a), srv.SchemaDump(t, b); sa != sb {
		t.Errorf("schema of %s and %s differ:\n--- %s\n%s\n--- %s\n%s", a, b, a, sa, b, sb)
	}
	ta, tb := userTables(t, srv, a), userTables(t, srv, b)
	if !slices.Equal(ta, tb) {
		t.Fatalf("tables differ: %s has %q, %s has %q", a, ta, b, tb)
	}
	for _, table := range ta {
		ra, rb := tableRows(t, srv, a, table), tableRows(t, srv, b, table)
		if !slices.Equal(ra, rb) {
			t.Errorf("rows of %s differ:\n%s: %q\n%s: %q", table, a, ra, b, rb)
		}
	}
	seq := `SELECT schemaname || '.' || sequencename || '=' || coalesce(last_value::text, 'unset') FROM pg_sequences ORDER BY 1`
	if qa, qb := srv.Strings(t, a, seq), srv.Strings(t, b, seq); !slices.Equal(qa, qb) {
		t.Errorf("sequences differ: %q vs %q", qa, qb)
	}
}

func testRoundTrip(t *testing.T, srv, other *pgtest.Server) {
	srv.CreateDB(t, "rt")
	srv.Exec(t, "rt", seedSQL)
	ctx := t.Context()

	tests := []struct {
		name   string
		format string
		jobs   int
		target func(db string) string
	}{
		{"custom streamed", "custom", 1, func(db string) string { return db }},
		{"custom parallel", "custom", 2, func(db string) string { return srv.URL(db) }},
		{"plain", "plain", 0, func(db string) string { return srv.SocketURL(db) }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSource(t, srv, "rt", func(c *Config) {
				c.Format, c.Jobs = tt.format, tt.jobs
				c.SchemaVersion = "SELECT max(version) FROM schema_migrations"
			})
			var buf bytes.Buffer
			var meta source.Meta
			if err := s.Dump(ctx, &buf, &meta); err != nil {
				t.Fatalf("Dump: %v", err)
			}
			if tt.format == "custom" && !bytes.HasPrefix(buf.Bytes(), []byte("PGDMP")) {
				t.Fatalf("custom dump starts with %q", buf.Bytes()[:min(16, buf.Len())])
			}
			wantFormat := map[string]string{"custom": "pgdump", "plain": "sql"}[tt.format]
			if s.Format() != wantFormat {
				t.Errorf("Format() = %q, want %q", s.Format(), wantFormat)
			}
			checkMeta(t, srv, "rt", &meta)
			if meta.SchemaVersion != "20261121" {
				t.Errorf("SchemaVersion = %q, want 20261121", meta.SchemaVersion)
			}

			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp) // where the parallel restore stages the archive
			target := fmt.Sprintf("rt_restored%d", i)
			info, err := s.Inspect(ctx, tt.target(target))
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			if info.Exists || !info.Empty || info.Identity != "" || !strings.Contains(info.Describe, "does not exist") {
				t.Errorf("Inspect of a missing database = %+v", info)
			}
			if err := s.Restore(ctx, bytes.NewReader(buf.Bytes()), tt.target(target), &meta); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			sameDatabase(t, srv, "rt", target)
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("restore left files in TMPDIR: %v", left)
			}
			// The restored database counts as written now.
			info, err = s.Inspect(ctx, tt.target(target))
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			if !info.Exists || info.Empty || info.Identity == meta.Identity || info.Identity == "" {
				t.Errorf("Inspect of the restored database = %+v (source identity %s)", info, meta.Identity)
			}
		})
	}
}

// checkMeta compares meta with the database as it is now.
func checkMeta(t *testing.T, srv *pgtest.Server, db string, meta *source.Meta) {
	t.Helper()
	if meta.RowCountsTaken != "same snapshot" {
		t.Errorf("RowCountsTaken = %q", meta.RowCountsTaken)
	}
	if meta.ToolVersions["pg_dump"] == "" || meta.ServerVersion == "" || meta.DatabaseSize <= 0 {
		t.Errorf("meta lacks versions or size: %+v", meta)
	}
	var sysid string
	srv.QueryRow(t, db, "SELECT system_identifier::text FROM pg_control_system()", &sysid)
	if want := "postgres:" + sysid + "/" + db; meta.Identity != want {
		t.Errorf("Identity = %q, want %q", meta.Identity, want)
	}
	want := map[string]int64{}
	for _, table := range userTables(t, srv, db) {
		want[table] = int64(len(tableRows(t, srv, db, table)))
	}
	if !maps.Equal(meta.RowCounts, want) {
		t.Errorf("RowCounts = %v, want %v", meta.RowCounts, want)
	}
}

// gateWriter holds the dump's first write until release is closed, so that
// a test can act while pg_dump is known to be running.
type gateWriter struct {
	w       io.Writer
	once    sync.Once
	started chan struct{}
	release chan struct{}
}

func newGateWriter(w io.Writer) *gateWriter {
	return &gateWriter{w: w, started: make(chan struct{}), release: make(chan struct{})}
}

func (g *gateWriter) Write(p []byte) (int, error) {
	g.once.Do(func() {
		close(g.started)
		<-g.release
	})
	return g.w.Write(p)
}

// TestDumpDuringWrites: rows keep being inserted (parent and child, with a
// foreign key) while pg_dump runs. The dump is one snapshot: it restores with
// its foreign keys intact and exactly the rows the manifest counted.
func testDumpDuringWrites(t *testing.T, srv, other *pgtest.Server) {
	srv.CreateDB(t, "dw")
	srv.Exec(t, "dw", seedSQL)
	ctx := t.Context()

	var inserted atomic.Int64
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		conn, err := pgx.Connect(ctx, srv.URL("dw"))
		if err != nil {
			writerDone <- err
			return
		}
		defer conn.Close(context.Background())
		for i := 0; ; i++ {
			select {
			case <-stop:
				writerDone <- nil
				return
			default:
			}
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				var id int64
				if err := tx.QueryRow(ctx, "INSERT INTO parent (name) VALUES ($1) RETURNING id", fmt.Sprintf("w%d", i)).Scan(&id); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, "INSERT INTO child (parent_id, note) VALUES ($1, 'a'), ($1, 'b')", id)
				return err
			})
			if err != nil {
				writerDone <- err
				return
			}
			inserted.Add(1)
		}
	}()

	s := newTestSource(t, srv, "dw", nil)
	var buf bytes.Buffer
	gw := newGateWriter(&buf)
	var meta source.Meta
	dumpDone := make(chan error, 1)
	go func() { dumpDone <- s.Dump(ctx, gw, &meta) }()
	<-gw.started
	// pg_dump is running and its snapshot is taken: let more writes commit.
	for from := inserted.Load(); inserted.Load() < from+20; {
		select {
		case err := <-writerDone:
			t.Fatalf("writer stopped: %v", err)
		default:
		}
	}
	close(gw.release)
	if err := <-dumpDone; err != nil {
		t.Fatalf("Dump: %v", err)
	}
	close(stop)
	if err := <-writerDone; err != nil {
		t.Fatalf("writer: %v", err)
	}

	var parents int64
	srv.QueryRow(t, "dw", "SELECT count(*) FROM parent", &parents)
	if parents <= meta.RowCounts["public.parent"] {
		t.Fatalf("no writes after the snapshot (parents now %d, in dump %d): the test proves nothing", parents, meta.RowCounts["public.parent"])
	}
	if err := s.Restore(ctx, bytes.NewReader(buf.Bytes()), "dw_restored", &meta); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	var orphans int64
	srv.QueryRow(t, "dw_restored", "SELECT count(*) FROM child c LEFT JOIN parent p ON p.id = c.parent_id WHERE p.id IS NULL", &orphans)
	if orphans != 0 {
		t.Errorf("%d children without parent in the restored database", orphans)
	}
	got := map[string]int64{}
	for _, table := range userTables(t, srv, "dw_restored") {
		var n int64
		schema, name, _ := strings.Cut(table, ".")
		srv.QueryRow(t, "dw_restored", "SELECT count(*) FROM "+pgx.Identifier{schema, name}.Sanitize(), &n)
		got[table] = n
	}
	if !maps.Equal(got, meta.RowCounts) {
		t.Errorf("restored row counts %v, manifest %v", got, meta.RowCounts)
	}
	if got["public.child"] != 2*(got["public.parent"]-50)+200 {
		t.Errorf("restored %d children for %d parents: not one snapshot", got["public.child"], got["public.parent"])
	}
}

// bigDB makes a database with enough data that pg_dump is still busy when
// the test interferes.
func bigDB(t *testing.T, srv *pgtest.Server, name string) {
	srv.CreateDB(t, name)
	srv.Exec(t, name, `CREATE TABLE big (id int PRIMARY KEY, pad text);
		INSERT INTO big SELECT i, repeat(md5(i::text), 8) FROM generate_series(1, 60000) i`)
}

func testDumpCancelled(t *testing.T, srv, other *pgtest.Server) {
	bigDB(t, srv, "cancel")
	s := newTestSource(t, srv, "cancel", nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Cancel at the first byte, and refuse the bytes: pg_dump cannot finish.
	w := writerFunc(func(p []byte) (int, error) { cancel(); return 0, io.ErrClosedPipe })
	err := s.Dump(ctx, w, &source.Meta{})
	if err == nil || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "pg_dump") {
		t.Fatalf("Dump = %v, want pg_dump stopped by the cancellation", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestDumpDatabaseDropped: the database disappears while pg_dump runs. The
// error says why.
func testDumpDatabaseDropped(t *testing.T, srv, other *pgtest.Server) {
	bigDB(t, srv, "dropped")
	s := newTestSource(t, srv, "dropped", nil)
	gw := newGateWriter(io.Discard)
	done := make(chan error, 1)
	go func() { done <- s.Dump(t.Context(), gw, &source.Meta{}) }()
	<-gw.started
	srv.Exec(t, "postgres", "DROP DATABASE dropped WITH (FORCE)")
	close(gw.release)
	err := <-done
	if err == nil {
		t.Fatal("Dump succeeded although its database was dropped")
	}
	if !strings.Contains(err.Error(), "terminating connection due to administrator command") &&
		!strings.Contains(err.Error(), "server closed the connection") {
		t.Errorf("Dump = %v, want the server's reason", err)
	}
	t.Logf("error: %v", err)
}

// TestDumpPermissionDenied: a role that may not read a table gets pg_dump's
// own message, with the exit status.
func testDumpPermissionDenied(t *testing.T, srv, other *pgtest.Server) {
	srv.CreateDB(t, "perm")
	srv.Exec(t, "perm", "CREATE TABLE secret (x int); CREATE TABLE open (x int)")
	srv.CreateRole(t, "weak", "pw")
	srv.Exec(t, "perm", "GRANT SELECT ON open TO weak")
	s := newTestSource(t, srv, "perm", func(c *Config) { c.User, c.Password = "weak", config.NewSecret("pw") })
	err := s.Dump(t.Context(), io.Discard, &source.Meta{})
	// pg_dump or the row count, whichever reaches the table first, says so.
	if err == nil || !strings.Contains(err.Error(), "permission denied for table secret") {
		t.Fatalf("Dump = %v, want the permission error", err)
	}
}

func testIdentity(t *testing.T, srv, other *pgtest.Server) {
	srv.CreateDB(t, "id")
	srv.Exec(t, "id", "CREATE TABLE t (x int)")
	srv.CreateDB(t, "id_fresh")
	s := newTestSource(t, srv, "id", nil)
	ctx := t.Context()

	var meta source.Meta
	if err := s.Dump(ctx, io.Discard, &meta); err != nil {
		t.Fatal(err)
	}
	localhost := strings.Replace(srv.URL("id"), "127.0.0.1", "localhost", 1)
	for _, target := range []string{"id", srv.URL("id"), srv.SocketURL("id"), localhost} {
		info, err := s.Inspect(ctx, target)
		if err != nil {
			t.Fatalf("Inspect(%s): %v", target, err)
		}
		if info.Identity != meta.Identity || !info.Exists || info.Empty {
			t.Errorf("Inspect(%s) = %+v, want identity %s, existing, not empty", target, info, meta.Identity)
		}
	}
	info, err := s.Inspect(ctx, srv.SocketURL("id_fresh"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Identity == meta.Identity || info.Identity == "" || !info.Exists || !info.Empty {
		t.Errorf("Inspect(id_fresh) = %+v, want another identity, existing and empty", info)
	}
	// Another server never shares an identity.
	other.CreateDB(t, "id")
	info, err = s.Inspect(ctx, other.URL("id"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Identity == meta.Identity {
		t.Errorf("another server's database has the same identity %s", info.Identity)
	}

	// Snapshot dumps the target itself.
	snap, err := s.Snapshot(srv.SocketURL("id_fresh"))
	if err != nil {
		t.Fatal(err)
	}
	var smeta source.Meta
	if err := snap.Dump(ctx, io.Discard, &smeta); err != nil {
		t.Fatalf("snapshot Dump: %v", err)
	}
	if smeta.Identity != strings.TrimSuffix(meta.Identity, "/id")+"/id_fresh" || snap.Format() != "pgdump" {
		t.Errorf("snapshot identity %s format %s", smeta.Identity, snap.Format())
	}
}

func testAllDatabases(t *testing.T, srv, other *pgtest.Server) {
	// The source is the second server, so that the databases of the other
	// subtests stay out of it; its parts are restored into the first.
	other.CreateDB(t, "app")
	other.Exec(t, "app", seedSQL)
	other.CreateDB(t, "Other DB")
	other.Exec(t, "Other DB", "CREATE TABLE t (x int); INSERT INTO t VALUES (42)")
	other.CreateRole(t, "app_owner", "pw", "CREATEDB")
	other.Exec(t, "app", "ALTER TABLE parent OWNER TO app_owner")
	ctx := t.Context()

	src, err := Open(&Config{Host: other.Host, Port: other.Port, User: pgtest.Superuser, Database: AllDatabases, BinDir: other.BinDir},
		source.Deps{Name: "server", Env: testEnv(map[string]string{"PATH": "/usr/bin:/bin", "HOME": t.TempDir()})})
	if err != nil {
		t.Fatal(err)
	}
	cl, ok := src.(source.Expander)
	if !ok {
		t.Fatalf("Open(all) = %T, want a source.Expander", src)
	}
	restorer, ok := src.(source.Restorer)
	if !ok {
		t.Fatalf("Open(all) = %T, want a source.Restorer too", src)
	}
	if one, err := Open(&Config{Host: other.Host, Database: "app"}, source.Deps{}); err != nil {
		t.Fatal(err)
	} else if _, ok := one.(source.Expander); ok {
		t.Errorf("Open of one database = %T, a source.Expander", one)
	}
	parts, err := cl.Parts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range parts {
		names = append(names, p.Name)
	}
	if names[0] != GlobalsPart || !slices.Contains(names, "app") || !slices.Contains(names, "other_db") ||
		!slices.Contains(names, "postgres") || slices.Contains(names, "template1") {
		t.Fatalf("parts = %q, want globals first, app, other_db and postgres, no templates", names)
	}

	for _, p := range parts {
		var buf bytes.Buffer
		meta := source.Meta{Part: p.Name}
		if err := p.Source.Dump(ctx, &buf, &meta); err != nil {
			t.Fatalf("Dump part %s: %v", p.Name, err)
		}
		wantFormat, target := "pgdump", srv.URL("all_"+p.Name)
		if p.Name == GlobalsPart {
			wantFormat, target = "sql", srv.URL("postgres")
			if !strings.Contains(buf.String(), "CREATE ROLE app_owner") {
				t.Errorf("globals part lacks the role:\n%s", buf.String())
			}
		}
		if p.Source.Format() != wantFormat {
			t.Errorf("part %s format %q, want %q", p.Name, p.Source.Format(), wantFormat)
		}
		if err := restorer.Restore(ctx, &buf, target, &meta); err != nil {
			t.Fatalf("Restore part %s: %v", p.Name, err)
		}
	}
	var owner string
	srv.QueryRow(t, "all_app", "SELECT tableowner FROM pg_tables WHERE tablename = 'parent'", &owner)
	if owner != pgtest.Superuser { // restored with --no-owner
		t.Errorf("parent owned by %q after restore", owner)
	}
	var canLogin bool
	srv.QueryRow(t, "postgres", "SELECT rolcanlogin AND rolcreatedb FROM pg_roles WHERE rolname = 'app_owner'", &canLogin)
	if !canLogin {
		t.Error("role app_owner not restored with its attributes")
	}
	if got := srv.Strings(t, "all_other_db", "SELECT x::text FROM t"); !slices.Equal(got, []string{"42"}) {
		t.Errorf("Other DB rows = %q", got)
	}
	if a, b := other.SchemaDump(t, "app"), srv.SchemaDump(t, "all_app"); strings.ReplaceAll(a, "app_owner", pgtest.Superuser) != b {
		t.Errorf("schema of app differs after restore on another server:\n%s\n---\n%s", a, b)
	}
}

// tocTables lists "schema.table" of the TABLE DATA entries of a custom
// archive, as pg_restore --list shows them.
func tocTables(t *testing.T, srv *pgtest.Server, dump []byte) []string {
	t.Helper()
	cmd := exec.Command(srv.Bin("pg_restore"), "--list")
	cmd.Stdin = bytes.NewReader(dump)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg_restore --list: %v", err)
	}
	var tables []string
	for _, line := range strings.Split(string(out), "\n") {
		// 3345; 0 16390 TABLE DATA public parent postgres
		if _, rest, ok := strings.Cut(line, " TABLE DATA "); ok && !strings.HasPrefix(line, ";") {
			f := strings.Fields(rest)
			tables = append(tables, f[0]+"."+f[1])
		}
	}
	slices.Sort(tables)
	return tables
}

// testFilters: include/exclude patterns select the same tables for pg_dump
// and for the row counts, and a dump of selected schemas restores.
func testFilters(t *testing.T, srv, other *pgtest.Server) {
	srv.CreateDB(t, "f")
	srv.Exec(t, "f", seedSQL)
	srv.Exec(t, "f", `CREATE TABLE "Mixed" (x int); CREATE SCHEMA scratch; CREATE TABLE scratch.tmp (x int)`)
	tests := []struct {
		name    string
		mod     func(*Config)
		want    []string
		restore bool // the selection is self-contained: restore it
	}{
		{"include tables", func(c *Config) { c.IncludeTables = []string{"parent", "billing.*"} },
			[]string{"billing.invoices", "public.parent"}, false},
		{"include quoted", func(c *Config) { c.IncludeTables = []string{`"Mixed"`, "mood?"} },
			[]string{"public.Mixed", "public.moods"}, false},
		{"exclude tables", func(c *Config) { c.ExcludeTables = []string{"*.k*", "audit", "schema_*", "moods", `"Mixed"`} },
			[]string{"billing.invoices", "public.child", "public.parent", "scratch.tmp"}, false},
		{"include schema minus tables", func(c *Config) {
			c.IncludeSchemas = []string{"public"}
			c.ExcludeTables = []string{"public.[a-m]*"}
		}, []string{"public.Mixed", "public.parent", "public.schema_migrations"}, false},
		{"include schemas", func(c *Config) { c.IncludeSchemas = []string{"public", "billing"} },
			[]string{"billing.invoices", "public.Mixed", "public.audit", "public.child", "public.kinds", "public.moods",
				"public.parent", "public.schema_migrations"}, true},
		{"exclude schemas", func(c *Config) { c.ExcludeSchemas = []string{"public", "scr*"} },
			[]string{"billing.invoices"}, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSource(t, srv, "f", tt.mod)
			var buf bytes.Buffer
			var meta source.Meta
			if err := s.Dump(t.Context(), &buf, &meta); err != nil {
				t.Fatal(err)
			}
			if got := slices.Sorted(maps.Keys(meta.RowCounts)); !slices.Equal(got, tt.want) {
				t.Errorf("counted %q, want %q", got, tt.want)
			}
			if got := tocTables(t, srv, buf.Bytes()); !slices.Equal(got, tt.want) {
				t.Errorf("pg_dump wrote data of %q, want %q", got, tt.want)
			}
			if !tt.restore {
				return
			}
			db := fmt.Sprintf("f_restored%d", i)
			if err := s.Restore(t.Context(), &buf, db, &meta); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if got := userTables(t, srv, db); !slices.Equal(got, tt.want) {
				t.Errorf("restored %q, want %q", got, tt.want)
			}
		})
	}
}

func testDoctor(t *testing.T, srv, other *pgtest.Server) {
	srv.CreateDB(t, "doc")
	srv.Exec(t, "doc", seedSQL)
	srv.CreateRole(t, "doc_writer", "pw-w")
	srv.Exec(t, "doc", "GRANT pg_read_all_data TO doc_writer; GRANT INSERT ON billing.invoices TO doc_writer")
	srv.CreateRole(t, "doc_creator", "pw-c")
	srv.Exec(t, "doc", "GRANT pg_read_all_data TO doc_creator; GRANT CREATE ON SCHEMA billing TO doc_creator")
	srv.CreateRole(t, "doc_reader", "pw-r")
	srv.Exec(t, "doc", "GRANT pg_read_all_data TO doc_reader")
	srv.CreateRole(t, "doc_selecter", "pw-s")
	srv.Exec(t, "doc", `GRANT USAGE ON SCHEMA billing TO doc_selecter;
		GRANT SELECT ON ALL TABLES IN SCHEMA public, billing TO doc_selecter;
		GRANT SELECT ON ALL SEQUENCES IN SCHEMA public, billing TO doc_selecter`)
	srv.CreateRole(t, "doc_partial", "pw-p")
	srv.Exec(t, "doc", "GRANT SELECT ON ALL TABLES IN SCHEMA public TO doc_partial")

	tests := []struct {
		user, password string
		level          doctor.Level
		msg            string
	}{
		{pgtest.Superuser, "", doctor.Warn, "superuser"},
		{"doc_writer", "pw-w", doctor.Warn, `can INSERT, UPDATE, DELETE or TRUNCATE 1 tables in database "doc" (billing.invoices)`},
		{"doc_creator", "pw-c", doctor.Warn, "can CREATE in 1 schemas"},
		{"doc_reader", "pw-r", doctor.OK, "read-only"},
		{"doc_selecter", "pw-s", doctor.OK, "read-only"},
		{"doc_partial", "pw-p", doctor.Fail, "cannot read 5 tables or sequences"},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			s := newTestSource(t, srv, "doc", func(c *Config) {
				c.User = tt.user
				if tt.password != "" {
					c.Password = config.NewSecret(tt.password)
				}
			})
			fs := s.Doctor(t.Context())
			worst, found := doctor.OK, false
			for _, f := range fs {
				worst = max(worst, f.Level)
				if f.Level == tt.level && strings.Contains(f.Msg, tt.msg) {
					found = true
				}
				if f.Level != doctor.OK && f.Hint == "" {
					t.Errorf("finding without hint: %+v", f)
				}
			}
			if !found || worst != tt.level {
				t.Errorf("findings %+v: want a %v finding %q and nothing worse", fs, tt.level, tt.msg)
			}
			err := s.Dump(t.Context(), io.Discard, &source.Meta{})
			if tt.level == doctor.Fail && err == nil {
				t.Errorf("doctor failed but Dump as %s succeeded", tt.user)
			}
			if tt.level != doctor.Fail && err != nil {
				t.Errorf("Dump as %s: %v", tt.user, err)
			}
		})
	}

	// A wrong password is a failure that says how to fix it.
	s := newTestSource(t, srv, "doc", func(c *Config) { c.User, c.Password = "doc_reader", config.NewSecret("wrong") })
	fs := s.Doctor(t.Context())
	if len(fs) == 0 || fs[len(fs)-1].Level != doctor.Fail || !strings.Contains(fs[len(fs)-1].Msg, "password authentication failed") ||
		strings.Contains(fmt.Sprint(fs), "wrong") {
		t.Errorf("findings with a wrong password: %+v", fs)
	}
}

// testTooOldPgDump: a pg_dump older than the server is refused before
// anything is dumped, by Dump and by doctor, naming the package to install.
// An old pg_dump cannot run here, so a script stands in for its --version.
func testTooOldPgDump(t *testing.T, srv, other *pgtest.Server) {
	srv.CreateDB(t, "old")
	bin := t.TempDir()
	script := "#!/bin/sh\necho 'pg_dump (PostgreSQL) 12.3'\n"
	if err := os.WriteFile(filepath.Join(bin, "pg_dump"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	s := newTestSource(t, srv, "old", func(c *Config) { c.BinDir = bin })
	want := fmt.Sprintf("install postgresql-client-%d ", srv.Major)
	err := s.Dump(t.Context(), io.Discard, &source.Meta{})
	var ve *VersionError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "pg_dump 12.3") {
		t.Fatalf("Dump = %v, want a VersionError saying %q", err, want)
	}
	var failed bool
	for _, f := range s.Doctor(t.Context()) {
		if f.Level == doctor.Fail && strings.Contains(f.Msg, want) {
			failed = true
		}
	}
	if !failed {
		t.Errorf("doctor did not fail on the old pg_dump")
	}
}

// testPgpass: without a configured password, ~/.pgpass serves both
// lifeboat's own connection and pg_dump.
func testPgpass(t *testing.T, srv, other *pgtest.Server) {
	srv.CreateDB(t, "pgpass")
	srv.Exec(t, "pgpass", "CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
	srv.CreateRole(t, "pgpass_reader", "from-pgpass")
	srv.Exec(t, "pgpass", "GRANT pg_read_all_data TO pgpass_reader")
	home := t.TempDir()
	line := fmt.Sprintf("%s:%d:pgpass:pgpass_reader:from-pgpass\n", srv.Host, srv.Port)
	if err := os.WriteFile(filepath.Join(home, ".pgpass"), []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Host: srv.Host, Port: srv.Port, User: "pgpass_reader", Database: "pgpass", BinDir: srv.BinDir}
	s, err := New(cfg, source.Deps{Env: testEnv(map[string]string{"PATH": "/usr/bin:/bin", "HOME": home})})
	if err != nil {
		t.Fatal(err)
	}
	var meta source.Meta
	if err := s.Dump(t.Context(), io.Discard, &meta); err != nil {
		t.Fatalf("Dump with ~/.pgpass: %v", err)
	}
	if meta.RowCounts["public.t"] != 1 {
		t.Errorf("RowCounts = %v", meta.RowCounts)
	}
}

// testRestoreFailure: a restore that fails says so with the tool's message.
func testRestoreFailure(t *testing.T, srv, other *pgtest.Server) {
	srv.CreateDB(t, "rf")
	srv.Exec(t, "rf", "CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 1000)")
	srv.CreateDB(t, "rf_busy")
	srv.Exec(t, "rf_busy", "CREATE TABLE t (x int)")
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where the parallel restore stages the archive
	defer func() {
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Errorf("failed restores left files in TMPDIR: %v", left)
		}
	}()
	for _, format := range []string{"custom", "plain"} {
		for _, jobs := range []int{1, 2} {
			s := newTestSource(t, srv, "rf", func(c *Config) { c.Format, c.Jobs = format, jobs })
			var buf bytes.Buffer
			var meta source.Meta
			if err := s.Dump(t.Context(), &buf, &meta); err != nil {
				t.Fatal(err)
			}
			dump := buf.Bytes()
			// A non-empty target reaches Restore only after the guard
			// allowed an overwrite: the database is replaced by the
			// backup, objects it lacks included.
			srv.Exec(t, "rf_busy", "CREATE TABLE IF NOT EXISTS extra (y int)")
			if err := s.Restore(t.Context(), bytes.NewReader(dump), "rf_busy", &meta); err != nil {
				t.Errorf("%s/%d: overwrite of a non-empty database: %v", format, jobs, err)
			} else if got := userTables(t, srv, "rf_busy"); len(got) != 1 || !strings.HasSuffix(got[0], "t") {
				t.Errorf("%s/%d: after the overwrite the database has tables %q, want only t", format, jobs, got)
			}
			// A truncated dump fails; in plain format nothing is
			// committed.
			db := fmt.Sprintf("rf_truncated_%s%d", format, jobs)
			if err := s.Restore(t.Context(), bytes.NewReader(dump[:len(dump)*2/3]), db, &meta); err == nil {
				t.Errorf("%s/%d: restore of a truncated dump succeeded", format, jobs)
			} else {
				t.Logf("%s/%d truncated: %v", format, jobs, err)
			}
			if format == "plain" {
				if got := userTables(t, srv, db); len(got) != 0 {
					t.Errorf("truncated plain restore left tables %q", got)
				}
			}
		}
	}
	if err := newTestSource(t, srv, "rf", nil).Restore(t.Context(), strings.NewReader(""), "rf_empty", &source.Meta{}); err == nil {
		t.Error("restore of an empty dump succeeded")
	}

	// Grants to a role the target lacks: the error says what to do.
	srv.CreateRole(t, "rf_app", "pw")
	srv.Exec(t, "rf", "GRANT SELECT ON t TO rf_app")
	for _, format := range []string{"custom", "plain"} {
		s := newTestSource(t, srv, "rf", func(c *Config) { c.Jobs, c.Format = 1, format })
		var buf bytes.Buffer
		var meta source.Meta
		if err := s.Dump(t.Context(), &buf, &meta); err != nil {
			t.Fatal(err)
		}
		err := s.Restore(t.Context(), &buf, other.URL("rf_noroles_"+format), &meta)
		if err == nil || !strings.Contains(err.Error(), `role "rf_app" does not exist`) || !strings.Contains(err.Error(), "globals part") {
			t.Errorf("%s restore without the roles = %v, want the missing role and what to do", format, err)
		}
	}
}

// TestPostgres runs every scenario against two shared throwaway servers
// (starting one costs seconds). Each scenario uses databases and roles of
// its own.
func TestPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	other := pgtest.Start(t)
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, srv, other *pgtest.Server)
	}{
		{"RoundTrip", testRoundTrip},
		{"DumpDuringWrites", testDumpDuringWrites},
		{"DumpCancelled", testDumpCancelled},
		{"DumpDatabaseDropped", testDumpDatabaseDropped},
		{"DumpPermissionDenied", testDumpPermissionDenied},
		{"Identity", testIdentity},
		{"AllDatabases", testAllDatabases},
		{"Filters", testFilters},
		{"Doctor", testDoctor},
		{"TooOldPgDump", testTooOldPgDump},
		{"Pgpass", testPgpass},
		{"RestoreFailure", testRestoreFailure},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, srv, other) })
	}
}
