package cli_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/lifeboat-backup/lifeboat/internal/testutil/mysqltest"
	"github.com/lifeboat-backup/lifeboat/internal/testutil/pgtest"
)

// The truth test for PostgreSQL through the CLI: back up, restore into a new
// database, compare; restore over the source (reached by another URL) is
// refused; --force takes a safety backup first.
func TestPostgresThroughCLI(t *testing.T) {
	srv := pgtest.Start(t)
	srv.CreateDB(t, "shop")
	srv.Exec(t, "shop", `CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, tags text[], data jsonb);
		CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id), total numeric(12,2), placed timestamptz DEFAULT now());
		CREATE TABLE schema_migrations (version bigint PRIMARY KEY);
		INSERT INTO schema_migrations VALUES (20261101), (20261120);
		INSERT INTO customers (name, tags, data) SELECT 'Zoë ' || g, ARRAY['a','b'], jsonb_build_object('n', g) FROM generate_series(1, 500) g;
		INSERT INTO orders (customer_id, total) SELECT 1 + g % 500, g * 1.5 FROM generate_series(1, 2000) g;`)
	e := newEnv(t)
	e.writeConfig(fmt.Sprintf(`encryption:
  recipients: [{{RECIPIENT}}]
  identity: ./key.txt
storages:
  here:
    type: local
    path: ./backups
sources:
  shop:
    type: postgres
    url: %s
    schema_version: SELECT max(version) FROM schema_migrations
    storages: [here]
`, srv.URL("shop")))
	out := e.mustRun("backup", "shop")
	if !strings.Contains(out, "shop: committed backup") {
		t.Fatalf("backup:\n%s", out)
	}
	e.mustRun("verify", "shop")
	manifest := e.mustRun("list", "--json", "shop")
	if !strings.Contains(manifest, `"source": "shop"`) {
		t.Fatal(manifest)
	}

	e.mustRun("restore", "shop", "--to", srv.URL("shop_restored"))
	if a, b := srv.SchemaDump(t, "shop"), srv.SchemaDump(t, "shop_restored"); a != b {
		t.Fatalf("schema differs after restore")
	}
	for _, q := range []string{"SELECT count(*)::text || sum(total)::text FROM orders", "SELECT string_agg(name || data::text, ',' ORDER BY id) FROM customers"} {
		if a, b := srv.Strings(t, "shop", q), srv.Strings(t, "shop_restored", q); strings.Join(a, "") != strings.Join(b, "") {
			t.Fatalf("%s: %v vs %v", q, a, b)
		}
	}

	// A password in the target URL is used but never shown.
	withPw := srv.UserURL(pgtest.Superuser, "sekret-pw-42", "shop_pw")
	for _, args := range [][]string{{"restore", "shop", "--to", withPw}, {"restore", "shop", "--to", withPw, "--plan"}} {
		r := e.run(args...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, r.code, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, "sekret-pw-42") {
			t.Fatalf("%v printed the target's password:\n%s%s", args, r.stdout, r.stderr)
		}
	}

	// Over the source, reached through the unix socket rather than the URL
	// in the config: refused, nothing changed.
	r := e.run("restore", "shop", "--to", srv.SocketURL("shop"))
	if r.code == 0 || !strings.Contains(r.stderr, "source this backup was taken from") {
		t.Fatalf("restore over the source: exit %d\n%s", r.code, r.stderr)
	}
	// Into a non-empty database: refused.
	r = e.run("restore", "shop", "--to", srv.URL("shop_restored"))
	if r.code == 0 || !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("restore over a non-empty database: exit %d\n%s", r.code, r.stderr)
	}
	// With --force: safety backup of the target, then the restore.
	srv.Exec(t, "shop_restored", "DELETE FROM orders WHERE id > 10")
	out = e.mustRun("restore", "shop", "--to", srv.URL("shop_restored"), "--force")
	if !strings.Contains(out, "safety backup") {
		t.Fatalf("no safety backup:\n%s", out)
	}
	if n := srv.Strings(t, "shop_restored", "SELECT count(*)::text FROM orders"); n[0] != "2000" {
		t.Fatalf("after forced restore %s orders, want 2000", n[0])
	}
}

// The same through the CLI for MariaDB.
func TestMySQLThroughCLI(t *testing.T) {
	srv := mysqltest.Start(t)
	srv.CreateDB(t, "shop")
	for _, q := range []string{
		"CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) CHARACTER SET utf8mb4, balance DECIMAL(12,2)) ENGINE=InnoDB",
		"CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer_id INT, FOREIGN KEY (customer_id) REFERENCES customers(id)) ENGINE=InnoDB",
		"INSERT INTO customers (name, balance) VALUES ('Zoë 🚣', 12.50), ('李小龍', 99.99), ('O''Brien', 0)",
		"INSERT INTO orders (customer_id) VALUES (1), (1), (2), (3)",
	} {
		srv.Exec(t, "shop", q)
	}
	e := newEnv(t)
	e.vars["MYSQL_PASSWORD"] = mysqltest.RootPassword
	e.writeConfig(fmt.Sprintf(`encryption:
  recipients: [{{RECIPIENT}}]
  identity: ./key.txt
storages:
  here:
    type: local
    path: ./backups
sources:
  shop:
    type: mysql
    url: %s
    password: ${env:MYSQL_PASSWORD}
    storages: [here]
`, srv.URL("shop")))
	e.mustRun("backup", "shop")
	e.mustRun("verify", "shop")
	e.mustRun("restore", "shop", "--to", "shop_restored")
	rows := func(db string) string {
		var out []string
		r, err := srv.DB(t, db).Query("SELECT CONCAT(c.id, c.name, c.balance, COUNT(o.id)) FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.id ORDER BY c.id")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for r.Next() {
			var s string
			r.Scan(&s)
			out = append(out, s)
		}
		return strings.Join(out, "|")
	}
	if a, b := rows("shop"), rows("shop_restored"); a != b || a == "" {
		t.Fatalf("rows differ: %q vs %q", a, b)
	}
	if r := e.run("restore", "shop", "--to", "shop"); r.code == 0 || !strings.Contains(r.stderr, "source") {
		t.Fatalf("restore over the source: exit %d\n%s", r.code, r.stderr)
	}
	if r := e.run("restore", "shop", "--to", "shop_restored"); r.code == 0 || !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("restore over a non-empty database: exit %d\n%s", r.code, r.stderr)
	}
	srv.Exec(t, "shop_restored", "CREATE TABLE extra (x INT)")
	if out := e.mustRun("restore", "shop", "--to", "shop_restored", "--force"); !strings.Contains(out, "safety backup") {
		t.Fatalf("no safety backup:\n%s", out)
	}
	var n int
	srv.DB(t, "shop_restored").QueryRow("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'shop_restored' AND table_name = 'extra'").Scan(&n)
	if n != 0 {
		t.Fatal("a forced restore left a table the backup does not have")
	}
}
