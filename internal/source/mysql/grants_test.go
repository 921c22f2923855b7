package mysql

import (
	"slices"
	"testing"
)

func TestParseGrant(t *testing.T) {
	for _, tc := range []struct {
		line  string
		ok    bool
		privs []string
		kind  string
		db    string
		table string
	}{
		{"GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION", true, []string{"ALL PRIVILEGES"}, "", "*", "*"},
		{"GRANT USAGE ON *.* TO `ro`@`%` IDENTIFIED BY PASSWORD '*ABC'", true, []string{"USAGE"}, "", "*", "*"},
		{"GRANT SELECT, LOCK TABLES, SHOW VIEW, EVENT, TRIGGER ON `shop`.* TO `ro`@`%`", true,
			[]string{"SELECT", "LOCK TABLES", "SHOW VIEW", "EVENT", "TRIGGER"}, "", "shop", "*"},
		{"GRANT SELECT (`a`, `b`), INSERT (`c`) ON `shop`.`t` TO `u`@`%`", true, []string{"SELECT", "INSERT"}, "", "shop", "t"},
		{"GRANT SELECT ON `mysql`.`proc` TO `ro`@`%`", true, []string{"SELECT"}, "", "mysql", "proc"},
		{"GRANT EXECUTE, ALTER ROUTINE ON PROCEDURE `shop`.`p` TO `u`@`%`", true, []string{"EXECUTE", "ALTER ROUTINE"}, "PROCEDURE", "shop", "p"},
		{"GRANT INSERT ON `odd``name`.* TO `u`@`%`", true, []string{"INSERT"}, "", "odd`name", "*"},
		{"GRANT SELECT ON `on to`.* TO `u`@`%`", true, []string{"SELECT"}, "", "on to", "*"},
		{"GRANT `app_reader` TO `u`@`%`", false, nil, "", "", ""},
		{"GRANT PROXY ON ''@'%' TO 'root'@'localhost' WITH GRANT OPTION", false, nil, "", "", ""},
		{"SET DEFAULT ROLE `r` FOR `u`@`%`", false, nil, "", "", ""},
		{"GRANT BACKUP_ADMIN,RELOAD ON *.* TO `u`@`%`", true, []string{"BACKUP_ADMIN", "RELOAD"}, "", "*", "*"},
	} {
		g, ok := parseGrant(tc.line)
		if ok != tc.ok {
			t.Errorf("parseGrant(%q) ok = %v", tc.line, ok)
			continue
		}
		if !ok {
			continue
		}
		if !slices.Equal(g.privs, tc.privs) || g.kind != tc.kind || g.db != tc.db || g.table != tc.table {
			t.Errorf("parseGrant(%q) = %+v", tc.line, g)
		}
	}
}

func TestLikeMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"shop", "shop", true},
		{"shop", "shop2", false},
		{"shop%", "shop_eu", true},
		{`shop\_eu`, "shop_eu", true},
		{`shop\_eu`, "shopxeu", false},
		{"shop_eu", "shopxeu", true},
		{"%", "", true},
	} {
		if got := likeMatch(tc.pattern, tc.name); got != tc.want {
			t.Errorf("likeMatch(%q, %q) = %v", tc.pattern, tc.name, got)
		}
	}
}

func TestWrites(t *testing.T) {
	parse := func(lines ...string) []grant {
		var gs []grant
		for _, l := range lines {
			if g, ok := parseGrant(l); ok {
				gs = append(gs, g)
			}
		}
		return gs
	}
	readOnly := parse(
		"GRANT USAGE ON *.* TO `ro`@`%`",
		"GRANT SELECT, LOCK TABLES, SHOW VIEW, EVENT, TRIGGER ON `shop`.* TO `ro`@`%`",
		"GRANT SELECT ON `mysql`.`proc` TO `ro`@`%`",
		"GRANT INSERT ON `scratch`.* TO `ro`@`%`", // another database: not this source's business
	)
	if w := writes(readOnly, "shop"); len(w) != 0 {
		t.Errorf("read-only account flagged: %q", w)
	}
	if !canReadRoutines(readOnly, "shop") {
		t.Error("SELECT on mysql.proc reads routines")
	}
	if w := writes(readOnly, ""); len(w) == 0 {
		t.Error("with database all, INSERT on scratch.* is on a backed-up database")
	}
	root := parse("GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION")
	if w := writes(root, "shop"); !slices.Contains(w, "ALL PRIVILEGES on *.*") {
		t.Errorf("root: %q", w)
	}
	pattern := parse("GRANT SELECT, UPDATE ON `sho%`.* TO `u`@`%`")
	if w := writes(pattern, "shop"); !slices.Equal(w, []string{"UPDATE on sho%.*"}) {
		t.Errorf("pattern grant: %q", w)
	}
	if canReadRoutines(pattern, "shop") {
		t.Error("SELECT on the database does not read other accounts' routines")
	}
	grantTables := parse("GRANT INSERT ON `mysql`.* TO `u`@`%`")
	if w := writes(grantTables, "shop"); len(w) == 0 {
		t.Error("INSERT on mysql.* is control of the server")
	}
}
