package mysql

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/doctor"
	"github.com/lifeboat-backup/lifeboat/internal/source"
	"github.com/lifeboat-backup/lifeboat/internal/testutil/mysqltest"
)

// gateWriter holds the first Write until open is closed, so a test can act
// while the dump tool is known to be in the middle of its work.
type gateWriter struct {
	w       io.Writer
	once    sync.Once
	started chan struct{} // closed at the first Write
	open    chan struct{}
}

func newGate(w io.Writer) *gateWriter {
	return &gateWriter{w: w, started: make(chan struct{}), open: make(chan struct{})}
}

func (g *gateWriter) Write(p []byte) (int, error) {
	g.once.Do(func() { close(g.started) })
	<-g.open
	return g.w.Write(p)
}

// Writes go on during the dump; the restored copy must be one consistent
// moment: every order has its customer, and the ledger's count matches the
// rows, which it would not if the dump read tables at different times.
func TestDumpIsConsistentUnderWrites(t *testing.T) {
	t.Parallel()
	srv := start(t)
	srv.CreateDB(t, "live")
	srv.Exec(t, "live", `
		CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50) NOT NULL, pad VARCHAR(200)) ENGINE=InnoDB;
		CREATE TABLE ledger (id INT PRIMARY KEY, customers INT NOT NULL, orders INT NOT NULL) ENGINE=InnoDB;
		CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL, pad VARCHAR(200),
			FOREIGN KEY (customer_id) REFERENCES customers(id)) ENGINE=InnoDB;
		INSERT INTO ledger VALUES (1, 0, 0);`)
	db := srv.DB(t, "live")
	// Enough rows that the dump streams for a while.
	srv.Exec(t, "live", `
		INSERT INTO customers (name, pad) SELECT CONCAT('c', seq), REPEAT('x', 200) FROM seq_1_to_20000;
		INSERT INTO orders (customer_id, pad) SELECT id, REPEAT('y', 200) FROM customers;
		UPDATE ledger SET customers = 20000, orders = 20000;`)

	// Each transaction adds a customer and an order and counts both.
	write := func() error {
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		defer tx.Rollback()
		res, err := tx.Exec("INSERT INTO customers (name) VALUES ('live')")
		if err != nil {
			return err
		}
		id, _ := res.LastInsertId()
		if _, err := tx.Exec("INSERT INTO orders (customer_id) VALUES (?)", id); err != nil {
			return err
		}
		if _, err := tx.Exec("UPDATE ledger SET customers = customers + 1, orders = orders + 1"); err != nil {
			return err
		}
		return tx.Commit()
	}
	var mu sync.Mutex
	commits := 0
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				writerDone <- nil
				return
			default:
			}
			if err := write(); err != nil {
				writerDone <- err
				return
			}
			mu.Lock()
			commits++
			mu.Unlock()
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return commits }

	s := newSource(t, srv, "live", nil)
	var buf bytes.Buffer
	gate := newGate(&buf)
	meta := &source.Meta{}
	dumped := make(chan error, 1)
	go func() { dumped <- s.Dump(t.Context(), gate, meta) }()
	<-gate.started
	// The dump's snapshot is taken; let the application commit more.
	deadline := time.Now().Add(60 * time.Second)
	for n := count() + 50; count() < n; {
		select {
		case err := <-writerDone:
			t.Fatalf("writer: %v", err)
		default:
			time.Sleep(time.Millisecond)
		}
		if time.Now().After(deadline) {
			t.Fatal("the application could not write during the dump: is the dump locking tables?")
		}
	}
	close(gate.open)
	if err := <-dumped; err != nil {
		t.Fatalf("dump: %v", err)
	}
	close(stop)
	if err := <-writerDone; err != nil {
		t.Fatalf("writer: %v", err)
	}

	// The row counts are one snapshot, too.
	if c, o := meta.RowCounts["customers"], meta.RowCounts["orders"]; c != o || c < 20000 {
		t.Errorf("row counts customers=%d orders=%d, want equal", c, o)
	}
	if err := s.Restore(t.Context(), &buf, "live_copy", meta); err != nil {
		t.Fatalf("restore: %v", err)
	}
	rdb := srv.DB(t, "live_copy")
	customers := queryInt(t, rdb, "SELECT COUNT(*) FROM customers")
	orders := queryInt(t, rdb, "SELECT COUNT(*) FROM orders")
	ledgerC := queryInt(t, rdb, "SELECT customers FROM ledger")
	ledgerO := queryInt(t, rdb, "SELECT orders FROM ledger")
	orphans := queryInt(t, rdb, "SELECT COUNT(*) FROM orders o LEFT JOIN customers c ON c.id = o.customer_id WHERE c.id IS NULL")
	if customers != ledgerC || orders != ledgerO || customers != orders || orphans != 0 {
		t.Errorf("restored copy is not one moment: customers=%d orders=%d ledger=%d/%d orphans=%d", customers, orders, ledgerC, ledgerO, orphans)
	}
	final := queryInt(t, db, "SELECT COUNT(*) FROM customers")
	if customers >= final {
		t.Errorf("the copy has %d customers, the source %d: the writes during the dump should be missing", customers, final)
	}
}

