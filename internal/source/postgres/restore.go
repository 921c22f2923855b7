package postgres

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/lifeboat-backup/lifeboat/internal/source"
)

// customMagic starts every pg_dump custom-format archive.
const customMagic = "PGDMP"

// targetParams reads a restore target: a postgres:// URL naming a database,
// or a bare database name on the source's own server. A URL may carry a
// password (it stays in memory and reaches tools as PGPASSWORD); without one
// the source's password is used when the target is the same server and user,
// else ~/.pgpass or PGPASSFILE.
func (s *Source) targetParams(target string) (params, error) {
	if !strings.Contains(target, "://") {
		if target == "" || strings.ContainsAny(target, "= /") {
			return params{}, fmt.Errorf("restore target %q: give a database name or a postgres://USER@HOST:PORT/DATABASE url", target)
		}
		return s.p.withDB(target), nil
	}
	p, err := paramsFromURL(target)
	if err != nil {
		return p, fmt.Errorf("restore target: %w", err)
	}
	if p.db() == "" {
		return p, errors.New("restore target url names no database: end it with /DATABASE")
	}
	if p.password == "" && p.kv["user"] == s.p.kv["user"] && p.where() == s.p.where() {
		p.password = s.p.password
	}
	return p, nil
}

// TargetURL returns a restore target naming database on server (a
// postgres:// URL such as a drill target, with or without a database), with
// password set when not empty. The result holds the password: hand it to
// Inspect, Restore or Snapshot (which keep it out of argv and messages), never
// print or log it.
func TargetURL(server, database, password string) (string, error) {
	u, err := url.Parse(server)
	if err != nil {
		return "", fmt.Errorf("parse server url: %w", redactURLError(err))
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "", errors.New("server url must start with postgres://")
	}
	u.Path, u.RawPath = "/"+database, ""
	if password != "" {
		u.User = url.UserPassword(u.User.Username(), password)
	}
	return u.String(), nil
}

