package postgres

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgpassfile"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/source"
)

// params are libpq connection parameters. The password is kept apart from the
// keywords so that it can never end up in a tool's argv: tools get it as
// PGPASSWORD in their environment.
type params struct {
	kv       map[string]string // host, port, user, dbname, sslmode, ...
	password string
}

// paramsFromURL parses a postgres:// URL into keywords. A password in the
// URL is returned apart.
func paramsFromURL(raw string) (params, error) {
	p := params{kv: map[string]string{}}
	u, err := url.Parse(raw)
	if err != nil {
		return p, fmt.Errorf("parse url: %w", redactURLError(err))
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return p, fmt.Errorf("url must start with postgres://")
	}
	if u.User != nil {
		if n := u.User.Username(); n != "" {
			p.kv["user"] = n
		}
		p.password, _ = u.User.Password()
	}
	if u.Host != "" {
		var hosts, ports []string
		for _, hp := range strings.Split(u.Host, ",") {
			h, port := splitHostPort(hp)
			hosts, ports = append(hosts, h), append(ports, port)
		}
		p.kv["host"] = strings.Join(hosts, ",")
		if strings.Join(ports, "") != "" {
			p.kv["port"] = strings.Join(ports, ",")
		}
	}
	if d := strings.Trim(u.Path, "/"); d != "" {
		p.kv["dbname"] = d
	}
	for k, vs := range u.Query() {
		if len(vs) == 0 {
			continue
		}
		if k == "password" {
			p.password = vs[len(vs)-1]
			continue
		}
		p.kv[k] = vs[len(vs)-1]
	}
	return p, nil
}

// redactURLError drops the URL text from a url.Error: it may hold a password.
func redactURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

func splitHostPort(hp string) (string, string) {
	if h, p, err := net.SplitHostPort(hp); err == nil {
		return h, p
	}
	return strings.Trim(hp, "[]"), ""
}

// paramsFromConfig returns the connection parameters of c with its password.
func paramsFromConfig(c *Config) (params, error) {
	p := params{kv: map[string]string{}}
	if c.URL != "" {
		var err error
		if p, err = paramsFromURL(c.URL); err != nil {
			return p, err
		}
		if p.password != "" {
			return p, fmt.Errorf("url contains a password: use `password: ${env:...}` instead")
		}
	}
	set := func(k, v string) {
		if v != "" {
			p.kv[k] = v
		}
	}
	set("host", c.Host)
	if c.Port != 0 {
		set("port", strconv.Itoa(c.Port))
	}
	set("user", c.User)
	set("dbname", c.Database)
	set("sslmode", c.SSLMode)
	p.password = c.Password.Reveal()
	return p, nil
}

// withDB returns a copy of p naming database db.
func (p params) withDB(db string) params {
	kv := maps.Clone(p.kv)
	kv["dbname"] = db
	return params{kv: kv, password: p.password}
}

func (p params) db() string { return p.kv["dbname"] }

// conninfo is the keyword/value connection string for libpq tools' --dbname.
// It never holds the password.
func (p params) conninfo() string {
	kv := maps.Clone(p.kv)
	if _, ok := kv["connect_timeout"]; !ok {
		kv["connect_timeout"] = "30"
	}
	if _, ok := kv["application_name"]; !ok {
		kv["application_name"] = "lifeboat"
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + "='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(kv[k]) + "'")
	}
	return b.String()
}

// where names the server in words for messages: "db.internal:5432".
func (p params) where() string {
	h := p.kv["host"]
	if h == "" {
		h = "localhost"
	} else if strings.HasPrefix(h, "/") {
		h = "socket " + h
	}
	port := p.kv["port"]
	if port == "" {
		port = "5432"
	}
	return h + ":" + port
}

// env is what tools get beyond argv: the minimal environment, the password,
// and the client files libpq reads (PGPASSFILE, certificates).
func (p params) env(env config.Env) []string {
	base := source.MinimalEnv(env)
	for _, k := range []string{"PGPASSFILE", "PGSERVICEFILE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PGSSLCRL"} {
		if v, ok := env(k); ok {
			base = append(base, k+"="+v)
		}
	}
	if p.password != "" {
		base = append(base, "PGPASSWORD="+p.password)
	}
	return base
}

// connect opens a pgx connection with the same parameters the tools get. pgx
// would read PG* variables and ~/.pgpass from the process on its own; the
// password is set here instead, from the config or from the passfile that
// libpq would read, so both paths agree.
func (p params) connect(ctx context.Context, env config.Env) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(p.conninfo())
	if err != nil {
		return nil, fmt.Errorf("parse connection settings: %w", err)
	}
	cfg.Password = p.password
	if cfg.Password == "" {
		cfg.Password = passfilePassword(env, cfg.Config)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 30 * time.Second
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database %q on %s: %w", p.db(), p.where(), err)
	}
	return conn, nil
}

// connectMaintenance connects to the server through the first maintenance
// database that lets it in, to work on the server rather than one database
// (listing databases, creating one).
func (p params) connectMaintenance(ctx context.Context, env config.Env) (*pgx.Conn, error) {
	var first error
	for _, db := range []string{"postgres", "template1"} {
		conn, err := p.withDB(db).connect(ctx, env)
		if err == nil {
			return conn, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

func passfilePassword(env config.Env, c pgconn.Config) string {
	path, ok := env("PGPASSFILE")
	if !ok {
		home, ok := env("HOME")
		if !ok {
			return ""
		}
		path = filepath.Join(home, ".pgpass")
	}
	pf, err := pgpassfile.ReadPassfile(path)
	if err != nil {
		return ""
	}
	host := c.Host
	if network, _ := pgconn.NetworkAddress(c.Host, c.Port); network == "unix" {
		host = "localhost"
	}
	return pf.FindPassword(host, strconv.Itoa(int(c.Port)), c.Database, c.User)
}

// serverInfo is what every operation learns about a server and database.
type serverInfo struct {
	sysID      string // pg_control_system().system_identifier
	database   string
	version    string // "15.8 (Debian 15.8-1)"
	versionNum int    // 150008
	superuser  bool
}

// identity is the database's identity in source.Meta terms: the same for
// every way of reaching it (TCP, socket, another hostname).
func (si serverInfo) identity() string { return "postgres:" + si.sysID + "/" + si.database }

// major returns the server's major version as parseVersion does (1500 for 15).
func (si serverInfo) major() int { return majorFromNum(si.versionNum) }

// shortVersion drops the packager's suffix: "15.8".
func (si serverInfo) shortVersion() string {
	v, _, _ := strings.Cut(si.version, " ")
	return v
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func readServerInfo(ctx context.Context, q querier) (serverInfo, error) {
	var si serverInfo
	err := q.QueryRow(ctx, `SELECT (SELECT system_identifier FROM pg_catalog.pg_control_system())::text,
		current_database(), current_setting('server_version'), current_setting('server_version_num')::int,
		(SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)`).
		Scan(&si.sysID, &si.database, &si.version, &si.versionNum, &si.superuser)
	if err != nil {
		return si, fmt.Errorf("read server version and identity: %w", err)
	}
	return si, nil
}
