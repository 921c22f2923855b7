package postgres

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/lifeboat-backup/lifeboat/internal/config"
)

// AllDatabases is the database value that backs up every database of the
// server, one part each, plus the roles and tablespaces.
const AllDatabases = "all"

// Config is the `type: postgres` source configuration.
//
// The server is named either by URL or by Host, Port, User and Database (the
// separate keys may complete a URL that leaves them out). The password never
// appears in the file: Password is a secret reference, and without one the
// libpq tools read ~/.pgpass or the file named by PGPASSFILE.
type Config struct {
	// URL is a libpq connection URI without a password, for example
	// postgres://backup@db.internal:5432/shop?sslmode=require.
	URL      string        `yaml:"url"`
	Host     string        `yaml:"host"`
	Port     int           `yaml:"port"`
	User     string        `yaml:"user"`
	Password config.Secret `yaml:"password"`
	// Database is a database name, or `all` for every database of the server
	// that accepts connections and is not a template.
	Database string `yaml:"database"`
	SSLMode  string `yaml:"sslmode"`

	// Format is `custom` (pg_dump's archive format, the default; restored by
	// pg_restore, in parallel) or `plain` (SQL, restored by psql).
	Format string `yaml:"format"`

	// Patterns as pg_dump takes them for --table, --exclude-table, --schema
	// and --exclude-schema (https://www.postgresql.org/docs/current/app-psql.html#APP-PSQL-PATTERNS).
	IncludeTables  []string `yaml:"include_tables"`
	ExcludeTables  []string `yaml:"exclude_tables"`
	IncludeSchemas []string `yaml:"include_schemas"`
	ExcludeSchemas []string `yaml:"exclude_schemas"`

	// SchemaVersion is SQL returning one value, recorded in the manifest,
	// for example `SELECT max(version) FROM schema_migrations`.
	SchemaVersion string `yaml:"schema_version"`

	// BinDir is a directory holding pg_dump, pg_dumpall, pg_restore and psql;
	// empty means PATH (and, with Debian's pg_wrapper, the newest installed
	// version).
	BinDir string `yaml:"bin_dir"`

	// Jobs is the number of parallel pg_restore jobs; 0 means the number of
	// CPU cores.
	Jobs int `yaml:"jobs"`
}

var sslModes = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}

// Validate implements config.Spec.
func (c *Config) Validate() error {
	var errs []error
	add := func(field, hint, format string, args ...any) {
		errs = append(errs, config.Errorf(field, hint, format, args...))
	}
	var u *url.URL
	if c.URL != "" {
		var err error
		u, err = url.Parse(c.URL)
		switch {
		case err != nil:
			add("url", "write it as postgres://USER@HOST:PORT/DATABASE", "url is not a valid URL")
		case u.Scheme != "postgres" && u.Scheme != "postgresql":
			add("url", "write it as postgres://USER@HOST:PORT/DATABASE", "url must start with postgres://")
			u = nil
		}
		if u != nil {
			if _, has := u.User.Password(); has {
				add("url", "remove the password from the url and add `password: ${env:PGPASSWORD}` (or ${file:PATH})",
					"url contains a password: secrets are not written in the config file")
			}
			if u.Query().Has("password") {
				add("url", "remove password= from the url and add `password: ${env:PGPASSWORD}` (or ${file:PATH})",
					"url contains a password: secrets are not written in the config file")
			}
			if (c.Host != "" || c.Port != 0) && (u.Host != "" || u.Query().Has("host") || u.Query().Has("port")) {
				add("host", "name the server either in url or with host/port", "host and port are also given in url")
			}
			if c.User != "" && (u.User.Username() != "" || u.Query().Has("user")) {
				add("user", "name the user either in url or with user", "user is also given in url")
			}
			if c.Database != "" && (strings.Trim(u.Path, "/") != "" || u.Query().Has("dbname")) {
				add("database", "name the database either in url or with database", "database is also given in url")
			}
			if c.SSLMode != "" && u.Query().Has("sslmode") {
				add("sslmode", "set sslmode either in url or with sslmode", "sslmode is also given in url")
			}
		}
	}
	if c.URL == "" && c.Host == "" && c.Database == "" {
		add("", "add `url: postgres://USER@HOST:PORT/DATABASE`, or host, user and database",
			"no server given")
	} else if c.database(u) == "" {
		add("database", "name the database (or `all` for every database of the server)", "database is required")
	}
	if c.Port < 0 || c.Port > 65535 {
		add("port", "use a TCP port number such as 5432", "port %d is out of range", c.Port)
	}
	if c.SSLMode != "" && !slices.Contains(sslModes, c.SSLMode) {
		add("sslmode", "use one of: "+strings.Join(sslModes, ", "), "unknown sslmode %q", c.SSLMode)
	}
	if c.Format != "" && c.Format != "custom" && c.Format != "plain" {
		add("format", "use custom (pg_restore, parallel) or plain (SQL for psql)", "unknown format %q", c.Format)
	}
	if c.Jobs < 0 {
		add("jobs", "use a positive number, or leave it out for one per CPU core", "jobs must not be negative")
	}
	for _, l := range []struct {
		key  string
		pats []string
	}{{"include_tables", c.IncludeTables}, {"exclude_tables", c.ExcludeTables},
		{"include_schemas", c.IncludeSchemas}, {"exclude_schemas", c.ExcludeSchemas}} {
		for i, p := range l.pats {
			if strings.TrimSpace(p) == "" {
				add(fmt.Sprintf("%s[%d]", l.key, i), "remove the empty entry", "empty pattern")
			} else if strings.Count(p, `"`)%2 != 0 {
				add(fmt.Sprintf("%s[%d]", l.key, i), `close the double quote; "..." quotes a name exactly`, "unbalanced quote in %q", p)
			}
		}
	}
	if c.SchemaVersion != "" && strings.TrimSpace(c.SchemaVersion) == "" {
		add("schema_version", "give a query such as `SELECT max(version) FROM schema_migrations`", "schema_version is blank")
	}
	return errors.Join(errs...)
}

// database returns the configured database, from the key or the URL.
func (c *Config) database(u *url.URL) string {
	if c.Database != "" {
		return c.Database
	}
	if u == nil {
		return ""
	}
	if d := strings.Trim(u.Path, "/"); d != "" {
		return d
	}
	return u.Query().Get("dbname")
}

// format returns the dump format with its default.
func (c *Config) format() string {
	if c.Format == "" {
		return "custom"
	}
	return c.Format
}
