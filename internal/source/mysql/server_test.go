package mysql

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/source"
	"github.com/lifeboat-backup/lifeboat/internal/testutil"
	"github.com/lifeboat-backup/lifeboat/internal/testutil/mysqltest"
)

// start starts a test server and checks that the client tools are there.
func start(t *testing.T) *mysqltest.Server {
	t.Helper()
	testutil.LookPath(t, "mysql", "mariadb-dump")
	testutil.LookPath(t, "mysql", "mariadb")
	return mysqltest.Start(t)
}

// newSource builds a source for database db on srv as root over TCP; edit
// changes the config first.
func newSource(t *testing.T, srv *mysqltest.Server, db string, edit func(*Config)) *Source {
	t.Helper()
	cfg := &Config{URL: srv.URL(db), Password: config.NewSecret(mysqltest.RootPassword)}
	if edit != nil {
		edit(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	s, err := New(cfg, source.Deps{Name: "app-db", Env: os.LookupEnv, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// shopSchema has a bit of everything a dump must carry.
const shopSchema = `
CREATE TABLE customers (
	id INT AUTO_INCREMENT PRIMARY KEY,
	name VARCHAR(100) NOT NULL,
	note TEXT,
	balance DECIMAL(20,6) NOT NULL,
	created DATETIME(6),
	updated TIMESTAMP(3) NULL,
	avatar BLOB,
	prefs JSON,
	UNIQUE KEY (name)
) ENGINE=InnoDB;
CREATE TABLE orders (
	id BIGINT AUTO_INCREMENT PRIMARY KEY,
	customer_id INT NOT NULL,
	total DECIMAL(12,2) NOT NULL,
	placed DATE,
	CONSTRAINT fk_customer FOREIGN KEY (customer_id) REFERENCES customers(id) ON DELETE CASCADE
) ENGINE=InnoDB;
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, order_id BIGINT, msg VARCHAR(200)) ENGINE=InnoDB;
CREATE VIEW big_orders AS SELECT o.id, c.name, o.total FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.total > 100;
CREATE FUNCTION add_tax(x DECIMAL(12,2)) RETURNS DECIMAL(12,2) DETERMINISTIC RETURN x * 1.2;
CREATE PROCEDURE count_orders(OUT n INT) SELECT COUNT(*) INTO n FROM orders;
CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW INSERT INTO audit (order_id, msg) VALUES (NEW.id, CONCAT('order ', NEW.id));
CREATE EVENT purge_audit ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM audit WHERE id < 0;
`

// seedShop creates database name with shopSchema and rows.
func seedShop(t *testing.T, srv *mysqltest.Server, name string) {
	t.Helper()
	srv.CreateDB(t, name)
	srv.Exec(t, name, shopSchema)
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	db := srv.DB(t, name)
	for i, c := range []struct {
		name, note, balance string
		avatar              []byte
		prefs               any
	}{
		{"Zoë 🚀 日本語", "multi\nline 'quoted' \"text\" \\ back\x00slash", "-99999999999999.999999", allBytes, `{"theme": "dark", "emoji": "🎉", "n": [1, 2.5, null]}`},
		{"Ada", "", "0.000001", []byte{0, 0, 0}, nil},
		{"Ünïcödé", strings.Repeat("long text ", 3000), "12345678901234.5", nil, `[]`},
		{"deleted later", "x", "1", nil, nil},
	} {
		if _, err := db.Exec("INSERT INTO customers (name, note, balance, created, updated, avatar, prefs) VALUES (?, ?, ?, ?, ?, ?, ?)",
			c.name, c.note, c.balance, fmt.Sprintf("2024-02-29 23:59:59.%06d", 123456+i), "2038-01-19 03:14:07.999", c.avatar, c.prefs); err != nil {
			t.Fatalf("insert customer: %v", err)
		}
	}
	srv.Exec(t, name, `
		INSERT INTO orders (customer_id, total, placed) VALUES (1, 10.50, '2024-01-01'), (1, 250.00, '2024-01-02'), (2, 99999.99, NULL), (3, 0, '1999-12-31');
		DELETE FROM customers WHERE name = 'deleted later';`)
}

// contents is everything observable about a database: each table's CREATE
// and rows, and the definitions of views, routines, triggers and events.
func contents(t *testing.T, srv *mysqltest.Server, name string) map[string]string {
	t.Helper()
	db := srv.DB(t, name)
	out := map[string]string{}
	tables := queryStrings(t, db, "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1")
	for _, row := range tables {
		tbl, typ := row[0], row[1]
		if typ == "VIEW" {
			r := queryStrings(t, db, "SHOW CREATE VIEW "+mysqltest.Quote(tbl))
			out["view "+tbl] = r[0][1]
		} else {
			r := queryStrings(t, db, "SHOW CREATE TABLE "+mysqltest.Quote(tbl))
			out["create "+tbl] = r[0][1]
		}
		out["rows "+tbl] = fmt.Sprintf("%q", queryStrings(t, db, "SELECT * FROM "+mysqltest.Quote(tbl)+" ORDER BY 1"))
	}
	for _, r := range queryStrings(t, db, "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY 2") {
		out["routine "+r[1]] = queryStrings(t, db, "SHOW CREATE "+r[0]+" "+mysqltest.Quote(r[1]))[0][2]
	}
	for _, r := range queryStrings(t, db, "SELECT TRIGGER_NAME, EVENT_MANIPULATION, ACTION_TIMING, EVENT_OBJECT_TABLE, ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()") {
		out["trigger "+r[0]] = fmt.Sprintf("%q", r[1:])
	}
	for _, r := range queryStrings(t, db, "SELECT EVENT_NAME, EVENT_DEFINITION, INTERVAL_VALUE, INTERVAL_FIELD, STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE()") {
		out["event "+r[0]] = fmt.Sprintf("%q", r[1:])
	}
	return out
}

func queryStrings(t *testing.T, db *sql.DB, q string, args ...any) [][]string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = "<NULL>"
			if v.Valid {
				row[i] = v.String
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

func queryInt(t *testing.T, db *sql.DB, q string) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func dump(t *testing.T, s *Source) ([]byte, *source.Meta) {
	t.Helper()
	var buf bytes.Buffer
	meta := &source.Meta{}
	if err := s.Dump(t.Context(), &buf, meta); err != nil {
		t.Fatalf("dump: %v", err)
	}
	return buf.Bytes(), meta
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	srv := start(t)
	seedShop(t, srv, "shop")
	s := newSource(t, srv, "shop", func(c *Config) {
		c.SchemaVersion = "SELECT MAX(id) FROM orders"
	})

	before := contents(t, srv, "shop")
	if !strings.Contains(before["create customers"], "AUTO_INCREMENT=5") {
		t.Fatalf("seed: the auto-increment counter should be past the deleted row:\n%s", before["create customers"])
	}
	data, meta := dump(t, s)

	if meta.ServerVersion != srv.Version || meta.ToolVersions["mariadb-dump"] == "" {
		t.Errorf("versions: server %q tools %v", meta.ServerVersion, meta.ToolVersions)
	}
	if want := map[string]int64{"customers": 3, "orders": 4, "audit": 4}; !reflect.DeepEqual(meta.RowCounts, want) {
		t.Errorf("row counts = %v, want %v", meta.RowCounts, want)
	}
	if meta.RowCountsTaken != "before dump" || meta.SchemaVersion != "4" || meta.DatabaseSize <= 0 {
		t.Errorf("meta: %+v", meta)
	}
	if !strings.HasPrefix(meta.Identity, "mysql:mariadb-") || !strings.HasSuffix(meta.Identity, "/shop") {
		t.Errorf("identity = %q", meta.Identity)
	}
	if bytes.Contains(data, []byte("CREATE DATABASE")) || bytes.Contains(data, []byte("USE `shop`")) {
		t.Error("the dump names its database; it could not be restored under another name")
	}

	info, err := s.Inspect(t.Context(), "shop_restored")
	if err != nil {
		t.Fatal(err)
	}
	if info.Exists || !info.Empty || info.IsSource || info.Identity == meta.Identity {
		t.Fatalf("inspect before restore: %+v", info)
	}
	if err := s.Restore(t.Context(), bytes.NewReader(data), "shop_restored", meta); err != nil {
		t.Fatalf("restore: %v", err)
	}
	after := contents(t, srv, "shop_restored")
	if !reflect.DeepEqual(before, after) {
		for k := range before {
			if before[k] != after[k] {
				t.Errorf("%s differs:\nbefore: %s\nafter:  %s", k, before[k], after[k])
			}
		}
		for k := range after {
			if _, ok := before[k]; !ok {
				t.Errorf("%s appeared", k)
			}
		}
	}
	var cs, co string
	if err := srv.DB(t, "").QueryRow("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'shop_restored'").Scan(&cs, &co); err != nil || cs != "utf8mb4" || co != "utf8mb4_unicode_ci" {
		t.Errorf("restored database charset %s/%s (%v), want the source's utf8mb4/utf8mb4_unicode_ci", cs, co, err)
	}

	// The restored objects work, not just exist.
	rdb := srv.DB(t, "shop_restored")
	srv.Exec(t, "shop_restored", "INSERT INTO orders (customer_id, total) VALUES (2, 500)")
	if n := queryInt(t, rdb, "SELECT COUNT(*) FROM audit"); n != 5 {
		t.Errorf("trigger after restore: audit has %d rows, want 5", n)
	}
	if got := queryStrings(t, rdb, "SELECT add_tax(10)"); got[0][0] != "12.00" {
		t.Errorf("function after restore: %v", got)
	}
	if _, err := rdb.Exec("INSERT INTO orders (customer_id, total) VALUES (999, 1)"); err == nil {
		t.Error("foreign key not enforced after restore")
	}
	if n := queryInt(t, rdb, "SELECT COUNT(*) FROM big_orders"); n != 3 {
		t.Errorf("view after restore: %d rows, want 3", n)
	}

	info, err = s.Inspect(t.Context(), "shop_restored")
	if err != nil || !info.Exists || info.Empty || info.IsSource || !strings.Contains(info.Describe, "shop_restored") {
		t.Fatalf("inspect after restore: %+v %v", info, err)
	}
	own, err := s.Inspect(t.Context(), "shop")
	if err != nil || !own.IsSource || own.Identity != meta.Identity {
		t.Fatalf("inspect of the source itself: %+v %v (dump identity %s)", own, err, meta.Identity)
	}

	// A safety snapshot of the restored database reads it back.
	snap, err := s.Snapshot("shop_restored")
	if err != nil {
		t.Fatal(err)
	}
	var sb bytes.Buffer
	smeta := &source.Meta{}
	if err := snap.Dump(t.Context(), &sb, smeta); err != nil {
		t.Fatalf("snapshot dump: %v", err)
	}
	if smeta.RowCounts["orders"] != 5 || !strings.HasSuffix(smeta.Identity, "/shop_restored") {
		t.Errorf("snapshot meta: %+v", smeta)
	}
}

// Restoring a dump that fails half-way must report the failing statement,
// and a dump that cannot be read must stop the client before it runs a
// cut-off statement.
func TestRestoreErrors(t *testing.T) {
	t.Parallel()
	srv := start(t)
	seedShop(t, srv, "shop")
	s := newSource(t, srv, "shop", nil)
	data, meta := dump(t, s)

	bad := append(append([]byte{}, data...), []byte("\nINSERT INTO no_such_table VALUES (1);\n")...)
	err := s.Restore(t.Context(), bytes.NewReader(bad), "broken", meta)
	if err == nil || !strings.Contains(err.Error(), "no_such_table") {
		t.Fatalf("restore of a bad statement: %v", err)
	}

	// Cut the dump inside the INSERT of customers, right after a complete
	// row tuple: run as is, the cut statement would be valid SQL.
	i := bytes.Index(data, []byte("INSERT INTO `customers` VALUES"))
	j := bytes.Index(data[i:], []byte("),\n("))
	if i < 0 || j < 0 {
		t.Fatal("dump has no multi-row INSERT into customers")
	}
	cut := data[:i+j+1]
	r := &failingReader{data: cut, err: fmt.Errorf("decrypt: message authentication failed")}
	err = s.Restore(t.Context(), r, "cut", meta)
	if err == nil || !strings.Contains(err.Error(), "message authentication failed") {
		t.Fatalf("restore of an unreadable dump: %v", err)
	}
	// The client may not have got as far as creating the table; if it did,
	// the table must be empty.
	cdb := srv.DB(t, "cut")
	if queryInt(t, cdb, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'cut' AND TABLE_NAME = 'customers'") == 1 {
		if n := queryInt(t, cdb, "SELECT COUNT(*) FROM customers"); n != 0 {
			t.Fatalf("the cut-off INSERT ran: customers has %d rows", n)
		}
	}

	if err := s.Restore(t.Context(), bytes.NewReader(data), "mysql", meta); err == nil {
		t.Fatal("restore into the mysql system database was allowed")
	}
}

// failingReader returns data, then err instead of io.EOF.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestNonTransactionalTables(t *testing.T) {
	t.Parallel()
	srv := start(t)
	srv.CreateDB(t, "legacy")
	srv.Exec(t, "legacy", `CREATE TABLE good (id INT PRIMARY KEY) ENGINE=InnoDB;
		CREATE TABLE hits (id INT PRIMARY KEY) ENGINE=MyISAM;
		CREATE TABLE cache (id INT PRIMARY KEY) ENGINE=MEMORY;
		INSERT INTO hits VALUES (1);`)

	s := newSource(t, srv, "legacy", nil)
	var buf bytes.Buffer
	err := s.Dump(t.Context(), &buf, &source.Meta{})
	var nte *NonTransactionalError
	if !errorsAs(err, &nte) {
		t.Fatalf("dump with MyISAM tables: %v", err)
	}
	for _, want := range []string{"hits (MyISAM)", "cache (MEMORY)", "allow_non_transactional"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "good") || buf.Len() != 0 {
		t.Errorf("error names an InnoDB table or the dump ran: %v (%d bytes)", err, buf.Len())
	}

	// Leaving them out, or allowing them, lets the dump run.
	_, _ = dump(t, newSource(t, srv, "legacy", func(c *Config) { c.ExcludeTables = []string{"hits", "cache"} }))
	data, meta := dump(t, newSource(t, srv, "legacy", func(c *Config) { c.AllowNonTransactional = true }))
	if !bytes.Contains(data, []byte("INSERT INTO `hits`")) || len(meta.Warnings) == 0 || !strings.Contains(meta.Warnings[0], "hits") {
		t.Errorf("allowed dump: warnings %q", meta.Warnings)
	}
}

func errorsAs[T any](err error, target *T) bool { return err != nil && errors.As(err, target) }
