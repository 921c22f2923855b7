package drill

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// checkDrillName refuses to work on databases that are not drill databases:
// an inspector never drops or writes anything else.
func checkDrillName(db string) error {
	if !strings.HasPrefix(db, "lifeboat_drill_") {
		return fmt.Errorf("refusing to touch database %q: not a drill database (lifeboat_drill_...)", db)
	}
	return nil
}

// Postgres drills PostgreSQL backups into a new database on a drill server.
type Postgres struct {
	// Server is the drill server, postgres://USER@HOST:PORT[/MAINTENANCE_DB][?sslmode=...],
	// without a password (the source's drill.target).
	Server string
	// Password for Server (drill.password, revealed); empty means ~/.pgpass
	// or PGPASSFILE.
	Password string
}

var _ Inspector = Postgres{}

func (p Postgres) server() (*url.URL, error) {
	u, err := url.Parse(p.Server)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("drill target %q is not a postgres://USER@HOST:PORT url", redact(p.Server))
	}
	if p.Password != "" {
		u.User = url.UserPassword(u.User.Username(), p.Password)
	}
	return u, nil
}

// dbURL is the server URL with its database replaced.
func (p Postgres) dbURL(db string) (string, error) {
	u, err := p.server()
	if err != nil {
		return "", err
	}
	u.Path = "/" + db
	q := u.Query()
	q.Del("dbname")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func (p Postgres) maintenance(ctx context.Context) (*pgx.Conn, error) {
	u, err := p.server()
	if err != nil {
		return nil, err
	}
	if strings.Trim(u.Path, "/") == "" && u.Query().Get("dbname") == "" {
		u.Path = "/postgres"
	}
	return pgConnect(ctx, u.String())
}

func pgConnect(ctx context.Context, target string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(target)
	if err != nil {
		return nil, fmt.Errorf("drill target %s: %w", redact(target), errors.Unwrap(err))
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redact(target), err)
	}
	return c, nil
}

// NewTarget returns the URL of database name on the drill server, after
// checking that no such database exists. The URL carries the password (the
// restorer hands it to the tools as PGPASSWORD); reports show it redacted.
func (p Postgres) NewTarget(ctx context.Context, name string) (string, error) {
	if err := checkDrillName(name); err != nil {
		return "", err
	}
	c, err := p.maintenance(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("look for database %s: %w", name, err)
	}
	if exists {
		return "", fmt.Errorf("database %s: %w", name, ErrNotNew)
	}
	return p.dbURL(name)
}

