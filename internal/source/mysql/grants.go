package mysql

import (
	"slices"
	"strings"
)

// grant is one line of SHOW GRANTS: GRANT <privs> ON [<kind>] <db>.<table> TO ...
type grant struct {
	privs []string // upper case, column lists removed: "SELECT", "ALL PRIVILEGES"
	kind  string   // "" for tables and databases, else PROCEDURE, FUNCTION, PACKAGE, PACKAGE BODY
	db    string   // "*" for global; a database name or LIKE pattern
	table string   // "*" for every table
}

// parseGrant parses one SHOW GRANTS line. Lines that grant roles or proxy
// rights ("GRANT `role` TO ...") report false.
func parseGrant(line string) (grant, bool) {
	line = strings.TrimSpace(line)
	if len(line) < 6 || !strings.EqualFold(line[:6], "GRANT ") {
		return grant{}, false
	}
	rest := line[6:]
	on := topLevelIndex(rest, " ON ")
	if on < 0 {
		return grant{}, false
	}
	var g grant
	for _, p := range splitTopLevel(rest[:on], ',') {
		if i := strings.IndexByte(p, '('); i >= 0 {
			p = p[:i] // SELECT (a, b): a column grant is still the privilege
		}
		p = strings.Join(strings.Fields(strings.ToUpper(p)), " ")
		if p != "" {
			g.privs = append(g.privs, p)
		}
	}
	obj := rest[on+4:]
	if to := topLevelIndex(obj, " TO "); to >= 0 {
		obj = obj[:to]
	}
	obj = strings.TrimSpace(obj)
	for _, k := range []string{"PACKAGE BODY ", "PROCEDURE ", "FUNCTION ", "PACKAGE ", "TABLE "} {
		if len(obj) > len(k) && strings.EqualFold(obj[:len(k)], k) {
			g.kind = strings.TrimSpace(k)
			obj = strings.TrimSpace(obj[len(k):])
			break
		}
	}
	if g.kind == "TABLE" {
		g.kind = ""
	}
	parts := splitTopLevel(obj, '.')
	switch len(parts) {
	case 1: // "*" means the current database at GRANT time; shown resolved, so rare
		g.db, g.table = "*", unquote(parts[0])
	case 2:
		g.db, g.table = unquote(parts[0]), unquote(parts[1])
	default:
		return grant{}, false
	}
	if len(g.privs) == 0 || g.privs[0] == "PROXY" {
		return grant{}, false
	}
	return g, true
}

// topLevelIndex finds sep outside backticks, quotes and parentheses,
// case-insensitively.
func topLevelIndex(s, sep string) int {
	depth := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '`' || c == '\'' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
		case depth == 0 && len(s)-i >= len(sep) && strings.EqualFold(s[i:i+len(sep)], sep):
			return i
		}
	}
	return -1
}

// splitTopLevel splits s at sep outside backticks, quotes and parentheses.
func splitTopLevel(s string, sep byte) []string {
	var out []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '`' || c == '\'' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == sep && depth == 0:
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}

// unquote removes backticks (a doubled backtick inside stands for one).
func unquote(id string) string {
	id = strings.TrimSpace(id)
	if len(id) >= 2 && id[0] == '`' && id[len(id)-1] == '`' {
		return strings.ReplaceAll(id[1:len(id)-1], "``", "`")
	}
	return id
}

// likeMatch matches name against a database pattern of a GRANT, where % and
// _ are wildcards and a backslash escapes them.
func likeMatch(pattern, name string) bool {
	if pattern == "" {
		return name == ""
	}
	switch c := pattern[0]; {
	case c == '%':
		for i := 0; i <= len(name); i++ {
			if likeMatch(pattern[1:], name[i:]) {
				return true
			}
		}
		return false
	case c == '_':
		return name != "" && likeMatch(pattern[1:], name[1:])
	case c == '\\' && len(pattern) > 1:
		return name != "" && name[0] == pattern[1] && likeMatch(pattern[2:], name[1:])
	default:
		return name != "" && name[0] == c && likeMatch(pattern[1:], name[1:])
	}
}

// writePrivileges are the privileges a backup account should not have: they
// change data or schema, or give control of the server.
func writePrivileges() []string {
	return []string{"ALL", "ALL PRIVILEGES", "INSERT", "UPDATE", "DELETE", "DELETE HISTORY", "DROP",
		"CREATE", "ALTER", "INDEX", "CREATE VIEW", "CREATE ROUTINE", "ALTER ROUTINE", "SUPER",
		"FILE", "CREATE USER", "SHUTDOWN", "GRANT OPTION"}
}

// covers reports whether g applies to database db (a name or, for
// `database: all`, "" meaning any non-system database).
func (g grant) covers(db string) bool {
	switch {
	case g.db == "*":
		return true
	case db == "":
		return !isSystemSchema(g.db) || strings.EqualFold(g.db, "mysql")
	case strings.EqualFold(g.db, "mysql"):
		return true // write access to the grant tables is control of the server
	}
	return likeMatch(g.db, db)
}

// writes returns the write privileges among grants that apply to db, as
// "INSERT on shop.*".
func writes(grants []grant, db string) []string {
	var out []string
	for _, g := range grants {
		if !g.covers(db) {
			continue
		}
		for _, p := range g.privs {
			if slices.Contains(writePrivileges(), p) {
				out = append(out, p+" on "+g.scope())
			}
		}
	}
	return out
}

func (g grant) scope() string {
	s := g.db + "." + g.table
	if g.kind != "" {
		s = strings.ToLower(g.kind) + " " + s
	}
	return s
}

// canReadRoutines reports whether the account can see the definitions of
// stored routines it does not own. Without that, mysqldump --routines leaves
// them out without an error.
func canReadRoutines(grants []grant, db string) bool {
	for _, g := range grants {
		for _, p := range g.privs {
			switch {
			case g.db == "*" && (p == "SELECT" || p == "ALL" || p == "ALL PRIVILEGES" || p == "SHOW_ROUTINE"):
				return true
			case strings.EqualFold(g.db, "mysql") && (g.table == "*" || g.table == "proc") && (p == "SELECT" || p == "ALL" || p == "ALL PRIVILEGES"):
				return true
			case p == "SHOW CREATE ROUTINE" && g.covers(db):
				return true
			}
		}
	}
	return false
}
