package mysql

import (
	"fmt"
	"strconv"
)

// Describe says what the source is, for `lifeboat explain`, reading the
// config the way a backup does (parseURL, resolved). It never shows a
// password.
func (c *Config) Describe(dir string) string {
	u, err := c.parseURL()
	if err != nil {
		return "MySQL/MariaDB source (" + err.Error() + ")"
	}
	r := c.resolved(u)
	where := "the local server's socket"
	switch {
	case r.Socket != "":
		where = "socket " + r.Socket
	case r.Host != "" && r.Host != "localhost":
		port := 3306
		if r.Port != 0 {
			port = r.Port
		}
		where = r.Host + ":" + strconv.Itoa(port)
	}
	what := "MySQL/MariaDB database " + r.Database
	if r.Database == AllDatabases {
		what = "every MySQL/MariaDB database (one artifact each)"
	}
	return fmt.Sprintf("%s on %s (consistent single-transaction dump with routines, triggers and events)", what, where)
}
