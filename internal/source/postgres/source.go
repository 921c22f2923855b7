package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/lifeboat-backup/lifeboat/internal/doctor"
	"github.com/lifeboat-backup/lifeboat/internal/source"
)

// GlobalsPart is the name of the part holding roles and tablespaces.
const GlobalsPart = "globals"

// Source is one PostgreSQL database (or, for a [Cluster], every database of
// a server). It is also the Restorer of its backups.
type Source struct {
	cfg     Config
	d       source.Deps
	p       params
	binDir  string // resolved bin_dir; empty means PATH
	globals bool   // the globals part of a Cluster
}

// Cluster is a source with `database: all`: it expands into one part per
// database plus a globals part.
type Cluster struct {
	*Source
}

var (
	_ source.Source   = (*Source)(nil)
	_ source.Restorer = (*Source)(nil)
	_ doctor.Checker  = (*Source)(nil)
	_ source.Expander = (*Cluster)(nil)
)

// New returns the source for cfg. cfg must have passed Validate and had its
// secrets resolved.
func New(cfg *Config, d source.Deps) (*Source, error) {
	p, err := paramsFromConfig(cfg)
	if err != nil {
		return nil, err
	}
	if p.db() == "" {
		return nil, errors.New("no database configured: set database (or `all`)")
	}
	s := &Source{cfg: *cfg, d: d, p: p}
	if cfg.BinDir != "" {
		s.binDir = d.Path(cfg.BinDir)
	}
	return s, nil
}

// Open returns the source for cfg as the runner should see it: a *Cluster
// (a source.Expander) when database is `all`, else a *Source.
func Open(cfg *Config, d source.Deps) (source.Source, error) {
	s, err := New(cfg, d)
	if err != nil {
		return nil, err
	}
	if s.IsCluster() {
		return &Cluster{s}, nil
	}
	return s, nil
}

// IsCluster reports whether the source is `database: all`.
func (s *Source) IsCluster() bool { return !s.globals && s.p.db() == AllDatabases }

// Format implements source.Source: "pgdump" for the custom format, "sql" for
// plain SQL and for the globals part.
func (s *Source) Format() string {
	if s.globals || s.cfg.format() == "plain" {
		return "sql"
	}
	return "pgdump"
}

// forDB returns the source for one database of the same server.
func (s *Source) forDB(db string) *Source {
	c := s.cfg
	c.Database = db
	return &Source{cfg: c, d: s.d, p: s.p.withDB(db), binDir: s.binDir}
}

