package mysql

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/source"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    Config
		fields []string // fields with a problem; none means valid
		msg    string   // part of some message or hint
	}{
		{name: "url", cfg: Config{URL: "mysql://backup@db:3306/shop"}},
		{name: "mariadb scheme and socket", cfg: Config{URL: "mariadb://backup@localhost/shop?socket=/run/mysqld/mysqld.sock"}},
		{name: "keys", cfg: Config{Host: "db", User: "backup", Database: "shop", Port: 3307}},
		{name: "url completed by keys", cfg: Config{URL: "mysql://db/shop", User: "backup"}},
		{name: "all", cfg: Config{URL: "mysql://backup@db/all", ExcludeTables: []string{"shop.sessions"}}},
		{name: "password in url", cfg: Config{URL: "mysql://backup:hunter2@db/shop"}, fields: []string{"url"}, msg: "${env:"},
		{name: "password parameter", cfg: Config{URL: "mysql://backup@db/shop?password=x"}, fields: []string{"url"}, msg: "password"},
		{name: "other scheme", cfg: Config{URL: "postgres://backup@db/shop"}, fields: []string{"url"}, msg: "mysql://"},
		{name: "unknown parameter", cfg: Config{URL: "mysql://backup@db/shop?tls=true"}, fields: []string{"url"}, msg: "tls"},
		{name: "bad port in url", cfg: Config{URL: "mysql://backup@db:99999/shop"}, fields: []string{"url"}},
		{name: "nothing", cfg: Config{}, fields: []string{""}, msg: "no server"},
		{name: "no database", cfg: Config{Host: "db", User: "backup"}, fields: []string{"database"}},
		{name: "no user", cfg: Config{Host: "db", Database: "shop"}, fields: []string{"user"}},
		{name: "twice", cfg: Config{URL: "mysql://backup@db:3306/shop", Host: "x", Port: 1, User: "y", Database: "z"},
			fields: []string{"host", "port", "user", "database"}},
		{name: "port range", cfg: Config{Host: "db", User: "u", Database: "shop", Port: 70000}, fields: []string{"port"}},
		{name: "socket as host", cfg: Config{Host: "/run/mysqld/mysqld.sock", User: "u", Database: "shop"}, fields: []string{"host"}, msg: "socket"},
		{name: "include and exclude", cfg: Config{URL: "mysql://u@db/shop", IncludeTables: []string{"a"}, ExcludeTables: []string{"b"}},
			fields: []string{"exclude_tables"}},
		{name: "all needs qualified tables", cfg: Config{URL: "mysql://u@db/all", ExcludeTables: []string{"sessions"}},
			fields: []string{"exclude_tables[0]"}, msg: "DATABASE.TABLE"},
		{name: "empty table", cfg: Config{URL: "mysql://u@db/shop", IncludeTables: []string{" "}}, fields: []string{"include_tables[0]"}},
		{name: "long name", cfg: Config{URL: "mysql://u@db/" + strings.Repeat("x", 65)}, fields: []string{"database"}},
		{name: "blank schema_version", cfg: Config{URL: "mysql://u@db/shop", SchemaVersion: "  "}, fields: []string{"schema_version"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			var got []string
			var text string
			if err != nil {
				for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
					var fe *config.FieldError
					if !errors.As(e, &fe) {
						t.Fatalf("not a FieldError: %v", e)
					}
					got = append(got, fe.Field)
					text += fe.Msg + " " + fe.Hint + "\n"
				}
			}
			slices.Sort(got)
			want := slices.Clone(tc.fields)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("problems in %q, want %q:\n%s", got, want, text)
			}
			if tc.msg != "" && !strings.Contains(text, tc.msg) {
				t.Fatalf("messages do not mention %q:\n%s", tc.msg, text)
			}
		})
	}
}

