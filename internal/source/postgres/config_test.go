package postgres

import (
	"errors"
	"github.com/lifeboat-backup/lifeboat/internal/testutil"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/source"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		fields []string // fields of the expected errors, in order; nil means valid
		msg    string   // part of the first message
	}{
		{name: "url", cfg: Config{URL: "postgres://backup@db:5432/shop?sslmode=require"}},
		{name: "keys", cfg: Config{Host: "db", Port: 5433, User: "backup", Database: "shop", Format: "plain", Jobs: 4}},
		{name: "url completed by keys", cfg: Config{URL: "postgres://db", User: "backup", Database: "all"}},
		{name: "password in url", cfg: Config{URL: "postgres://backup:hunter2@db/shop"},
			fields: []string{"url"}, msg: "password"},
		{name: "password in url query", cfg: Config{URL: "postgres://backup@db/shop?password=hunter2"},
			fields: []string{"url"}, msg: "password"},
		{name: "not postgres url", cfg: Config{URL: "mysql://db/shop"}, fields: []string{"url", "database"}},
		{name: "nothing", cfg: Config{}, fields: []string{""}, msg: "no server"},
		{name: "no database", cfg: Config{Host: "db"}, fields: []string{"database"}},
		{name: "host twice", cfg: Config{URL: "postgres://db/shop", Host: "other"}, fields: []string{"host"}},
		{name: "database twice", cfg: Config{URL: "postgres://db/shop", Database: "x"}, fields: []string{"database"}},
		{name: "bad values", cfg: Config{Host: "db", Database: "x", Port: 70000, SSLMode: "maybe", Format: "tar", Jobs: -1},
			fields: []string{"port", "sslmode", "format", "jobs"}},
		{name: "patterns", cfg: Config{Host: "db", Database: "x", IncludeTables: []string{"ok", " "}, ExcludeSchemas: []string{`"open`}},
			fields: []string{"include_tables[1]", "exclude_schemas[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors for %v", tt.fields)
			}
			var got []string
			var first string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var fe *config.FieldError
				if !errors.As(e, &fe) {
					t.Fatalf("error %v is not a *config.FieldError", e)
				}
				if first == "" {
					first = fe.Msg
				}
				got = append(got, fe.Field)
			}
			if !slices.Equal(got, tt.fields) {
				t.Errorf("fields = %q, want %q (%v)", got, tt.fields, err)
			}
			if !strings.Contains(first, tt.msg) {
				t.Errorf("first message %q does not contain %q", first, tt.msg)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in      string
		version string
		major   int
	}{
		{"pg_dump (PostgreSQL) 15.8 (Debian 15.8-1.pgdg120+1)", "15.8", 1500},
		{"pg_dump (PostgreSQL) 17.2", "17.2", 1700},
		{"pg_restore (PostgreSQL) 9.6.24", "9.6.24", 906},
		{"pg_dump (PostgreSQL) 18beta1", "18beta1", 1800},
		{"16devel", "16devel", 1600},
		{"10.23", "10.23", 1000},
		{"9.2", "9.2", 902},
	}
	for _, tt := range tests {
		v, major, ok := parseVersion(tt.in)
		if !ok || v != tt.version || major != tt.major {
			t.Errorf("parseVersion(%q) = %q, %d, %v; want %q, %d", tt.in, v, major, ok, tt.version, tt.major)
		}
	}
	for _, bad := range []string{"", "pg_dump (PostgreSQL)", "version unknown"} {
		if _, _, ok := parseVersion(bad); ok {
			t.Errorf("parseVersion(%q) ok, want failure", bad)
		}
	}
	for num, want := range map[int]int{150008: 1500, 170002: 1700, 100023: 1000, 90624: 906, 90224: 902} {
		if got := majorFromNum(num); got != want {
			t.Errorf("majorFromNum(%d) = %d, want %d", num, got, want)
		}
	}
}