// Inspect implements source.Restorer. A database that does not exist has no
// identity yet: there is nothing to overwrite.
func (s *Source) Inspect(ctx context.Context, target string) (source.TargetInfo, error) {
	p, err := s.targetParams(target)
	if err != nil {
		return source.TargetInfo{}, err
	}
	db := p.db()
	exists, si, err := s.lookupDB(ctx, p)
	if err != nil {
		return source.TargetInfo{}, err
	}
	where := fmt.Sprintf("database %q on %s (PostgreSQL %s, system %s)", db, p.where(), si.shortVersion(), si.sysID)
	if !exists {
		return source.TargetInfo{Exists: false, Empty: true, Describe: where + ": does not exist, will be created"}, nil
	}
	tconn, err := p.connect(ctx, s.d.Env)
	if err != nil {
		return source.TargetInfo{}, err
	}
	defer tconn.Close(ctx)
	tsi, err := readServerInfo(ctx, tconn)
	if err != nil {
		return source.TargetInfo{}, err
	}
	var objects, tables, size int64
	err = tconn.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema')
		+ (SELECT count(*) FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
			WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema')
		+ (SELECT count(*) FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
			WHERE t.typtype IN ('e', 'd', 'r', 'm') AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema')
		+ (SELECT count(*) FROM pg_catalog.pg_namespace n
			WHERE n.nspname !~ '^pg_' AND n.nspname NOT IN ('information_schema', 'public'))
		+ (SELECT count(*) FROM pg_catalog.pg_extension WHERE extname <> 'plpgsql'),
		(SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind IN ('r', 'p') AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'),
		pg_catalog.pg_database_size(current_database())`).Scan(&objects, &tables, &size)
	if err != nil {
		return source.TargetInfo{}, fmt.Errorf("inspect database %q on %s: %w", db, p.where(), err)
	}
	info := source.TargetInfo{Exists: true, Empty: objects == 0, Identity: tsi.identity()}
	if info.Empty {
		info.Describe = where + ": exists and is empty"
	} else {
		info.Describe = fmt.Sprintf("%s: exists with %d tables (%d objects, %s)", where, tables, objects, humanBytes(size))
	}
	return info, nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Restore implements source.Restorer. It creates the target database when
// missing, then replays the dump: a custom archive with pg_restore
// --no-owner --exit-on-error (in parallel when jobs > 1, which needs the
// archive in a seekable temporary file), plain SQL with psql in one
// transaction, stopping at the first error. The globals part is replayed
// with psql into the maintenance database; roles that already exist are
// not an error.
func (s *Source) Restore(ctx context.Context, r io.Reader, target string, meta *source.Meta) error {
	p, err := s.targetParams(target)
	if err != nil {
		return err
	}
	env := p.env(s.d.Env)
	if s.globals || meta != nil && (meta.Part == GlobalsPart || meta.Extra["pg_format"] == GlobalsPart) {
		return s.restoreGlobals(ctx, r, p, env)
	}
	// A non-empty target got here only through the restore guard with
	// --force, after a safety backup: overwriting means the database becomes
	// exactly the backup, so it is dropped and created anew (objects the
	// backup lacks must not survive, and pg_restore would clash with the
	// ones it has).
	if info, err := s.Inspect(ctx, target); err == nil && info.Exists && !info.Empty {
		if err := s.dropDB(ctx, p); err != nil {
			return err
		}
	}
	if err := s.prepareDB(ctx, p, meta); err != nil {
		return err
	}
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(len(customMagic))
	if err != nil && len(head) == 0 {
		if err == io.EOF {
			return errors.New("restore: the dump is empty")
		}
		return fmt.Errorf("restore: read dump: %w", err)
	}
	if string(head) == customMagic {
		return s.pgRestore(ctx, br, p, env, meta)
	}
	psql, err := findTool("psql", s.binDir)
	if err != nil {
		return err
	}
	// One transaction, committed only when the dump ended with pg_dump's
	// trailer: a truncated dump leaves nothing behind. (psql's own
	// --single-transaction would commit whatever arrived before EOF.)
	sql := &trailerReader{r: br, marker: "-- PostgreSQL database dump complete", commit: "COMMIT;\n"}
	args := []string{"-X", "--quiet", "--no-password", "-v", "ON_ERROR_STOP=1", "--dbname=" + p.conninfo()}
	stdin := io.MultiReader(strings.NewReader("BEGIN;\n"), sql)
	if err := source.Run(ctx, source.Command{Path: psql, Args: args, BaseEnv: env, Stdin: stdin}); err != nil {
		err = fmt.Errorf("restore SQL into database %q on %s: %w", p.db(), p.where(), err)
		if missingRole(err) {
			err = roleHint(err)
		}
		return err
	}
	if !sql.complete {
		return fmt.Errorf("restore SQL into database %q on %s: the dump is incomplete (it lacks pg_dump's closing line); nothing was committed",
			p.db(), p.where())
	}
	return nil
}

// trailerReader passes a plain dump through and, when the marker pg_dump
// writes at its very end is there, inserts commit right after the marker's
// line. It holds back the last few KiB until EOF to know. The commit goes
// before pg_dump's closing `\unrestrict` line: psql (15.14+) runs nothing
// after it when reading a script from stdin, so a COMMIT appended at the
// very end would silently never run.
type trailerReader struct {
	r        io.Reader
	marker   string
	commit   string
	held     []byte
	out      []byte
	eof      bool
	complete bool
}

const trailerHold = 8 << 10

func (t *trailerReader) Read(b []byte) (int, error) {
	for len(t.out) == 0 {
		if t.eof {
			return 0, io.EOF
		}
		chunk := make([]byte, 64<<10)
		n, err := t.r.Read(chunk)
		t.held = append(t.held, chunk[:n]...)
		if err == io.EOF {
			t.eof = true
			t.out = t.finish()
			break
		}
		if err != nil {
			return 0, err
		}
		if len(t.held) > trailerHold {
			k := len(t.held) - trailerHold
			t.out = append(t.out[:0], t.held[:k]...)
			t.held = append(t.held[:0], t.held[k:]...)
		}
	}
	n := copy(b, t.out)
	t.out = t.out[n:]
	return n, nil
}

// finish returns the held-back tail with commit inserted after the marker
// line, or unchanged when the marker is missing (a truncated dump).
func (t *trailerReader) finish() []byte {
	i := bytes.LastIndex(t.held, []byte(t.marker))
	if i < 0 {
		return t.held
	}
	t.complete = true
	end := i + len(t.marker)
	if nl := bytes.IndexByte(t.held[end:], '\n'); nl >= 0 {
		end += nl + 1
	} else {
		end = len(t.held)
	}
	out := append([]byte(nil), t.held[:end]...)
	out = append(out, "\n"+t.commit...)
	return append(out, t.held[end:]...)
}

// lookupDB reports whether p's database exists, and what server it is on. It
// asks a maintenance database or, when none lets the user in, connects to
// the database itself.
func (s *Source) lookupDB(ctx context.Context, p params) (bool, serverInfo, error) {
	conn, err := p.connectMaintenance(ctx, s.d.Env)
	if err != nil {
		direct, derr := p.connect(ctx, s.d.Env)
		if derr != nil {
			return false, serverInfo{}, err
		}
		defer direct.Close(context.WithoutCancel(ctx))
		si, err := readServerInfo(ctx, direct)
		return err == nil, si, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	si, err := readServerInfo(ctx, conn)
	if err != nil {
		return false, si, err
	}
	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1)", p.db()).Scan(&exists)
	if err != nil {
		return false, si, fmt.Errorf("look for database %q on %s: %w", p.db(), p.where(), err)
	}
	return exists, si, nil
}

// prepareDB creates the target database unless it exists, from template0 so
// that nothing of template1 gets in the way of the dump's objects.
func (s *Source) prepareDB(ctx context.Context, p params, meta *source.Meta) error {
	exists, _, err := s.lookupDB(ctx, p)
	if err != nil {
		return err
	}
	if !exists {
		conn, err := p.connectMaintenance(ctx, s.d.Env)
		if err != nil {
			return err
		}
		err = createDB(ctx, conn, p, meta)
		conn.Close(context.WithoutCancel(ctx))
		if err != nil {
			return err
		}
	}
	if meta != nil && meta.Extra["creates_public_schema"] == "true" {
		// The dump creates the public schema itself; an empty one of the
		// target would make that fail. A public schema with objects in it
		// stays, and the restore reports the clash.
		tconn, err := p.connect(ctx, s.d.Env)
		if err != nil {
			return err
		}
		defer tconn.Close(context.WithoutCancel(ctx))
		var empty bool
		err = tconn.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
			WHERE d.refclassid = 'pg_catalog.pg_namespace'::regclass AND d.refobjid = 'public'::regnamespace)`).Scan(&empty)
		if err == nil && empty {
			if _, err := tconn.Exec(ctx, "DROP SCHEMA public"); err != nil {
				return fmt.Errorf("prepare database %q on %s: drop the empty public schema the dump recreates: %w", p.db(), p.where(), err)
			}
		}
	}
	return nil
}

// dropDB drops the target database, ending its sessions (PostgreSQL 13+).
func (s *Source) dropDB(ctx context.Context, p params) error {
	conn, err := p.connectMaintenance(ctx, s.d.Env)
	if err != nil {
		return fmt.Errorf("connect to replace database %q on %s: %w", p.db(), p.where(), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{p.db()}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %q on %s to replace it: %w", p.db(), p.where(), err)
	}
	return nil
}

func createDB(ctx context.Context, conn *pgx.Conn, p params, meta *source.Meta) error {
	create := "CREATE DATABASE " + pgx.Identifier{p.db()}.Sanitize() + " TEMPLATE template0"
	if meta != nil && meta.Extra["encoding"] != "" {
		// The source's encoding, when the server's locale allows it.
		if _, err := conn.Exec(ctx, create+" ENCODING "+quoteLiteral(meta.Extra["encoding"])); err == nil {
			return nil
		}
	}
	if _, err := conn.Exec(ctx, create); err != nil {
		return fmt.Errorf("create database %q on %s: %w", p.db(), p.where(), err)
	}
	return nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// jobs is the pg_restore parallelism.
func (s *Source) jobs() int {
	if s.cfg.Jobs > 0 {
		return s.cfg.Jobs
	}
	return runtime.NumCPU()
}

func (s *Source) pgRestore(ctx context.Context, r io.Reader, p params, env []string, meta *source.Meta) error {
	tool, err := findTool("pg_restore", s.binDir)
	if err != nil {
		return err
	}
	args := []string{"--no-password", "--no-owner", "--exit-on-error", "--dbname=" + p.conninfo()}
	cmd := source.Command{Path: tool, BaseEnv: env}
	if jobs := s.jobs(); jobs > 1 {
		// Parallel pg_restore seeks in the archive: stage it on disk, 0600,
		// removed whatever happens.
		f, err := os.CreateTemp("", "lifeboat-pgrestore-*.dump")
		if err != nil {
			return fmt.Errorf("restore: make temporary file for parallel pg_restore: %w (set jobs: 1 to stream instead)", err)
		}
		defer os.Remove(f.Name())
		defer f.Close()
		if _, err := io.Copy(f, ctxReader{ctx, r}); err != nil {
			return fmt.Errorf("restore: stage dump in %s: %w", f.Name(), err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("restore: stage dump in %s: %w", f.Name(), err)
		}
		cmd.Args = append(args, "--jobs="+strconv.Itoa(jobs), f.Name())
	} else {
		cmd.Args, cmd.Stdin = args, r
	}
	if err := source.Run(ctx, cmd); err != nil {
		err = fmt.Errorf("restore into database %q on %s: %w", p.db(), p.where(), err)
		return s.explainRestoreFailure(ctx, err, tool, env, meta)
	}
	return nil
}

// explainRestoreFailure adds the likely reason when roles are missing or
// pg_restore is older than the pg_dump that wrote the archive.
func (s *Source) explainRestoreFailure(ctx context.Context, err error, tool string, env []string, meta *source.Meta) error {
	if missingRole(err) {
		return roleHint(err)
	}
	if meta == nil || meta.ToolVersions["pg_dump"] == "" {
		return err
	}
	dumpVer, dumpMajor, ok := parseVersion(meta.ToolVersions["pg_dump"])
	if !ok {
		return err
	}
	ver, major, verr := toolVersion(context.WithoutCancel(ctx), tool, env)
	if verr != nil {
		return err
	}
	if vr := checkVersion(major, VersionError{Tool: "pg_restore", ToolVersion: ver, Path: tool,
		Of: "the pg_dump " + dumpVer + " that wrote the dump", Verb: "read", NeedMajor: dumpMajor}); vr != nil {
		return fmt.Errorf("%w (%v)", err, vr)
	}
	return err
}

func missingRole(err error) bool {
	var xe *source.ExitError
	return errors.As(err, &xe) && strings.Contains(xe.Stderr, "role \"") && strings.Contains(xe.Stderr, "does not exist")
}

func roleHint(err error) error {
	return fmt.Errorf("%w (the dump grants privileges to roles this server lacks: restore the globals part "+
		"of a `database: all` backup first, or create the roles)", err)
}

// restoreGlobals replays pg_dumpall --globals-only output. psql goes on past
// errors here, because the roles of a server usually partly exist (the
// superuser itself at least); errors other than "already exists" are
// reported afterwards.
func (s *Source) restoreGlobals(ctx context.Context, r io.Reader, p params, env []string) error {
	psql, err := findTool("psql", s.binDir)
	if err != nil {
		return err
	}
	conn, err := p.connectMaintenance(ctx, s.d.Env)
	if err != nil {
		return err
	}
	db := conn.Config().Database
	conn.Close(ctx)
	stderr := &boundedBuffer{max: 1 << 20}
	args := []string{"-X", "--quiet", "--no-password", "--dbname=" + p.withDB(db).conninfo()}
	sql := &trailerReader{r: r, marker: "-- PostgreSQL database cluster dump complete"}
	if err := source.Run(ctx, source.Command{Path: psql, Args: args, BaseEnv: env, Stdin: sql, Stderr: stderr}); err != nil {
		return fmt.Errorf("restore roles and tablespaces on %s: %w", p.where(), err)
	}
	if !sql.complete {
		return fmt.Errorf("restore roles and tablespaces on %s: the dump is incomplete (it lacks pg_dumpall's closing line); "+
			"the statements before the cut were applied", p.where())
	}
	var bad []string
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(line, "ERROR:") && !strings.Contains(line, "already exists") {
			bad = append(bad, strings.TrimSpace(line))
		}
	}
	if len(bad) > 0 {
		n := len(bad)
		if len(bad) > 5 {
			bad = bad[:5]
		}
		return fmt.Errorf("restore roles and tablespaces on %s: %d statements failed: %s", p.where(), n, strings.Join(bad, "; "))
	}
	return nil
}

type boundedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *boundedBuffer) String() string { return b.buf.String() }

// ctxReader stops a copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Snapshot implements source.Restorer: a source dumping the whole target
// database in the custom format, for the safety backup taken before the
// target is overwritten.
func (s *Source) Snapshot(target string) (source.Source, error) {
	p, err := s.targetParams(target)
	if err != nil {
		return nil, err
	}
	cfg := Config{Database: p.db(), Format: "custom", BinDir: s.cfg.BinDir, Jobs: s.cfg.Jobs}
	return &Source{cfg: cfg, d: s.d, p: p, binDir: s.binDir}, nil
}

// ManualRestore implements source.Restorer: standard commands that restore
// the plaintext dump arriving on stdin into target. Passwords are left to
// the tools' prompt, PGPASSWORD or ~/.pgpass.
func (s *Source) ManualRestore(target string, meta *source.Meta) []string {
	p, err := s.targetParams(target)
	if err != nil {
		p = s.p.withDB(target)
	}
	var prefix string
	if m := p.kv["sslmode"]; m != "" {
		prefix = "PGSSLMODE=" + source.ShellQuote(m) + " "
	}
	var conn []string
	for _, f := range []struct{ flag, key string }{{"-h", "host"}, {"-p", "port"}, {"-U", "user"}} {
		if v := p.kv[f.key]; v != "" {
			conn = append(conn, f.flag, source.ShellQuote(v))
		}
	}
	cmd := func(tool string, args ...string) string {
		return prefix + tool + " " + strings.Join(append(append([]string(nil), conn...), args...), " ")
	}
	format := s.cfg.format()
	if meta != nil && meta.Extra["pg_format"] != "" {
		format = meta.Extra["pg_format"]
	}
	if s.globals || format == GlobalsPart || meta != nil && meta.Part == GlobalsPart {
		return []string{cmd("psql", "-X", "-d", "postgres")}
	}
	db := source.ShellQuote(p.db())
	createdb := cmd("createdb", "-T", "template0", db)
	if format == "plain" {
		return []string{createdb, cmd("psql", "-X", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-d", db)}
	}
	return []string{createdb, cmd("pg_restore", "--no-owner", "--exit-on-error", "-d", db)}
}