func TestNewResolvesURL(t *testing.T) {
	s, err := New(&Config{URL: "mysql://backup@db.internal:3307/shop"}, source.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if s.ep.host != "db.internal" || s.ep.port != 3307 || s.ep.user != "backup" || s.ep.socket != "" || s.Database() != "shop" {
		t.Fatalf("endpoint %+v database %q", s.ep, s.Database())
	}
	s, err = New(&Config{Socket: "/x/mysqld.sock", User: "root", Database: "shop"}, source.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if s.ep.socket != "/x/mysqld.sock" || s.ep.host != "" {
		t.Fatalf("endpoint %+v", s.ep)
	}
	if got := s.ep.connArgs(); !slices.Equal(got, []string{"--user=root", "--protocol=SOCKET", "--socket=/x/mysqld.sock"}) {
		t.Fatalf("connArgs = %q", got)
	}
}

func TestOptionValue(t *testing.T) {
	for in, want := range map[string]string{
		"plain":         `"plain"`,
		`a"b`:           `"a\"b"`,
		`back\slash`:    `"back\\slash"`,
		"hash # space ": `"hash # space "`,
		"new\nline":     `"new\nline"`,
	} {
		if got := optionValue(in); got != want {
			t.Errorf("optionValue(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestParseToolVersion(t *testing.T) {
	for line, want := range map[string]string{
		"mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)":                 "10.11.19-MariaDB",
		"mariadb-dump from 11.4.2-MariaDB, client 10.19 for debian-linux-gnu (x86_64)":                    "11.4.2-MariaDB",
		"mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)":                        "8.0.36",
		"mysql  Ver 15.1 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64) using  EditLine wrapper": "10.11.19-MariaDB",
	} {
		got, mariadb := parseToolVersion(line)
		if got != want || mariadb != strings.Contains(line, "MariaDB") {
			t.Errorf("parseToolVersion(%q) = %q, %v; want %q", line, got, mariadb, want)
		}
	}
}

func TestDumpArgs(t *testing.T) {
	maria := tool{name: "mariadb-dump", mariadb: true}
	mysql8 := tool{name: "mysqldump"}
	args := dumpArgs(maria, server{mariadb: true}, "shop", nil, []string{"sessions"})
	if slices.Contains(args, "--set-gtid-purged=OFF") {
		t.Errorf("mariadb-dump does not know --set-gtid-purged: %q", args)
	}
	for _, a := range []string{"--single-transaction", "--routines", "--triggers", "--events", "--hex-blob", "--ignore-table=shop.sessions"} {
		if !slices.Contains(args, a) {
			t.Errorf("%s missing from %q", a, args)
		}
	}
	if got := args[len(args)-2:]; !slices.Equal(got, []string{"--", "shop"}) {
		t.Errorf("args end with %q", got)
	}
	args = dumpArgs(mysql8, server{mariadb: true}, "shop", []table{{name: "a"}, {name: "b"}}, nil)
	if !slices.Contains(args, "--set-gtid-purged=OFF") || !slices.Contains(args, "--column-statistics=0") {
		t.Errorf("mysqldump against MariaDB: %q", args)
	}
	if got := args[len(args)-4:]; !slices.Equal(got, []string{"--", "shop", "a", "b"}) {
		t.Errorf("args end with %q", got)
	}
	if args := dumpArgs(mysql8, server{}, "shop", nil, nil); slices.Contains(args, "--column-statistics=0") {
		t.Errorf("mysqldump against MySQL needs no --column-statistics=0: %q", args)
	}
}

func TestPartName(t *testing.T) {
	for in, want := range map[string]string{"shop": "shop", "app_2": "app_2"} {
		if got := PartName(in); got != want {
			t.Errorf("PartName(%q) = %q", in, got)
		}
	}
	a, b := PartName("Shop"), PartName("shop")
	if a == b || !strings.HasPrefix(a, "shop-") {
		t.Errorf("PartName(Shop) = %q, PartName(shop) = %q", a, b)
	}
	if got := PartName("my db.v2"); !regexpOK(got) {
		t.Errorf("PartName(my db.v2) = %q", got)
	}
}

func regexpOK(s string) bool {
	return s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == ""
}

func TestServerID(t *testing.T) {
	a := serverID("", "db1", "/var/lib/mysql/", "1")
	if a != serverID("", "db1", "/var/lib/mysql", "1") {
		t.Error("a trailing slash on datadir changes the identity")
	}
	if a == serverID("", "db2", "/var/lib/mysql/", "1") || a == serverID("", "db1", "/srv/mysql/", "1") {
		t.Error("different servers share an identity")
	}
	if got := serverID("3e11fa47-71ca-11e1-9e33-c80aa9429562", "db1", "/x", "1"); got != "3e11fa47-71ca-11e1-9e33-c80aa9429562" {
		t.Errorf("MySQL identity = %q", got)
	}
}

func TestTarget(t *testing.T) {
	s, err := New(&Config{URL: "mysql://backup@db:3306/shop", Password: config.NewSecret("pw")}, source.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ep, name, err := s.target("shop_restored")
	if err != nil || name != "shop_restored" || !ep.same(s.ep) || ep.password.Reveal() != "pw" {
		t.Fatalf("bare name: %+v %q %v", ep, name, err)
	}
	ep, name, err = s.target("mysql://backup@db:3306/copy")
	if err != nil || name != "copy" || ep.password.Reveal() != "pw" {
		t.Fatalf("same server by URL: %+v %q %v", ep, name, err)
	}
	ep, _, err = s.target("mysql://admin@other:3306/copy")
	if err != nil || ep.user != "admin" || ep.host != "other" || ep.password.IsSet() {
		t.Fatalf("other server must not get the source's password: %+v %v", ep, err)
	}
	ep, _, err = s.target("mysql://other/copy")
	if err != nil || ep.user != "backup" {
		t.Fatalf("user defaults to the source's: %+v %v", ep, err)
	}
	for _, bad := range []string{"", "mysql://u:pw@db/x", "mysql://db", strings.Repeat("y", 70)} {
		if _, _, err := s.target(bad); err == nil {
			t.Errorf("target %q accepted", bad)
		}
	}
}