// A dump that stops half-way fails with its cause, never silently.
func TestDumpFailsHalfway(t *testing.T) {
	t.Parallel()
	srv := start(t)
	srv.CreateDB(t, "big")
	srv.Exec(t, "big", `
		CREATE TABLE aaa (id INT PRIMARY KEY, pad VARCHAR(500)) ENGINE=InnoDB;
		CREATE TABLE zzz (id INT PRIMARY KEY) ENGINE=InnoDB;
		INSERT INTO aaa SELECT seq, REPEAT('p', 500) FROM seq_1_to_20000;`)
	srv.CreateUser(t, "dumper", "dumper pw", "SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON big.*")

	t.Run("cancelled", func(t *testing.T) {
		s := newSource(t, srv, "big", nil)
		ctx, cancel := context.WithCancel(t.Context())
		w := writerFunc(func(p []byte) (int, error) {
			cancel()
			return 0, ctx.Err()
		})
		err := s.Dump(ctx, w, &source.Meta{})
		if err == nil || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "mariadb-dump") {
			t.Fatalf("cancelled dump: %v", err)
		}
	})

	t.Run("connection killed", func(t *testing.T) {
		s := newSource(t, srv, "big", func(c *Config) {
			c.URL = strings.Replace(srv.URL("big"), "root@", "dumper@", 1)
			c.Password = configSecret("dumper pw")
		})
		gate := newGate(io.Discard)
		dumped := make(chan error, 1)
		go func() { dumped <- s.Dump(t.Context(), gate, &source.Meta{}) }()
		<-gate.started
		root := srv.DB(t, "")
		var id int64
		for deadline := time.Now().Add(30 * time.Second); ; {
			err := root.QueryRow("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'dumper' AND INFO LIKE 'SELECT /*!40001 SQL_NO_CACHE */%'").Scan(&id)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the dump's query never showed up: %v", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, err := root.Exec(fmt.Sprintf("KILL %d", id)); err != nil {
			t.Fatal(err)
		}
		close(gate.open)
		err := <-dumped
		var xe *source.ExitError
		if !errors.As(err, &xe) || !strings.Contains(err.Error(), "big") {
			t.Fatalf("dump with a killed connection: %v", err)
		}
		if !strings.Contains(xe.Stderr, "Lost connection") && !strings.Contains(xe.Stderr, "interrupted") {
			t.Errorf("error does not name the cause: %v", err)
		}
	})

	t.Run("missing database", func(t *testing.T) {
		err := newSource(t, srv, "nope", nil).Dump(t.Context(), io.Discard, &source.Meta{})
		if err == nil || !strings.Contains(err.Error(), "database nope does not exist") {
			t.Fatalf("dump of a missing database: %v", err)
		}
	})
}

