// Package pgtest starts throwaway PostgreSQL servers for tests.
//
// [Start] runs initdb into t.TempDir() and starts postgres on a free loopback
// port with its own unix socket directory. It never touches a PostgreSQL the
// machine itself runs. The superuser "postgres" is trusted on every
// connection; other roles (made with [Server.CreateRole]) need their password
// over TCP and are trusted on the unix socket.
//
// initdb and postgres refuse to run as root. When the tests run as root the
// server runs as the "postgres" system user instead.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lifeboat-backup/lifeboat/internal/testutil"
)

// Superuser is the name of the server's superuser role.
const Superuser = "postgres"

// Server is a running throwaway PostgreSQL.
type Server struct {
	// BinDir holds initdb, postgres, pg_dump, pg_restore, psql of one major
	// version.
	BinDir string
	// Host and Port are the TCP address (Host is always 127.0.0.1).
	Host string
	Port int
	// SocketDir holds the server's unix socket.
	SocketDir string
	// DataDir is the cluster's data directory.
	DataDir string
	// Major is the server's major version (15 for 15.8).
	Major int

	log string // server log file
}

// binDirs are searched for initdb, newest version first.
func binDirs() []string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest major first: "/usr/lib/postgresql/9.6/bin" sorts after 15 by
	// string, so sort by the number.
	major := func(d string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		return v
	}
	for i := 1; i < len(dirs); i++ {
		for j := i; j > 0 && major(dirs[j]) > major(dirs[j-1]); j-- {
			dirs[j], dirs[j-1] = dirs[j-1], dirs[j]
		}
	}
	return append(dirs, "/usr/local/pgsql/bin")
}

// FindBinDir returns a directory holding initdb, postgres, pg_dump,
// pg_restore and psql of the same version, or calls testutil.Missing.
func FindBinDir(t testing.TB) string {
	t.Helper()
	need := []string{"initdb", "postgres", "pg_dump", "pg_dumpall", "pg_restore", "psql"}
	has := func(dir string) bool {
		for _, n := range need {
			if fi, err := os.Stat(filepath.Join(dir, n)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	for _, d := range binDirs() {
		if has(d) {
			return d
		}
	}
	// initdb on PATH, possibly a symlink into the real bin dir.
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && has(filepath.Dir(real)) {
			return filepath.Dir(real)
		}
		if has(filepath.Dir(p)) {
			return filepath.Dir(p)
		}
	}
	testutil.Missing(t, "pg", "no directory with initdb, postgres, pg_dump, pg_dumpall, pg_restore and psql "+
		"(install postgresql: apt-get install -y postgresql)")
	return ""
}

// Start starts a server and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := FindBinDir(t)
	cred, uid, gid := runAs(t)

	base := t.TempDir()
	// Unix socket paths are limited to about 107 bytes; t.TempDir can be
	// long, so the socket gets its own short directory.
	sock, err := os.MkdirTemp("", "pgs")
	if err != nil {
		t.Fatalf("pgtest: make socket dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(sock) })
	if cred != nil {
		// The postgres user must reach its directories: t.TempDir makes
		// 0700 directories owned by root.
		for d := base; d != filepath.Dir(d) && d != filepath.Clean(os.TempDir()); d = filepath.Dir(d) {
			if fi, err := os.Stat(d); err == nil {
				os.Chmod(d, fi.Mode().Perm()|0o011)
			}
		}
		for _, d := range []string{base, sock} {
			if err := os.Chown(d, uid, gid); err != nil {
				t.Fatalf("pgtest: chown %s: %v", d, err)
			}
		}
	}
	s := &Server{BinDir: bin, Host: "127.0.0.1", SocketDir: sock, DataDir: filepath.Join(base, "data"),
		log: filepath.Join(base, "postgres.log")}

	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", s.DataDir, "-U", Superuser, "-A", "trust",
		"--no-sync", "-E", "UTF8", "--locale=C")
	initdb.Dir = base
	initdb.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "HOME=" + base}
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(s.DataDir, "PG_VERSION"))
	if err != nil {
		t.Fatalf("pgtest: read PG_VERSION: %v", err)
	}
	s.Major, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	hba := strings.Join([]string{
		"local all all trust",
		"host all " + Superuser + " 127.0.0.1/32 trust",
		"host all all 127.0.0.1/32 scram-sha-256",
		"host all " + Superuser + " ::1/128 trust",
		"host all all ::1/128 scram-sha-256",
		"",
	}, "\n")
	if err := os.WriteFile(filepath.Join(s.DataDir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		t.Fatalf("pgtest: write pg_hba.conf: %v", err)
	}
	if cred != nil {
		os.Chown(filepath.Join(s.DataDir, "pg_hba.conf"), uid, gid)
	}

	var lastErr error
	for range 5 {
		if lastErr = s.start(t, cred, uid, gid); lastErr == nil {
			return s
		}
	}
	t.Fatalf("pgtest: start postgres: %v", lastErr)
	return nil
}

// start runs postgres on a fresh free port and waits until it accepts
// connections. A port taken in between is reported as an error to retry.
func (s *Server) start(t testing.TB, cred *syscall.Credential, uid, gid int) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	s.Port = port
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	if cred != nil {
		os.Chown(s.log, uid, gid)
	}
	cmd := exec.Command(filepath.Join(s.BinDir, "postgres"), "-D", s.DataDir,
		"-p", strconv.Itoa(port),
		"-k", s.SocketDir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "shared_buffers=16MB",
		"-c", "max_connections=40",
		"-c", "max_wal_senders=0",
		"-c", "wal_level=minimal",
		"-c", "logging_collector=off",
		"-c", "log_min_messages=warning",
	)
	cmd.Dir = filepath.Dir(s.DataDir)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "TZ=UTC"}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("postgres exited (%v): %s", err, s.Log())
		case <-time.After(50 * time.Millisecond):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.URL("postgres"))
		if err == nil {
			conn.Close(ctx)
			cancel()
			break
		}
		cancel()
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			t.Fatalf("pgtest: postgres did not accept connections within 60s: %v\n%s", err, s.Log())
		}
	}
	t.Cleanup(func() {
		// Fast shutdown; the data is thrown away anyway.
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	return nil
}

// Log returns the server's log so far (for failure messages).
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// runAs returns the credential to run the server with: nil unless the tests
// run as root, then the postgres system user's.
func runAs(t testing.TB) (*syscall.Credential, int, int) {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil, os.Getuid(), os.Getgid()
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		testutil.Missing(t, "pg", "tests run as root and there is no postgres system user to run the server as")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Bin returns the path of one of the server's programs (pg_dump, psql, ...).
func (s *Server) Bin(name string) string { return filepath.Join(s.BinDir, name) }

// URL returns a TCP URL for db as the superuser.
func (s *Server) URL(db string) string { return s.UserURL(Superuser, "", db) }

// UserURL returns a TCP URL for db as user, with password when not empty.
func (s *Server) UserURL(user, password, db string) string {
	u := &url.URL{Scheme: "postgres", Host: net.JoinHostPort(s.Host, strconv.Itoa(s.Port)), Path: "/" + db,
		RawQuery: "sslmode=disable"}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	return u.String()
}

// SocketURL returns a URL for db as the superuser over the unix socket.
func (s *Server) SocketURL(db string) string {
	q := url.Values{"host": {s.SocketDir}, "port": {strconv.Itoa(s.Port)}}
	return "postgres://" + Superuser + "@/" + url.PathEscape(db) + "?" + q.Encode()
}

// DSN returns a keyword/value connection string for db as the superuser
// over TCP.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname='%s' sslmode=disable", s.Host, s.Port, Superuser,
		strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(db))
}

