package mysql

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/lifeboat-backup/lifeboat/internal/config"
)

// AllDatabases is the database value that backs up every database of the
// server except the system schemas, one part each.
const AllDatabases = "all"

// Config is the `type: mysql` source configuration (MySQL and MariaDB).
//
// The server is named either by URL or by the separate keys Host, Port,
// Socket, User and Database; the separate keys may complete a URL that leaves
// them out, but not repeat what it says. The password never appears in the
// file: Password is a secret reference.
type Config struct {
	// URL is mysql://USER@HOST:PORT/DATABASE, optionally with
	// ?socket=/run/mysqld/mysqld.sock. It must not contain a password.
	URL      string        `yaml:"url"`
	Host     string        `yaml:"host"`
	Port     int           `yaml:"port"`
	User     string        `yaml:"user"`
	Password config.Secret `yaml:"password"`
	// Socket is the server's unix socket. As with the mysql client, host
	// localhost (or no host) means the socket: without Socket the usual
	// locations (/run/mysqld/mysqld.sock, ...) are tried. Use host 127.0.0.1
	// for TCP to the local server.
	Socket string `yaml:"socket"`
	// Database is a database name, or `all` for every database except the
	// system schemas (mysql, sys, information_schema, performance_schema).
	Database string `yaml:"database"`

	// IncludeTables, when set, dumps only these tables and views (exact
	// names). With database `all` write them as DATABASE.TABLE; databases
	// with none listed are then left out.
	IncludeTables []string `yaml:"include_tables"`
	// ExcludeTables leaves these tables (or views) out. With database `all`
	// write them as DATABASE.TABLE.
	ExcludeTables []string `yaml:"exclude_tables"`

	// SchemaVersion is SQL returning one value, run in the database and
	// recorded in the manifest, for example
	// `SELECT max(version) FROM schema_migrations`.
	SchemaVersion string `yaml:"schema_version"`

	// Tool is the dump program; empty means mariadb-dump if installed, else
	// mysqldump. Client is the program restores run; empty means mariadb if
	// installed, else mysql.
	Tool   string `yaml:"tool"`
	Client string `yaml:"client"`

	// AllowNonTransactional lets the dump go ahead when tables use an engine
	// without transactions (MyISAM, Aria, MEMORY...). Their rows are then not
	// part of the dump's consistent snapshot.
	AllowNonTransactional bool `yaml:"allow_non_transactional"`
}

// Validate implements config.Spec.
func (c *Config) Validate() error {
	var errs []error
	add := func(field, hint, format string, args ...any) {
		errs = append(errs, config.Errorf(field, hint, format, args...))
	}
	u, err := c.parseURL()
	if err != nil {
		var fe *config.FieldError
		if errors.As(err, &fe) {
			errs = append(errs, fe)
		} else {
			add("url", "write it as mysql://USER@HOST:PORT/DATABASE", "%v", err)
		}
	}
	if u != nil {
		if c.Host != "" && u.host != "" {
			add("host", "name the server either in url or with host", "host is also given in url")
		}
		if c.Port != 0 && u.port != 0 {
			add("port", "give the port either in url or with port", "port is also given in url")
		}
		if c.User != "" && u.user != "" {
			add("user", "name the user either in url or with user", "user is also given in url")
		}
		if c.Database != "" && u.database != "" {
			add("database", "name the database either in url or with database", "database is also given in url")
		}
		if c.Socket != "" && u.socket != "" {
			add("socket", "give the socket either in url or with socket", "socket is also given in url")
		}
	}
	r := c.resolved(u)
	urlBad := err != nil // then what it would have given is unknown: no follow-up errors
	switch {
	case urlBad:
	case c.URL == "" && c.Host == "" && c.Socket == "" && c.Database == "":
		add("", "add `url: mysql://USER@HOST:PORT/DATABASE`, or host, user and database",
			"no server given")
	case r.Database == "":
		add("database", "name the database (or `all` for every database of the server)", "database is required")
	case r.Database != AllDatabases:
		if msg := checkName(r.Database); msg != "" {
			add("database", "", "database %s", msg)
		}
	}
	if r.User == "" && !urlBad && !(c.URL == "" && c.Host == "" && c.Socket == "" && c.Database == "") {
		add("user", "name the MySQL account the backup connects as, for example `user: backup`", "user is required")
	}
	if c.Port < 0 || c.Port > 65535 {
		add("port", "use a TCP port number such as 3306", "port %d is out of range", c.Port)
	}
	if c.Host != "" && strings.ContainsAny(c.Host, "/ ") {
		add("host", "give a host name or IP address; a socket path goes in `socket:`", "host %q is not a host name", c.Host)
	}
	all := r.Database == AllDatabases
	if len(c.IncludeTables) > 0 && len(c.ExcludeTables) > 0 {
		add("exclude_tables", "list either the tables to dump or the ones to leave out", "include_tables and exclude_tables are both given")
	}
	for _, l := range []struct {
		key   string
		names []string
	}{{"include_tables", c.IncludeTables}, {"exclude_tables", c.ExcludeTables}} {
		for i, n := range l.names {
			field := fmt.Sprintf("%s[%d]", l.key, i)
			db, table, qualified := strings.Cut(n, ".")
			switch {
			case strings.TrimSpace(n) == "":
				add(field, "remove the empty entry", "empty table name")
			case all && (!qualified || db == "" || table == ""):
				add(field, "with `database: all` write DATABASE.TABLE", "%q does not name its database", n)
			case all:
				if msg := checkName(table); msg != "" {
					add(field, "", "table %s", msg)
				}
			default:
				if msg := checkName(n); msg != "" {
					add(field, "", "table %s", msg)
				}
			}
		}
	}
	if c.SchemaVersion != "" && strings.TrimSpace(c.SchemaVersion) == "" {
		add("schema_version", "give a query such as `SELECT max(version) FROM schema_migrations`", "schema_version is blank")
	}
	return errors.Join(errs...)
}

