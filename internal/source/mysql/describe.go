package mysql

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
	what := "MySQL/MariaDB database " + db
	if db == AllDatabases {
		what = "every MySQL/MariaDB database (one artifact each)"
	}
	return what + " on " + where + " (consistent single-transaction dump with routines, triggers and events)"
}