// TestVersionCheck is the too-old pg_dump rule: a tool may be newer than the
// server, never older.
func TestVersionCheck(t *testing.T) {
	tests := []struct {
		tool, server string
		serverNum    int
		ok           bool
		pkg          string
	}{
		{"pg_dump (PostgreSQL) 15.8", "15.2", 150002, true, ""},
		{"pg_dump (PostgreSQL) 17.2", "15.8", 150008, true, ""},
		{"pg_dump (PostgreSQL) 17.2", "9.6.24", 90624, true, ""},
		{"pg_dump (PostgreSQL) 14.10", "15.8", 150008, false, "postgresql-client-15"},
		{"pg_dump (PostgreSQL) 16.4", "17.0", 170000, false, "postgresql-client-17"},
		{"pg_dump (PostgreSQL) 9.5.25", "9.6.24", 90624, false, "postgresql-client-9.6"},
		{"pg_dump (PostgreSQL) 9.6.24", "10.1", 100001, false, "postgresql-client-10"},
	}
	for _, tt := range tests {
		ver, major, _ := parseVersion(tt.tool)
		si := serverInfo{version: tt.server, versionNum: tt.serverNum}
		err := checkVersion(major, VersionError{Tool: "pg_dump", ToolVersion: ver, Path: "/usr/bin/pg_dump",
			Of: "the server (PostgreSQL " + si.shortVersion() + ")", Verb: "dump", NeedMajor: si.major()})
		if tt.ok {
			if err != nil {
				t.Errorf("%s vs server %s: %v, want ok", tt.tool, tt.server, err)
			}
			continue
		}
		var ve *VersionError
		if !errors.As(err, &ve) {
			t.Fatalf("%s vs server %s: %v, want a *VersionError", tt.tool, tt.server, err)
		}
		if ve.Package() != tt.pkg || !strings.Contains(err.Error(), "install "+tt.pkg+" ") {
			t.Errorf("%s vs server %s: %q, want it to name %s", tt.tool, tt.server, err, tt.pkg)
		}
		if !strings.Contains(err.Error(), "is older than the server (PostgreSQL "+tt.server+")") {
			t.Errorf("message %q does not name the server version", err)
		}
	}
}

func TestPatternRegexes(t *testing.T) {
	tests := []struct{ in, schema, name string }{
		{"orders", "", "^(orders)$"},
		{"Orders", "", "^(orders)$"},
		{"public.orders", "^(public)$", "^(orders)$"},
		{"audit_*", "", "^(audit_.*)$"},
		{"log?", "", "^(log.)$"},
		{"*.tmp_*", "^(.*)$", "^(tmp_.*)$"},
		{`"MixedCase"`, "", "^(MixedCase)$"},
		{`"a.b*"`, "", `^(a\.b\*)$`},
		{`"say ""hi"""`, "", `^(say "hi")$`},
		{"price$", "", `^(price\$)$`},
		{"db.s.t", "^(s)$", "^(t)$"},
	}
	for _, tt := range tests {
		schema, name := patternRegexes(tt.in)
		if schema != tt.schema || name != tt.name {
			t.Errorf("patternRegexes(%q) = %q, %q; want %q, %q", tt.in, schema, name, tt.schema, tt.name)
		}
	}
}

func TestPartName(t *testing.T) {
	used := map[string]bool{GlobalsPart: true}
	var got []string
	for _, db := range []string{"shop", "Shop", "my db", "globals", "_x", "ünï"} {
		got = append(got, partName(db, used))
	}
	want := []string{"shop", "shop-2", "my_db", "globals-2", "x", "n_"}
	if !slices.Equal(got, want) {
		t.Errorf("part names = %q, want %q", got, want)
	}
}