func (p Postgres) RowCounts(ctx context.Context, target string, tables []string) (map[string]int64, error) {
	c, err := pgConnect(ctx, target)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	rows, err := c.Query(ctx, `SELECT n.nspname, c.relname FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	present := map[string]pgx.Identifier{}
	for rows.Next() {
		var schema, name string
		if err := rows.Scan(&schema, &name); err != nil {
			rows.Close()
			return nil, err
		}
		present[schema+"."+name] = pgx.Identifier{schema, name}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	out := map[string]int64{}
	for _, t := range tables {
		id, ok := present[t]
		if !ok {
			continue
		}
		var n int64
		if err := c.QueryRow(ctx, "SELECT count(*) FROM "+id.Sanitize()).Scan(&n); err != nil {
			return nil, fmt.Errorf("count rows of %s: %w", t, err)
		}
		out[t] = n
	}
	return out, nil
}

// pgFirstValue runs q with the simple protocol, which returns every value as
// PostgreSQL prints it (as the source reads schema_version), and returns the
// first column of the first row.
func pgFirstValue(ctx context.Context, target, q string) (string, bool, error) {
	c, err := pgConnect(ctx, target)
	if err != nil {
		return "", false, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	rows, err := c.Query(ctx, q, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return "", false, err
	}
	defer rows.Close()
	v, ok := "", false
	if rows.Next() {
		if raw := rows.RawValues(); len(raw) > 0 && raw[0] != nil {
			v, ok = string(raw[0]), true
		}
	}
	rows.Close()
	return v, ok, rows.Err()
}

func (p Postgres) SchemaVersion(ctx context.Context, target, query string) (string, error) {
	v, _, err := pgFirstValue(ctx, target, query)
	return v, err
}

func (p Postgres) Query(ctx context.Context, target, q string) (bool, error) {
	v, ok, err := pgFirstValue(ctx, target, q)
	return ok && truthy(v), err
}

// Drop drops the drill database, disconnecting anyone still in it.
func (p Postgres) Drop(ctx context.Context, target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("drill target %s: %w", redact(target), err)
	}
	db := strings.Trim(u.Path, "/")
	if err := checkDrillName(db); err != nil {
		return err
	}
	c, err := p.maintenance(ctx)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	id := pgx.Identifier{db}.Sanitize()
	_, err = c.Exec(ctx, "DROP DATABASE IF EXISTS "+id+" WITH (FORCE)")
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42601" { // syntax error: PostgreSQL before 13
		_, err = c.Exec(ctx, "DROP DATABASE IF EXISTS "+id)
	}
	if err != nil {
		return fmt.Errorf("drop drill database %s: %w", db, err)
	}
	return nil
}

// MySQL drills MySQL and MariaDB backups into a new database on a drill
// server.
type MySQL struct {
	// Server is the drill server, mysql://USER@HOST:PORT or
	// mysql://USER@localhost?socket=PATH, without a password.
	Server string
	// Password for Server (drill.password, revealed).
	Password string
}

var _ Inspector = MySQL{}

func (m MySQL) server() (*url.URL, error) {
	u, err := url.Parse(m.Server)
	if err != nil || (u.Scheme != "mysql" && u.Scheme != "mariadb") {
		return nil, fmt.Errorf("drill target %q is not a mysql://USER@HOST:PORT url", redact(m.Server))
	}
	return u, nil
}

func (m MySQL) open(db string) (*sql.DB, error) {
	u, err := m.server()
	if err != nil {
		return nil, err
	}
	c := mysql.NewConfig()
	c.User, c.Passwd, c.DBName = u.User.Username(), m.Password, db
	if s := u.Query().Get("socket"); s != "" {
		c.Net, c.Addr = "unix", s
	} else {
		port := u.Port()
		if port == "" {
			port = "3306"
		}
		c.Net, c.Addr = "tcp", net.JoinHostPort(u.Hostname(), port)
	}
	conn, err := mysql.NewConnector(c)
	if err != nil {
		return nil, err
	}
	d := sql.OpenDB(conn)
	d.SetMaxOpenConns(1)
	return d, nil
}

func mysqlIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// NewTarget returns mysql://USER@HOST:PORT/NAME after checking that no
// such database exists. The URL has no password: the restorer uses the
// source's when the drill server is the source's server and account, and
// the client's option files (~/.my.cnf) otherwise.
func (m MySQL) NewTarget(ctx context.Context, name string) (string, error) {
	if err := checkDrillName(name); err != nil {
		return "", err
	}
	db, err := m.open("")
	if err != nil {
		return "", err
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", name).Scan(&n); err != nil {
		return "", fmt.Errorf("connect to drill server %s: %w", redact(m.Server), err)
	}
	if n > 0 {
		return "", fmt.Errorf("database %s: %w", name, ErrNotNew)
	}
	u, _ := m.server()
	u.Path = "/" + name
	return u.String(), nil
}

func (m MySQL) targetDB(target string) (*sql.DB, string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, "", fmt.Errorf("drill target %s: %w", redact(target), err)
	}
	name := strings.Trim(u.Path, "/")
	if err := checkDrillName(name); err != nil {
		return nil, "", err
	}
	db, err := m.open(name)
	return db, name, err
}

func (m MySQL) RowCounts(ctx context.Context, target string, tables []string) (map[string]int64, error) {
	db, name, err := m.targetDB(target)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE'", name)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	present := map[string]bool{}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return nil, err
		}
		present[t] = true
	}
	rows.Close()
	out := map[string]int64{}
	for _, t := range tables {
		if !present[t] {
			continue
		}
		var n int64
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+mysqlIdent(name)+"."+mysqlIdent(t)).Scan(&n); err != nil {
			return nil, fmt.Errorf("count rows of %s: %w", t, err)
		}
		out[t] = n
	}
	return out, nil
}

func (m MySQL) SchemaVersion(ctx context.Context, target, query string) (string, error) {
	db, _, err := m.targetDB(target)
	if err != nil {
		return "", err
	}
	defer db.Close()
	var v sql.NullString
	if err := db.QueryRowContext(ctx, query).Scan(&v); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	return v.String, nil
}

func (m MySQL) Query(ctx context.Context, target, q string) (bool, error) {
	db, _, err := m.targetDB(target)
	if err != nil {
		return false, err
	}
	defer db.Close()
	return queryTrue(ctx, db, q)
}

func (m MySQL) Drop(ctx context.Context, target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("drill target %s: %w", redact(target), err)
	}
	name := strings.Trim(u.Path, "/")
	if err := checkDrillName(name); err != nil {
		return err
	}
	db, err := m.open("")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+mysqlIdent(name)); err != nil {
		return fmt.Errorf("drop drill database %s: %w", name, err)
	}
	return nil
}

// redact removes a password from a URL-shaped target for reports and
// messages; other strings are returned as they are.
func redact(target string) string {
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" || u.Host == "" && u.Opaque != "" {
		if strings.Contains(target, "@") && strings.Contains(target, "://") {
			return "(unparsable url)"
		}
		return target
	}
	if _, has := u.User.Password(); has {
		u.User = url.User(u.User.Username())
	}
	q := u.Query()
	if q.Has("password") {
		q.Del("password")
		u.RawQuery = q.Encode()
	}
	return u.String()
}