// checkName returns why name cannot be a MySQL database or table name, or "".
func checkName(name string) string {
	switch {
	case len(name) > 64:
		return fmt.Sprintf("name %q is longer than 64 characters", name)
	case strings.HasSuffix(name, " "):
		return fmt.Sprintf("name %q ends with a space", name)
	case strings.ContainsRune(name, 0):
		return "name contains a NUL byte"
	}
	return ""
}

// urlParts is what a mysql:// URL says.
type urlParts struct {
	host, user, database, socket string
	port                         int
}

// parseURL parses c.URL; nil, nil when there is none.
func (c *Config) parseURL() (*urlParts, error) {
	if c.URL == "" {
		return nil, nil
	}
	return parseServerURL(c.URL, "url")
}

// parseServerURL parses mysql://USER@HOST:PORT/DATABASE?socket=PATH. field
// names the key or argument it came from, for error messages.
func parseServerURL(raw, field string) (*urlParts, error) {
	const form = "write it as mysql://USER@HOST:PORT/DATABASE"
	u, err := url.Parse(raw)
	if err != nil {
		return nil, config.Errorf(field, form, "%s is not a valid URL", field)
	}
	if u.Scheme != "mysql" && u.Scheme != "mariadb" {
		return nil, config.Errorf(field, form, "%s must start with mysql://", field)
	}
	if _, has := u.User.Password(); has || u.Query().Has("password") {
		return nil, config.Errorf(field, "remove the password from the url and add `password: ${env:MYSQL_PASSWORD}` (or ${file:PATH})",
			"%s contains a password: secrets are not written in the config file", field)
	}
	p := &urlParts{host: u.Hostname(), user: u.User.Username(), socket: u.Query().Get("socket")}
	if ps := u.Port(); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil || n <= 0 || n > 65535 {
			return nil, config.Errorf(field, form, "%s has a bad port %q", field, ps)
		}
		p.port = n
	}
	p.database = strings.TrimPrefix(u.Path, "/")
	if strings.Contains(p.database, "/") {
		return nil, config.Errorf(field, form, "%s names more than a database in its path", field)
	}
	for k := range u.Query() {
		if k != "socket" {
			return nil, config.Errorf(field, "the only URL parameter is socket=PATH; other settings have their own keys",
				"%s has an unknown parameter %q", field, k)
		}
	}
	return p, nil
}

// resolved merges the URL into the separate keys.
func (c *Config) resolved(u *urlParts) Config {
	r := *c
	if u != nil {
		r.Host = cmp.Or(r.Host, u.host)
		r.User = cmp.Or(r.User, u.user)
		r.Database = cmp.Or(r.Database, u.database)
		r.Socket = cmp.Or(r.Socket, u.socket)
		if r.Port == 0 {
			r.Port = u.port
		}
	}
	r.URL = ""
	return r
}
