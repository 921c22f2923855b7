package mysql

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/lifeboat-backup/lifeboat/internal/doctor"
	"github.com/lifeboat-backup/lifeboat/internal/source"
)

// Source is one MySQL or MariaDB database, or with database `all` every
// database of a server (see [Source.Parts]).
type Source struct {
	cfg      Config // URL merged into the separate keys
	deps     source.Deps
	ep       endpoint
	database string
	// allowNonTx is cfg.AllowNonTransactional, or true for safety snapshots.
	allowNonTx bool
}

var (
	_ source.Source   = (*Source)(nil)
	_ source.Expander = (*Source)(nil)
	_ source.Restorer = (*Source)(nil)
	_ doctor.Checker  = (*Source)(nil)
)

// New returns the source for cfg, which Validate accepted. It does not
// connect.
func New(cfg *Config, d source.Deps) (*Source, error) {
	u, err := cfg.parseURL()
	if err != nil {
		return nil, err
	}
	r := cfg.resolved(u)
	s := &Source{cfg: r, deps: d, database: r.Database, allowNonTx: r.AllowNonTransactional}
	s.ep = newEndpoint(r.Host, r.Port, r.Socket, r.User, r.Password)
	return s, nil
}

// Format implements source.Source: the dump is SQL text for the mysql client.
func (s *Source) Format() string { return "sql" }

// Database is the database the source dumps, or [AllDatabases].
func (s *Source) Database() string { return s.database }

func (s *Source) baseEnv() []string {
	if s.deps.Env == nil {
		return nil
	}
	return source.MinimalEnv(s.deps.Env)
}

// forDatabase returns a copy of s that dumps database name.
func (s *Source) forDatabase(name string) *Source {
	c := *s
	c.database = name
	return &c
}

// Parts implements source.Expander. With database `all` it lists every
// database except the system schemas (and, when include_tables is set, those
// it names no table of), one part each, named after the database ([PartName]);
// otherwise it returns s itself as the only, unnamed part.
func (s *Source) Parts(ctx context.Context) ([]source.Part, error) {
	if s.database != AllDatabases {
		return []source.Part{{Source: s}}, nil
	}
	db, err := s.ep.connect(ctx, "")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	names, err := listDatabases(ctx, db)
	if err != nil {
		return nil, err
	}
	parts := make([]source.Part, 0, len(names))
	for _, n := range names {
		p := s.forDatabase(n)
		if include, _ := p.tableFilter(); len(s.cfg.IncludeTables) > 0 && len(include) == 0 {
			continue // include_tables lists only tables of other databases
		}
		parts = append(parts, source.Part{Name: PartName(n), Source: p})
	}
	return parts, nil
}

func listDatabases(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("list databases: %w", err)
		}
		if !isSystemSchema(n) {
			names = append(names, n)
		}
	}
	return names, rows.Err()
}

var partNameRE = regexp.MustCompile(`[^a-z0-9_-]+`)

// PartName turns a database name into a part name ([a-z0-9_-]). A name that
// had to be changed gets a short hash of the original, so that "Shop" and
// "shop" stay apart.
func PartName(database string) string {
	n := partNameRE.ReplaceAllString(strings.ToLower(database), "_")
	if n == database {
		return n
	}
	h := sha256.Sum256([]byte(database))
	return strings.Trim(n, "_") + "-" + hex.EncodeToString(h[:3])
}

// table is one entry of information_schema.TABLES.
type table struct {
	name, typ, engine string
}

func (t table) isView() bool { return t.typ == "VIEW" }

// counted reports whether the table has rows to count (not a view or sequence).
func (t table) counted() bool { return t.typ != "VIEW" && t.typ != "SEQUENCE" }

// schema is what information_schema says about one database.
type schema struct {
	exists             bool
	charset, collation string
	size               int64
	tables             []table
	routines, events   int
}

// readSchema reads what the connected account can see of database name.
func readSchema(ctx context.Context, db *sql.DB, name string) (schema, error) {
	var sc schema
	err := db.QueryRowContext(ctx, "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name).
		Scan(&sc.charset, &sc.collation)
	if errors.Is(err, sql.ErrNoRows) {
		return sc, nil
	}
	if err != nil {
		return sc, fmt.Errorf("look up database %s: %w", name, err)
	}
	sc.exists = true
	rows, err := db.QueryContext(ctx, `SELECT TABLE_NAME, TABLE_TYPE, COALESCE(ENGINE, ''),
		COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0)
		FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME`, name)
	if err != nil {
		return sc, fmt.Errorf("list tables of %s: %w", name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var t table
		var size int64
		if err := rows.Scan(&t.name, &t.typ, &t.engine, &size); err != nil {
			return sc, fmt.Errorf("list tables of %s: %w", name, err)
		}
		sc.tables = append(sc.tables, t)
		sc.size += size
	}
	if err := rows.Err(); err != nil {
		return sc, fmt.Errorf("list tables of %s: %w", name, err)
	}
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?", name).Scan(&sc.routines); err != nil {
		return sc, fmt.Errorf("count routines of %s: %w", name, err)
	}
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?", name).Scan(&sc.events); err != nil {
		return sc, fmt.Errorf("count events of %s: %w", name, err)
	}
	return sc, nil
}