// Dump implements source.Source. See the package documentation for how the
// snapshot is shared between pg_dump and the row counts.
func (s *Source) Dump(ctx context.Context, w io.Writer, meta *source.Meta) error {
	if s.globals {
		return s.dumpGlobals(ctx, w, meta)
	}
	if s.IsCluster() {
		return errors.New("database `all` is backed up one part per database: expand it with Parts")
	}
	db := s.p.db()
	pgDump, err := findTool("pg_dump", s.binDir)
	if err != nil {
		return err
	}
	env := s.p.env(s.d.Env)
	ver, major, err := toolVersion(ctx, pgDump, env)
	if err != nil {
		return err
	}
	conn, err := s.p.connect(ctx, s.d.Env)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	si, err := readServerInfo(ctx, conn)
	if err != nil {
		return err
	}
	if err := checkVersion(major, VersionError{Tool: "pg_dump", ToolVersion: ver, Path: pgDump,
		Of: "the server (PostgreSQL " + si.shortVersion() + ")", Verb: "dump", NeedMajor: si.major()}); err != nil {
		return err
	}

	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("begin snapshot transaction in %q: %w", db, err)
	}
	// Rolled back only after pg_dump has exited: the exported snapshot lives
	// as long as this transaction.
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Server-wide timeouts must not cut the counts short or end the
	// transaction while pg_dump still relies on it (pg_dump lifts them for
	// itself too).
	if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0;
		SET LOCAL idle_in_transaction_session_timeout = 0`); err != nil {
		return fmt.Errorf("prepare snapshot transaction in %q: %w", db, err)
	}
	var snapshot string
	if err := tx.QueryRow(ctx, "SELECT pg_catalog.pg_export_snapshot()").Scan(&snapshot); err != nil {
		return fmt.Errorf("export snapshot of %q: %w", db, err)
	}

	// pg_dump and the row counts run at the same time in the same snapshot.
	// Whichever fails first stops the other.
	dumpCtx, cancelDump := context.WithCancel(ctx)
	defer cancelDump()
	factsCtx, cancelFacts := context.WithCancel(ctx)
	defer cancelFacts()
	dumpDone := make(chan error, 1)
	log := s.d.Log().With("source", s.d.Name)
	log.Debug("pg_dump started", "database", db, "snapshot", snapshot)
	go func() {
		err := source.Run(dumpCtx, source.Command{Path: pgDump, Args: s.dumpArgs(snapshot), BaseEnv: env, Stdout: w})
		if err != nil {
			cancelFacts()
		}
		dumpDone <- err
	}()
	facts, factsErr := s.readFacts(factsCtx, tx)
	if factsErr != nil {
		cancelDump()
	}
	dumpErr := <-dumpDone

	var xe *source.ExitError
	switch {
	case dumpErr != nil && (errors.As(dumpErr, &xe) || factsErr == nil || ctx.Err() != nil):
		return fmt.Errorf("dump database %q on %s: %w", db, s.p.where(), dumpErr)
	case factsErr != nil:
		return fmt.Errorf("read row counts of %q in the dump's snapshot: %w", db, factsErr)
	}

	meta.ToolVersions = map[string]string{"pg_dump": ver}
	meta.ServerVersion = si.shortVersion()
	meta.SchemaVersion = facts.schemaVersion
	meta.RowCounts = facts.rows
	meta.RowCountsTaken = "same snapshot"
	meta.DatabaseSize = facts.size
	meta.Identity = si.identity()
	meta.Warnings = append(meta.Warnings, facts.warnings...)
	if meta.Extra == nil {
		meta.Extra = map[string]string{}
	}
	meta.Extra["pg_format"] = s.cfg.format()
	meta.Extra["database"] = db
	if facts.encoding != "" {
		meta.Extra["encoding"] = facts.encoding
	}
	if facts.createsPublic {
		meta.Extra["creates_public_schema"] = "true"
	}
	return nil
}

// dumpArgs is pg_dump's argv (https://www.postgresql.org/docs/current/app-pgdump.html).
func (s *Source) dumpArgs(snapshot string) []string {
	args := []string{"--no-password", "--format=" + s.cfg.format()}
	if snapshot != "" {
		args = append(args, "--snapshot="+snapshot)
	}
	if s.cfg.format() == "custom" {
		// lifeboat compresses the stream itself; compressing twice costs CPU
		// and hides the data from zstd.
		args = append(args, "--compress=0")
	} else {
		// A plain dump is replayed by psql, which cannot skip ownership the
		// way pg_restore --no-owner does.
		args = append(args, "--no-owner")
	}
	for _, l := range []struct {
		flag string
		pats []string
	}{{"--table=", s.cfg.IncludeTables}, {"--exclude-table=", s.cfg.ExcludeTables},
		{"--schema=", s.cfg.IncludeSchemas}, {"--exclude-schema=", s.cfg.ExcludeSchemas}} {
		for _, p := range l.pats {
			args = append(args, l.flag+p)
		}
	}
	return append(args, "--dbname="+s.p.conninfo())
}

// dumpGlobals writes roles and tablespaces (pg_dumpall --globals-only).
func (s *Source) dumpGlobals(ctx context.Context, w io.Writer, meta *source.Meta) error {
	tool, err := findTool("pg_dumpall", s.binDir)
	if err != nil {
		return err
	}
	env := s.p.env(s.d.Env)
	ver, major, err := toolVersion(ctx, tool, env)
	if err != nil {
		return err
	}
	conn, err := s.p.connectMaintenance(ctx, s.d.Env)
	if err != nil {
		return err
	}
	si, err := readServerInfo(ctx, conn)
	conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return err
	}
	if err := checkVersion(major, VersionError{Tool: "pg_dumpall", ToolVersion: ver, Path: tool,
		Of: "the server (PostgreSQL " + si.shortVersion() + ")", Verb: "dump", NeedMajor: si.major()}); err != nil {
		return err
	}
	args := []string{"--globals-only", "--no-password", "--database=" + si.database}
	if !si.superuser {
		// Password hashes live in pg_authid, which only superusers read.
		args = append(args, "--no-role-passwords")
		meta.Warnings = append(meta.Warnings,
			"role passwords are not in the globals dump: the backup user is not a superuser; set them again after restoring roles")
	}
	args = append(args, "--dbname="+s.p.withDB(si.database).conninfo())
	if err := source.Run(ctx, source.Command{Path: tool, Args: args, BaseEnv: env, Stdout: w}); err != nil {
		return fmt.Errorf("dump roles and tablespaces of %s: %w", s.p.where(), err)
	}
	meta.ToolVersions = map[string]string{"pg_dumpall": ver}
	meta.ServerVersion = si.shortVersion()
	meta.Identity = "postgres:" + si.sysID
	if meta.Extra == nil {
		meta.Extra = map[string]string{}
	}
	meta.Extra["pg_format"] = GlobalsPart
	return nil
}

// Parts implements source.Expander: the globals part first, then one part
// per database that accepts connections and is not a template.
func (c *Cluster) Parts(ctx context.Context) ([]source.Part, error) {
	dbs, err := c.databases(ctx)
	if err != nil {
		return nil, err
	}
	g := *c.Source
	g.globals = true
	parts := []source.Part{{Name: GlobalsPart, Source: &g}}
	used := map[string]bool{GlobalsPart: true}
	for _, db := range dbs {
		parts = append(parts, source.Part{Name: partName(db, used), Source: c.forDB(db)})
	}
	return parts, nil
}

// databases lists the server's databases that a whole-server backup covers.
func (s *Source) databases(ctx context.Context) ([]string, error) {
	conn, err := s.p.connectMaintenance(ctx, s.d.Env)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_catalog.pg_database
		WHERE NOT datistemplate AND datallowconn ORDER BY datname`)
	if err != nil {
		return nil, fmt.Errorf("list databases on %s: %w", s.p.where(), err)
	}
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list databases on %s: %w", s.p.where(), err)
	}
	return dbs, nil
}

// partName makes a part name ([a-z0-9_-], starting with a letter or digit)
// from a database name, unique among used.
func partName(db string, used map[string]bool) string {
	var b strings.Builder
	for _, r := range strings.ToLower(db) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name := strings.TrimLeft(b.String(), "_-")
	if len(name) > 56 {
		name = name[:56]
	}
	if name == "" {
		name = "db"
	}
	base := name
	for i := 2; used[name]; i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	used[name] = true
	return name
}