func configSecret(v string) config.Secret { return config.NewSecret(v) }

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// The identity names the server and schema, not the way there.
func TestIdentity(t *testing.T) {
	t.Parallel()
	srv := start(t)
	seedShop(t, srv, "shop")
	srv.CreateDB(t, "other")
	tcp := newSource(t, srv, "shop", nil)
	sock := newSource(t, srv, "shop", func(c *Config) {
		c.URL = "mysql://root@localhost/shop?socket=" + srv.Socket
	})
	a, err := tcp.Inspect(t.Context(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	b, err := sock.Inspect(t.Context(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if a.Identity == "" || a.Identity != b.Identity || !a.IsSource || !b.IsSource {
		t.Fatalf("TCP %+v\nsocket %+v", a, b)
	}
	// The socket-configured source recognises the same server reached by TCP
	// as another account (which gets no password: the target is not the
	// source's own endpoint).
	srv.CreateUser(t, "nopw", "", "SELECT ON shop.*")
	c, err := sock.Inspect(t.Context(), strings.Replace(srv.URL("shop"), "root@", "nopw@", 1))
	if err != nil || c.Identity != a.Identity || !c.IsSource {
		t.Fatalf("socket source inspecting itself by TCP URL: %+v %v", c, err)
	}
	o, err := tcp.Inspect(t.Context(), "other")
	if err != nil || o.Identity == a.Identity || o.IsSource || !o.Exists || !o.Empty {
		t.Fatalf("other schema: %+v %v", o, err)
	}
	_, meta := dump(t, sock)
	if meta.Identity != a.Identity {
		t.Errorf("dump identity %q, inspect %q", meta.Identity, a.Identity)
	}

	// Another server with the same schema name is another identity.
	srv2 := mysqltest.Start(t)
	srv2.CreateDB(t, "shop")
	d, err := tcp.Inspect(t.Context(), srv2.URL("shop"))
	if err == nil {
		t.Fatalf("another server without the password: %+v", d)
	}
	second := newSource(t, srv2, "shop", nil)
	d, err = second.Inspect(t.Context(), "shop")
	if err != nil || d.Identity == a.Identity {
		t.Fatalf("second server: %+v %v", d, err)
	}
}

func TestDoctor(t *testing.T) {
	t.Parallel()
	srv := start(t)
	seedShop(t, srv, "shop")
	srv.CreateUser(t, "writer", "w pw", "SELECT, INSERT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON shop.*", "SELECT ON mysql.proc")
	srv.CreateUser(t, "reader", `r "pw"`, "SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON shop.*", "SELECT ON mysql.proc")
	srv.CreateUser(t, "noproc", "n pw", "SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON shop.*")
	srv.CreateUser(t, "noview", "v pw", "SELECT ON shop.*", "SELECT ON mysql.proc")
	as := func(user, pw string) *Source {
		return newSource(t, srv, "shop", func(c *Config) {
			c.URL = strings.Replace(srv.URL("shop"), "root@", user+"@", 1)
			c.Password = configSecret(pw)
			c.SchemaVersion = "SELECT MAX(id) FROM orders"
		})
	}
	find := func(fs []doctor.Finding, l doctor.Level, text string) bool {
		return slices.ContainsFunc(fs, func(f doctor.Finding) bool { return f.Level == l && strings.Contains(f.Msg, text) })
	}
	problems := func(fs []doctor.Finding) []string {
		var out []string
		for _, f := range fs {
			if f.Level != doctor.OK {
				out = append(out, f.Level.String()+": "+f.Msg)
			}
		}
		return out
	}

	root := newSource(t, srv, "shop", nil).Doctor(t.Context())
	if !find(root, doctor.Warn, "ALL PRIVILEGES on *.*") {
		t.Errorf("root not flagged: %q", problems(root))
	}
	w := as("writer", "w pw").Doctor(t.Context())
	if !find(w, doctor.Warn, "INSERT on shop.*") || find(w, doctor.Warn, "SELECT on") {
		t.Errorf("INSERT user: %q", problems(w))
	}
	r := as("reader", `r "pw"`).Doctor(t.Context())
	if p := problems(r); len(p) != 0 {
		t.Errorf("read-only user has problems: %q", p)
	}
	if !find(r, doctor.OK, `schema version "4"`) || !find(r, doctor.OK, "can read the schema") {
		t.Errorf("read-only user findings: %+v", r)
	}
	n := as("noproc", "n pw").Doctor(t.Context())
	if !find(n, doctor.Warn, "stored procedures") {
		t.Errorf("user who cannot read routines: %q", problems(n))
	}
	v := as("noview", "v pw").Doctor(t.Context())
	if !find(v, doctor.Fail, "cannot read the schema") {
		t.Errorf("user without SHOW VIEW/TRIGGER/EVENT: %q", problems(v))
	}
	bad := as("reader", "wrong").Doctor(t.Context())
	if !find(bad, doctor.Fail, "Access denied") {
		t.Errorf("wrong password: %q", problems(bad))
	}
	srv.Exec(t, "shop", "CREATE TABLE counters (id INT PRIMARY KEY) ENGINE=Aria")
	m := as("reader", `r "pw"`).Doctor(t.Context())
	if !find(m, doctor.Fail, "counters (Aria)") {
		t.Errorf("Aria table not flagged: %q", problems(m))
	}
}

func TestAllDatabases(t *testing.T) {
	t.Parallel()
	srv := start(t)
	seedShop(t, srv, "shop")
	srv.CreateDB(t, "Blog")
	srv.Exec(t, "Blog", "CREATE TABLE posts (id INT PRIMARY KEY); CREATE TABLE sessions (id INT PRIMARY KEY); INSERT INTO posts VALUES (1), (2)")
	s := newSource(t, srv, "all", func(c *Config) { c.ExcludeTables = []string{"Blog.sessions"} })
	parts, err := s.Parts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range parts {
		names = append(names, p.Name)
	}
	if len(parts) != 2 || parts[0].Name != PartName("Blog") || parts[1].Name != "shop" {
		t.Fatalf("parts = %q", names)
	}
	if err := s.Dump(t.Context(), io.Discard, &source.Meta{}); err == nil {
		t.Error("Dump of `all` itself should refuse")
	}
	var buf bytes.Buffer
	meta := &source.Meta{}
	if err := parts[0].Source.Dump(t.Context(), &buf, meta); err != nil {
		t.Fatal(err)
	}
	if meta.RowCounts["posts"] != 2 || bytes.Contains(buf.Bytes(), []byte("`sessions`")) || !strings.HasSuffix(meta.Identity, "/Blog") {
		t.Errorf("part Blog: counts %v identity %s, sessions excluded: %v", meta.RowCounts, meta.Identity, !bytes.Contains(buf.Bytes(), []byte("`sessions`")))
	}
	only := newSource(t, srv, "all", func(c *Config) { c.IncludeTables = []string{"shop.orders", "shop.customers"} })
	parts, err = only.Parts(t.Context())
	if err != nil || len(parts) != 1 || parts[0].Name != "shop" {
		t.Fatalf("parts with include_tables: %v %v", parts, err)
	}
	data, meta := dump(t, parts[0].Source.(*Source))
	if len(meta.RowCounts) != 2 || bytes.Contains(data, []byte("CREATE TABLE `audit`")) {
		t.Errorf("include_tables: counts %v", meta.RowCounts)
	}

	// Every database is a source database; a new name is not.
	if info, err := s.Inspect(t.Context(), "shop"); err != nil || !info.IsSource {
		t.Errorf("inspect shop with database all: %+v %v", info, err)
	}
	if info, err := s.Inspect(t.Context(), "fresh"); err != nil || info.IsSource || info.Exists {
		t.Errorf("inspect fresh with database all: %+v %v", info, err)
	}
}

// The password reaches the tools only through the option file: not argv,
// not the environment, and the file is gone afterwards.
func TestPasswordStaysOutOfArgvAndEnv(t *testing.T) {
	t.Parallel()
	srv := start(t)
	seedShop(t, srv, "shop")
	dir := t.TempDir()
	real, err := exec.LookPath("mariadb-dump")
	if err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(dir, "dump-wrapper")
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$@\" > %s/argv\nenv > %s/env\nfor a in \"$@\"; do case $a in --defaults-extra-file=*) f=${a#*=}; stat -c %%a \"$f\" > %s/mode; cp \"$f\" %s/cnf; echo \"$f\" > %s/path;; esac; done\nexec %s \"$@\"\n",
		dir, dir, dir, dir, dir, real)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	s := newSource(t, srv, "shop", func(c *Config) { c.Tool = wrapper })
	data, _ := dump(t, s)
	if !bytes.Contains(data, []byte("INSERT INTO `orders`")) {
		t.Fatal("the wrapped dump produced no data")
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	argv, env := read("argv"), read("env")
	for _, part := range []string{mysqltest.RootPassword, "pa#ss"} {
		if strings.Contains(argv, part) || strings.Contains(env, part) {
			t.Errorf("password visible to the process list or environment:\nargv:\n%s\nenv:\n%s", argv, env)
		}
	}
	if !strings.HasPrefix(argv, "--defaults-extra-file=") {
		t.Errorf("--defaults-extra-file must come first:\n%s", argv)
	}
	if m := strings.TrimSpace(read("mode")); m != "600" {
		t.Errorf("option file mode %s", m)
	}
	if !strings.Contains(read("cnf"), "password=") {
		t.Errorf("option file: %q", read("cnf"))
	}
	if _, err := os.Stat(filepath.Dir(strings.TrimSpace(read("path")))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("option file directory left behind: %v", err)
	}
	if strings.Contains(env, "MYSQL_PWD") {
		t.Errorf("MYSQL_PWD in the environment")
	}
}

// The manual restore commands work as printed, for an account without a
// password (with one they prompt on the terminal).
func TestManualRestore(t *testing.T) {
	t.Parallel()
	srv := start(t)
	seedShop(t, srv, "shop")
	srv.CreateUser(t, "manual", "", "ALL ON *.*")
	s := newSource(t, srv, "shop", func(c *Config) {
		c.URL = strings.Replace(srv.URL("shop"), "root@", "manual@", 1)
		c.Password = config.Secret{} // none: the commands must not prompt
	})
	data, meta := dump(t, s)
	cmds := s.ManualRestore("by_hand", meta)
	if len(cmds) != 2 || !strings.HasPrefix(cmds[1], "| ") {
		t.Fatalf("commands: %q", cmds)
	}
	home := t.TempDir() // no ~/.my.cnf
	for _, c := range cmds {
		cmd := exec.Command("sh", "-c", strings.TrimPrefix(c, "| "))
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
		if strings.HasPrefix(c, "| ") {
			cmd.Stdin = bytes.NewReader(data)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", c, err, out)
		}
	}
	if n := queryInt(t, srv.DB(t, "by_hand"), "SELECT COUNT(*) FROM orders"); n != 4 {
		t.Fatalf("manual restore: %d orders", n)
	}
	withPw := newSource(t, srv, "shop", nil).ManualRestore("x", meta)
	if !strings.Contains(withPw[0], " -p ") || strings.Contains(strings.Join(withPw, "\n"), "pa#ss") {
		t.Errorf("commands with a password: %q", withPw)
	}
}

// Socket authentication (Debian's root@localhost): no password anywhere, the
// server trusts the OS account at the other end of the socket.
func TestSocketAuthentication(t *testing.T) {
	t.Parallel()
	srv := start(t)
	seedShop(t, srv, "shop")
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if me.Username == "root" {
		srv.Exec(t, "", "ALTER USER root@localhost IDENTIFIED VIA unix_socket")
	} else {
		srv.Exec(t, "", "CREATE USER ?@localhost IDENTIFIED VIA unix_socket; GRANT ALL ON *.* TO ?@localhost", me.Username, me.Username)
	}
	s := newSource(t, srv, "shop", func(c *Config) {
		c.URL = "mysql://" + me.Username + "@localhost/shop?socket=" + srv.Socket
		c.Password = config.Secret{}
	})
	data, meta := dump(t, s)
	if meta.RowCounts["orders"] != 4 {
		t.Errorf("row counts %v", meta.RowCounts)
	}
	if err := s.Restore(t.Context(), bytes.NewReader(data), "shop_copy", meta); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, srv.DB(t, "shop_copy"), "SELECT COUNT(*) FROM orders"); n != 4 {
		t.Errorf("restored %d orders", n)
	}
}