// tableFilter returns the include and exclude lists that apply to s.database.
func (s *Source) tableFilter() (include, exclude []string) {
	pick := func(names []string) []string {
		var out []string
		for _, n := range names {
			if s.cfg.Database != AllDatabases {
				out = append(out, n)
			} else if db, t, _ := strings.Cut(n, "."); db == s.database {
				out = append(out, t)
			}
		}
		return out
	}
	return pick(s.cfg.IncludeTables), pick(s.cfg.ExcludeTables)
}

// selectTables applies include_tables and exclude_tables to the database's
// tables and views. A listed table that does not exist is an error.
func (s *Source) selectTables(all []table) ([]table, error) {
	include, exclude := s.tableFilter()
	if len(include) == 0 {
		var out []table
		for _, t := range all {
			if !slices.Contains(exclude, t.name) {
				out = append(out, t)
			}
		}
		return out, nil
	}
	var out []table
	var missing []string
	for _, n := range include {
		i := slices.IndexFunc(all, func(t table) bool { return t.name == n })
		if i < 0 {
			missing = append(missing, n)
			continue
		}
		out = append(out, all[i])
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("include_tables names tables that database %s does not have (or the user cannot see): %s",
			s.database, strings.Join(missing, ", "))
	}
	return out, nil
}

// NonTransactionalError is returned by Dump when tables to be dumped use a
// storage engine without transactions: --single-transaction cannot give them
// a consistent snapshot.
type NonTransactionalError struct {
	Database string
	Tables   []string // "name (MyISAM)"
}

func (e *NonTransactionalError) Error() string {
	return fmt.Sprintf("database %s has tables without transactions, which a dump cannot copy consistently while the application writes: %s "+
		"(convert them with ALTER TABLE ... ENGINE=InnoDB, leave them out with exclude_tables, or accept an inconsistent copy with allow_non_transactional: true)",
		e.Database, strings.Join(e.Tables, ", "))
}

// nonTransactional lists the tables whose engine is not InnoDB.
func nonTransactional(tables []table) []string {
	var out []string
	for _, t := range tables {
		if t.isView() || strings.EqualFold(t.engine, "InnoDB") {
			continue
		}
		out = append(out, fmt.Sprintf("%s (%s)", t.name, cmp.Or(t.engine, "no engine")))
	}
	return out
}

// Dump implements source.Source. It checks the tables' engines, counts rows
// in a consistent snapshot, then streams mysqldump's output into w.
func (s *Source) Dump(ctx context.Context, w io.Writer, meta *source.Meta) error {
	if s.database == AllDatabases {
		return errors.New("database `all` is backed up one part per database; back up the parts from Parts")
	}
	dump, err := findTool(ctx, s, s.cfg.Tool, []string{"mariadb-dump", "mysqldump"}, "mariadb-client")
	if err != nil {
		return err
	}
	db, err := s.ep.connect(ctx, "")
	if err != nil {
		return err
	}
	defer db.Close()
	srv, err := readServer(ctx, db)
	if err != nil {
		return err
	}
	sc, err := readSchema(ctx, db, s.database)
	if err != nil {
		return err
	}
	if !sc.exists {
		return fmt.Errorf("database %s does not exist on %s, or user %s has no privileges on it", s.database, srv.describe(s.ep), s.ep.user)
	}
	tables, err := s.selectTables(sc.tables)
	if err != nil {
		return err
	}
	if nt := nonTransactional(tables); len(nt) > 0 {
		if !s.allowNonTx {
			return &NonTransactionalError{Database: s.database, Tables: nt}
		}
		meta.Warnings = append(meta.Warnings, "tables without transactions are not part of the consistent snapshot: "+strings.Join(nt, ", "))
	}

	if meta.ToolVersions == nil {
		meta.ToolVersions = map[string]string{}
	}
	meta.ToolVersions[dump.name] = dump.version
	meta.ServerVersion = srv.version
	meta.Identity = srv.identity(s.database)
	meta.DatabaseSize = sc.size
	if meta.Extra == nil {
		meta.Extra = map[string]string{}
	}
	meta.Extra["database"] = s.database
	meta.Extra["character_set"] = sc.charset
	meta.Extra["collation"] = sc.collation
	if err := s.snapshotFacts(ctx, db, tables, meta); err != nil {
		return err
	}

	db.Close() // hold no idle connections while the dump runs

	opt, cleanup, err := s.ep.optionFile()
	if err != nil {
		return err
	}
	defer cleanup()
	args := append(opt, s.ep.connArgs()...)
	include, exclude := s.tableFilter()
	if len(include) == 0 {
		tables = nil // all of them: name none
	}
	args = append(args, dumpArgs(dump, srv, s.database, tables, exclude)...)
	s.deps.Log().Debug("mysql dump", "source", s.deps.Name, "tool", dump.path, "database", s.database)
	stderr := &stderrLines{}
	err = source.Run(ctx, source.Command{Path: dump.path, Args: args, Stdout: w, Stderr: stderr, BaseEnv: s.baseEnv()})
	meta.Warnings = append(meta.Warnings, stderr.warnings()...)
	if err != nil {
		return fmt.Errorf("dump database %s from %s: %w", s.database, srv.describe(s.ep), err)
	}
	return nil
}