// Connect opens a superuser connection to db, closed when the test ends.
func (s *Server) Connect(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), s.URL(db))
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", db, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Exec runs sql (one or several statements when args is empty) in db as the
// superuser.
func (s *Server) Exec(t testing.TB, db, sql string, args ...any) {
	t.Helper()
	if err := s.TryExec(db, sql, args...); err != nil {
		t.Fatalf("pgtest: exec in %s: %v\n%s", db, err, sql)
	}
}

// TryExec is Exec returning the error.
func (s *Server) TryExec(db, sql string, args ...any) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// QueryRow runs a one-row query in db as the superuser and scans into dest.
func (s *Server) QueryRow(t testing.TB, db, sql string, dest ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", db, err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, sql).Scan(dest...); err != nil {
		t.Fatalf("pgtest: query in %s: %v\n%s", db, err, sql)
	}
}

// CreateDB creates an empty database.
func (s *Server) CreateDB(t testing.TB, name string) {
	t.Helper()
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if s.Major >= 15 {
		// Copying files is faster than WAL-logging template1 with fsync off.
		sql += " STRATEGY FILE_COPY"
	}
	s.Exec(t, "postgres", sql)
}

// CreateRole creates a login role with a password; attrs are extra role
// attributes ("SUPERUSER", "CREATEDB").
func (s *Server) CreateRole(t testing.TB, name, password string, attrs ...string) {
	t.Helper()
	sql := "CREATE ROLE " + pgx.Identifier{name}.Sanitize() + " LOGIN PASSWORD " + quoteLiteral(password)
	if len(attrs) > 0 {
		sql += " " + strings.Join(attrs, " ")
	}
	s.Exec(t, "postgres", sql)
}

// SchemaDump returns `pg_dump --schema-only` of db, with comments, blank
// lines and psql's \restrict lines (a random key per dump) removed so that
// dumps of different databases compare equal.
func (s *Server) SchemaDump(t testing.TB, db string) string {
	t.Helper()
	cmd := exec.Command(s.Bin("pg_dump"), "--schema-only", "--no-password", "--dbname="+s.DSN(db))
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("pgtest: pg_dump --schema-only %s: %v: %s", db, err, stderr.String())
		}
		t.Fatalf("pgtest: pg_dump --schema-only %s: %v", db, err)
	}
	var keep []string
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" || strings.HasPrefix(line, "--") || strings.HasPrefix(line, `\restrict`) ||
			strings.HasPrefix(line, `\unrestrict`) {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n")
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Strings runs a query returning one column in db as the superuser and
// returns its values as text (NULL as "<nil>").
func (s *Server) Strings(t testing.TB, db, sql string, args ...any) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", db, err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		t.Fatalf("pgtest: query in %s: %v\n%s", db, err, sql)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var v *string
		if err := r.Scan(&v); err != nil {
			return "", err
		}
		if v == nil {
			return "<nil>", nil
		}
		return *v, nil
	})
	if err != nil {
		t.Fatalf("pgtest: query in %s: %v\n%s", db, err, sql)
	}
	return out
}
