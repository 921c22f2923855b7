package postgres

import (
	"net/url"
	"strings"
)

// Describe says what the source is, for `lifeboat explain`. It never shows
// a password.
func (c *Config) Describe(dir string) string {
	db, where := c.Database, c.Host
	if u, err := url.Parse(c.URL); err == nil && c.URL != "" {
		if db == "" {
			db = strings.TrimPrefix(u.Path, "/")
		}
		if where == "" {
			where = u.Host
		}
	}
	if where == "" {
		where = "the local server"
	}
	what := "PostgreSQL database " + db
	if db == AllDatabases {
		what = "every PostgreSQL database (one artifact each, plus roles and tablespaces)"
	}
	format := "pg_dump custom format, restorable in parallel"
	if c.Format == "plain" {
		format = "pg_dump plain SQL"
	}
	return what + " on " + where + " (" + format + "; row counts from the same snapshot)"
}