// snapshotFacts counts the rows of every table, and runs the schema_version
// query, in one consistent snapshot taken right before the dump.
func (s *Source) snapshotFacts(ctx context.Context, db *sql.DB, tables []table, meta *source.Meta) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect for row counts: %w", err)
	}
	defer conn.Close()
	for _, q := range []string{
		"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
		"START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("start snapshot for row counts: %w", err)
		}
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK") //nolint:errcheck // read-only; the connection is closed next

	counts := map[string]int64{}
	for _, t := range tables {
		if !t.counted() {
			continue
		}
		var n int64
		q := "SELECT COUNT(*) FROM " + quoteIdent(s.database) + "." + quoteIdent(t.name)
		if err := conn.QueryRowContext(ctx, q).Scan(&n); err != nil {
			return fmt.Errorf("count rows of %s.%s: %w", s.database, t.name, err)
		}
		counts[t.name] = n
	}
	meta.RowCounts = counts
	meta.RowCountsTaken = "before dump"

	if s.cfg.SchemaVersion != "" {
		if _, err := conn.ExecContext(ctx, "USE "+quoteIdent(s.database)); err != nil {
			return fmt.Errorf("select database %s: %w", s.database, err)
		}
		v, err := queryOne(ctx, conn, s.cfg.SchemaVersion)
		if err != nil {
			meta.Warnings = append(meta.Warnings, "schema_version query failed: "+err.Error())
			s.deps.Log().Warn("schema_version query failed", "source", s.deps.Name, "err", err)
		} else {
			meta.SchemaVersion = v
		}
	}
	return nil
}

// queryOne runs q and returns the first column of its first row as text.
func queryOne(ctx context.Context, conn *sql.Conn, q string) (string, error) {
	var v sql.NullString
	if err := conn.QueryRowContext(ctx, q).Scan(&v); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	return v.String, nil
}

// dumpArgs are mysqldump's arguments after the connection ones.
// https://mariadb.com/kb/en/mariadb-dump/ and
// https://dev.mysql.com/doc/refman/8.0/en/mysqldump.html
//
// tables, when not empty, are the only ones dumped; exclude are left out.
func dumpArgs(dump tool, srv server, database string, tables []table, exclude []string) []string {
	args := []string{
		// One REPEATABLE READ transaction: a consistent copy of InnoDB tables
		// without locking out writers.
		"--single-transaction",
		"--quick", // stream rows instead of buffering each table
		"--routines", "--triggers", "--events",
		"--hex-blob",       // binary columns as hex literals, safe in any charset
		"--no-tablespaces", // needs PROCESS on MySQL 8 and is never wanted for one database
		"--skip-dump-date", // identical data gives identical dumps
		"--default-character-set=utf8mb4",
		"--max-allowed-packet=1G", // the client's limit for one row
	}
	if !dump.mariadb {
		// MySQL's mysqldump writes SET @@GLOBAL.GTID_PURGED on servers with
		// GTIDs, which fails on restore into a server with its own history.
		args = append(args, "--set-gtid-purged=OFF")
		if srv.mariadb {
			// MySQL 8's mysqldump queries information_schema.COLUMN_STATISTICS,
			// which MariaDB does not have.
			args = append(args, "--column-statistics=0")
		}
	}
	for _, t := range exclude {
		args = append(args, "--ignore-table="+database+"."+t)
	}
	args = append(args, "--", database)
	for _, t := range tables {
		args = append(args, t.name)
	}
	return args
}

// stderrLines keeps the warnings a dump tool prints (bounded).
type stderrLines struct {
	buf bytes.Buffer
}

func (l *stderrLines) Write(p []byte) (int, error) {
	if l.buf.Len() < 64<<10 {
		l.buf.Write(p)
	}
	return len(p), nil
}

func (l *stderrLines) warnings() []string {
	var out []string
	sc := bufio.NewScanner(&l.buf)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.Contains(strings.ToLower(line), "warning") && len(out) < 20 {
			out = append(out, line)
		}
	}
	return out
}
