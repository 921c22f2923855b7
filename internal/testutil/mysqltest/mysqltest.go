// Package mysqltest starts throwaway MariaDB servers for tests.
//
// [Start] initialises a fresh data directory with mariadb-install-db in
// t.TempDir() and runs mariadbd on a free 127.0.0.1 port with its own socket,
// pid file and data directory, so it never touches a server already running
// on the machine. The server is stopped when the test ends. root has a
// password full of characters that need escaping in option files, so tests
// exercise the password path for real.
//
// When the binaries are missing the test is skipped locally and fails in CI
// (see [testutil.Missing]); install them with
//
//	apt-get install -y mariadb-server mariadb-client
package mysqltest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/lifeboat-backup/lifeboat/internal/testutil"
)

// RootPassword is root's password on every test server. It contains quotes,
// a backslash, a hash and a space on purpose.
const RootPassword = `r00t "pa#ss' w\rd`

// Server is a running test server.
type Server struct {
	Host    string // 127.0.0.1
	Port    int
	Socket  string // unix socket path
	DataDir string
	Version string // @@version

	root *sql.DB
}

// Start starts a server for the duration of the test.
func Start(t testing.TB) *Server {
	t.Helper()
	// Distributions put mariadbd in sbin, often not on a normal user's PATH.
	sbinDirs := []string{"/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin"}
	daemon := testutil.LookPath(t, "mysql", "mariadbd", sbinDirs...)
	install := testutil.LookPath(t, "mysql", "mariadb-install-db", append([]string{filepath.Dir(daemon)}, sbinDirs...)...)

	dir := t.TempDir()
	// A unix socket path is limited to about 100 bytes; test temp dirs can be
	// longer, so the socket gets a short directory of its own.
	sockDir, err := os.MkdirTemp("", "mysqlt")
	if err != nil {
		t.Fatalf("mysqltest: create socket dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })

	s := &Server{Host: "127.0.0.1", Socket: filepath.Join(sockDir, "s"), DataDir: filepath.Join(dir, "data")}
	common := []string{
		"--no-defaults", // first: never read the machine's my.cnf
		"--datadir=" + s.DataDir,
		"--innodb-log-file-size=16M",
		"--innodb-data-file-path=ibdata1:12M:autoextend",
		"--innodb-buffer-pool-size=64M",
		// A private tmpdir: mariadbd deletes every #sql* file in its tmpdir
		// at startup, which breaks servers started in parallel on /tmp.
		"--tmpdir=" + dir,
	}
	if os.Geteuid() == 0 {
		common = append(common, "--user=root")
	}
	installArgs := append(append([]string{}, common...),
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve")
	if out, err := exec.Command(install, installArgs...).CombinedOutput(); err != nil {
		t.Fatalf("mysqltest: mariadb-install-db: %v\n%s", err, out)
	}

	var lastErr error
	for range 3 { // a free port can be taken between probing and binding
		s.Port = freePort(t)
		lastErr = s.run(t, daemon, dir, common)
		if lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("mysqltest: start mariadbd: %v", lastErr)
	}
	s.setRootPassword(t)
	return s
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mysqltest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// run starts mariadbd and waits until it accepts connections.
func (s *Server) run(t testing.TB, daemon, dir string, common []string) error {
	logFile := filepath.Join(dir, "error.log")
	args := append(append([]string{}, common...),
		"--port="+strconv.Itoa(s.Port),
		"--bind-address=127.0.0.1",
		"--socket="+s.Socket,
		"--pid-file="+filepath.Join(dir, "mariadbd.pid"),
		"--log-error="+logFile,
		"--skip-name-resolve",
		"--skip-log-bin",
		"--performance-schema=OFF",
		"--loose-feedback=OFF",
		"--innodb-flush-log-at-trx-commit=0",
		"--innodb-doublewrite=0",
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_general_ci",
	)
	cmd := exec.Command(daemon, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	db, err := s.open("root", "", "", true)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = db.PingContext(ctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case werr := <-exited:
			db.Close()
			return fmt.Errorf("mariadbd exited (%v):\n%s", werr, tail(logFile))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			db.Close()
			stop(cmd, exited)
			return fmt.Errorf("mariadbd did not accept connections within 60s (%v):\n%s", err, tail(logFile))
		}
	}
	s.root = db
	t.Cleanup(func() {
		s.root.Close()
		stop(cmd, exited)
	})
	return nil
}

// stop asks mariadbd to shut down and kills it if it does not.
func stop(cmd *exec.Cmd, exited <-chan error) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// setRootPassword gives the loopback root accounts RootPassword and reconnects
// with it. (root@<hostname> is ignored under --skip-name-resolve.)
func (s *Server) setRootPassword(t testing.TB) {
	t.Helper()
	rows, err := s.root.Query("SELECT Host FROM mysql.user WHERE User = 'root' AND Host IN ('localhost', '127.0.0.1', '::1')")
	if err != nil {
		t.Fatalf("mysqltest: list root accounts: %v", err)
	}
	var hosts []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			t.Fatalf("mysqltest: %v", err)
		}
		hosts = append(hosts, h)
	}
	rows.Close()
	for _, h := range hosts {
		if _, err := s.root.Exec("ALTER USER 'root'@? IDENTIFIED BY ?", h, RootPassword); err != nil {
			t.Fatalf("mysqltest: set root password: %v", err)
		}
	}
	if err := s.root.QueryRow("SELECT @@version").Scan(&s.Version); err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	s.root.Close()
	if s.root, err = s.open("root", RootPassword, "", true); err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	if err := s.root.Ping(); err != nil {
		t.Fatalf("mysqltest: reconnect as root with password: %v", err)
	}
}

// Config returns a go-sql-driver config for user on database db (may be
// empty), over TCP or over the socket.
func (s *Server) Config(user, password, db string, socket bool) *mysql.Config {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.DBName = user, password, db
	if socket {
		c.Net, c.Addr = "unix", s.Socket
	} else {
		c.Net, c.Addr = "tcp", net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	}
	c.MultiStatements = true
	c.InterpolateParams = true
	c.ParseTime = true
	c.Timeout = 5 * time.Second
	return c
}

func (s *Server) open(user, password, db string, socket bool) (*sql.DB, error) {
	conn, err := mysql.NewConnector(s.Config(user, password, db, socket))
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(conn), nil
}

// DSN returns a go-sql-driver DSN connecting as root over TCP to db (may be
// empty). It allows several statements per Exec and parses DATETIMEs.
func (s *Server) DSN(db string) string {
	return s.Config("root", RootPassword, db, false).FormatDSN()
}

// UserDSN is DSN for another user.
func (s *Server) UserDSN(user, password, db string) string {
	return s.Config(user, password, db, false).FormatDSN()
}

// URL returns mysql://root@127.0.0.1:PORT/db, the form lifeboat's config takes
// (without the password, which goes in its own key).
func (s *Server) URL(db string) string {
	return fmt.Sprintf("mysql://root@%s/%s", net.JoinHostPort(s.Host, strconv.Itoa(s.Port)), db)
}

// DB opens a root connection pool on db, closed when the test ends.
func (s *Server) DB(t testing.TB, db string) *sql.DB {
	t.Helper()
	h, err := s.open("root", RootPassword, db, false)
	if err != nil {
		t.Fatalf("mysqltest: open %s: %v", db, err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// CreateDB creates database name with utf8mb4.
func (s *Server) CreateDB(t testing.TB, name string) {
	t.Helper()
	s.Exec(t, "", "CREATE DATABASE "+Quote(name)+" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
}

// Exec runs query (several statements allowed) as root in database db (may be
// empty) and fails the test on error.
func (s *Server) Exec(t testing.TB, db, query string, args ...any) {
	t.Helper()
	if db != "" {
		query = "USE " + Quote(db) + "; " + query
		if len(args) > 0 {
			t.Fatalf("mysqltest: Exec with db and args: put the USE in the query instead")
		}
	}
	if _, err := s.root.Exec(query, args...); err != nil {
		t.Fatalf("mysqltest: exec %q: %v", short(query), err)
	}
}

// CreateUser creates user@'%' with password and runs each grant, written as
// the part between GRANT and TO: "SELECT, SHOW VIEW ON shop.*".
func (s *Server) CreateUser(t testing.TB, user, password string, grants ...string) {
	t.Helper()
	if _, err := s.root.Exec("CREATE USER ?@'%' IDENTIFIED BY ?", user, password); err != nil {
		t.Fatalf("mysqltest: create user %s: %v", user, err)
	}
	for _, g := range grants {
		if _, err := s.root.Exec("GRANT "+g+" TO ?@'%'", user); err != nil {
			t.Fatalf("mysqltest: grant %s to %s: %v", g, user, err)
		}
	}
}

// Quote quotes a MySQL identifier.
func Quote(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}

func short(q string) string {
	if len(q) > 200 {
		return q[:200] + "…"
	}
	return q
}