func testEnv(vars map[string]string) config.Env {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

// TestPasswordNeverInArgv: the password reaches tools only as PGPASSWORD.
func TestPasswordNeverInArgv(t *testing.T) {
	cfg := &Config{URL: "postgres://backup@db.internal:5433/shop?sslmode=require", Password: config.NewSecret("hunter2"),
		IncludeTables: []string{"public.*"}, ExcludeSchemas: []string{"audit"}}
	s, err := New(cfg, source.Deps{Name: "app", Env: testEnv(map[string]string{"PATH": "/usr/bin", "SECRET_TOKEN": "x"})})
	if err != nil {
		t.Fatal(err)
	}
	args := s.dumpArgs("00000003-0000001B-1")
	want := []string{"--no-password", "--format=custom", "--snapshot=00000003-0000001B-1", "--compress=0",
		"--table=public.*", "--exclude-schema=audit",
		"--dbname=application_name='lifeboat' connect_timeout='30' dbname='shop' host='db.internal' port='5433' sslmode='require' user='backup'"}
	if !slices.Equal(args, want) {
		t.Errorf("dumpArgs =\n%q\nwant\n%q", args, want)
	}
	env := s.p.env(s.d.Env)
	if !slices.Contains(env, "PGPASSWORD=hunter2") || slices.Contains(env, "SECRET_TOKEN=x") {
		t.Errorf("env = %q, want PGPASSWORD and not SECRET_TOKEN", env)
	}
	for _, a := range args {
		if strings.Contains(a, "hunter2") {
			t.Errorf("argv holds the password: %q", a)
		}
	}
	// A target URL with a password keeps it out of argv too.
	p, err := s.targetParams("postgres://admin:s%27cret@other:5432/restored")
	if err != nil {
		t.Fatal(err)
	}
	if p.password != "s'cret" || strings.Contains(p.conninfo(), "cret") {
		t.Errorf("target password %q, conninfo %q", p.password, p.conninfo())
	}
	for _, c := range s.ManualRestore("postgres://admin:s%27cret@other:5432/restored", nil) {
		if strings.Contains(c, "cret") {
			t.Errorf("manual restore shows the password: %q", c)
		}
	}
}

func TestTargetParams(t *testing.T) {
	s, err := New(&Config{Host: "db", Port: 5433, User: "backup", Database: "shop", Password: config.NewSecret("pw")},
		source.Deps{Env: testEnv(nil)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		target, db, where, password string
	}{
		{"shop_restored", "shop_restored", "db:5433", "pw"},
		{"postgres://backup@db:5433/copy", "copy", "db:5433", "pw"},
		{"postgres://other@db:5433/copy", "copy", "db:5433", ""},
		{"postgres://backup@elsewhere/copy", "copy", "elsewhere:5432", ""},
		{"postgres://x@/copy?host=/run/pg&port=5433", "copy", "socket /run/pg:5433", ""},
	}
	for _, tt := range tests {
		p, err := s.targetParams(tt.target)
		if err != nil {
			t.Errorf("%s: %v", tt.target, err)
			continue
		}
		if p.db() != tt.db || p.where() != tt.where || p.password != tt.password {
			t.Errorf("%s: db %q where %q password %q; want %q %q %q", tt.target, p.db(), p.where(), p.password, tt.db, tt.where, tt.password)
		}
	}
	for _, bad := range []string{"", "postgres://db:5433/", "a b", "mysql://x/y"} {
		if _, err := s.targetParams(bad); err == nil {
			t.Errorf("targetParams(%q) = nil error", bad)
		}
	}
}

func TestManualRestore(t *testing.T) {
	s, err := New(&Config{Host: "db", User: "backup", Database: "shop", SSLMode: "require"}, source.Deps{Env: testEnv(nil)})
	if err != nil {
		t.Fatal(err)
	}
	got := s.ManualRestore("postgres://admin@restore-host:5544/shop copy", &source.Meta{Extra: map[string]string{"pg_format": "custom"}})
	want := []string{
		"createdb -h restore-host -p 5544 -U admin -T template0 'shop copy'",
		"pg_restore -h restore-host -p 5544 -U admin --no-owner --exit-on-error -d 'shop copy'",
	}
	if !slices.Equal(got, want) {
		t.Errorf("custom:\n%q\nwant\n%q", got, want)
	}
	got = s.ManualRestore("shop2", &source.Meta{Extra: map[string]string{"pg_format": "plain"}})
	want = []string{
		"PGSSLMODE=require createdb -h db -U backup -T template0 shop2",
		"PGSSLMODE=require psql -h db -U backup -X -v ON_ERROR_STOP=1 --single-transaction -d shop2",
	}
	if !slices.Equal(got, want) {
		t.Errorf("plain:\n%q\nwant\n%q", got, want)
	}
	got = s.ManualRestore("postgres://admin@h/x", &source.Meta{Part: GlobalsPart})
	if want := []string{"psql -h h -U admin -X -d postgres"}; !slices.Equal(got, want) {
		t.Errorf("globals: %q, want %q", got, want)
	}
}

func TestTargetURL(t *testing.T) {
	u, err := TargetURL("postgres://drill@scratch:5433/?sslmode=disable", "lifeboat_drill_1", "p@ss w/rd")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := New(&Config{Host: "db", Database: "shop"}, source.Deps{Env: testEnv(nil)})
	p, err := s.targetParams(u)
	if err != nil {
		t.Fatal(err)
	}
	if p.db() != "lifeboat_drill_1" || p.password != "p@ss w/rd" || p.kv["user"] != "drill" || p.where() != "scratch:5433" ||
		p.kv["sslmode"] != "disable" {
		t.Errorf("TargetURL round trip: %q -> %+v", u, p)
	}
	if u, _ := TargetURL("postgres://drill@scratch", "x", ""); u != "postgres://drill@scratch/x" {
		t.Errorf("without password: %q", u)
	}
}

func TestFindTool(t *testing.T) {
	_, err := findTool("pg_dump", t.TempDir())
	var me *source.MissingToolError
	if !errors.As(err, &me) || me.Package != "postgresql-client" || !strings.Contains(err.Error(), "bin_dir") {
		t.Errorf("findTool in an empty bin_dir = %v, want a MissingToolError naming the package and bin_dir", err)
	}
	// With Debian's pg_wrapper on PATH the real, newest binary is used.
	p, err := findTool("pg_dump", "")
	if err != nil {
		testutil.Missing(t, "pg", "no pg_dump on PATH: "+err.Error())
	}
	if real, _ := filepath.EvalSymlinks(p); filepath.Base(real) == "pg_wrapper" {
		t.Errorf("findTool returned pg_wrapper %s", p)
	}
	if _, _, err := toolVersion(t.Context(), p, []string{"PATH=/usr/bin:/bin"}); err != nil {
		t.Errorf("version of %s: %v", p, err)
	}
}
