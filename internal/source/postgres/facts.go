package postgres

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"github.com/jackc/pgx/v5"
)

// facts are what the dump's snapshot says about the database.
type facts struct {
	rows          map[string]int64 // "schema.table" → exact row count
	size          int64
	schemaVersion string
	encoding      string
	createsPublic bool
	warnings      []string
}

// readFacts reads, in tx's snapshot, the row count of every table pg_dump
// dumps, the database size and encoding, and the schema version.
func (s *Source) readFacts(ctx context.Context, tx pgx.Tx) (facts, error) {
	f := facts{rows: map[string]int64{}}
	if err := tx.QueryRow(ctx, `SELECT pg_catalog.pg_database_size(d.oid), pg_catalog.pg_encoding_to_char(d.encoding)
		FROM pg_catalog.pg_database d WHERE d.datname = current_database()`).Scan(&f.size, &f.encoding); err != nil {
		return f, fmt.Errorf("read database size: %w", err)
	}
	sql, args := s.tablesQuery()
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return f, fmt.Errorf("list tables: %w", err)
	}
	type table struct{ schema, name string }
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) {
		var t table
		return t, r.Scan(&t.schema, &t.name)
	})
	if err != nil {
		return f, fmt.Errorf("list tables: %w", err)
	}
	// One round trip for all counts.
	var b pgx.Batch
	for _, t := range tables {
		b.Queue("SELECT count(*) FROM " + pgx.Identifier{t.schema, t.name}.Sanitize())
	}
	br := tx.SendBatch(ctx, &b)
	for _, t := range tables {
		var n int64
		if err := br.QueryRow().Scan(&n); err != nil {
			br.Close()
			return f, fmt.Errorf("count rows of %s.%s: %w", t.schema, t.name, err)
		}
		f.rows[t.schema+"."+t.name] = n
	}
	if err := br.Close(); err != nil {
		return f, fmt.Errorf("count rows: %w", err)
	}
	if f.createsPublic, err = s.createsPublicSchema(ctx, tx); err != nil {
		return f, fmt.Errorf("match schema patterns: %w", err)
	}

	if q := strings.TrimSpace(s.cfg.SchemaVersion); q != "" {
		v, err := schemaVersion(ctx, tx, q)
		if err != nil {
			if ctx.Err() != nil {
				return f, err
			}
			f.warnings = append(f.warnings, "schema_version query failed: "+err.Error())
		}
		f.schemaVersion = v
	}
	return f, nil
}

// schemaVersion runs the user's query in a savepoint, so that a failing query
// does not abort the snapshot transaction, and returns the first column of
// the first row as PostgreSQL prints it.
func schemaVersion(ctx context.Context, tx pgx.Tx, q string) (string, error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return "", err
	}
	// The simple protocol returns values as text, whatever their type.
	rows, err := sp.Query(ctx, q, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		sp.Rollback(ctx)
		return "", err
	}
	v, null := "", true
	if rows.Next() {
		if raw := rows.RawValues(); len(raw) > 0 && raw[0] != nil {
			v, null = string(raw[0]), false
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		sp.Rollback(ctx)
		return "", err
	}
	if err := sp.Commit(ctx); err != nil {
		return "", err
	}
	if null {
		return "", fmt.Errorf("it returned no value")
	}
	return v, nil
}

// filterSQL builds SQL conditions for pg_dump patterns, numbering the
// arguments it collects.
type filterSQL struct{ args []any }

// match is true for relations (c, in schema n) matching any of pats, or for
// schemas (n) when schemaOnly.
func (f *filterSQL) match(pats []string, schemaOnly bool) string {
	var ors []string
	for _, p := range pats {
		schema, name := patternRegexes(p)
		if schemaOnly {
			// A schema pattern has one part: what patternRegexes calls the
			// name.
			f.args = append(f.args, name)
			ors = append(ors, fmt.Sprintf("n.nspname ~ $%d", len(f.args)))
			continue
		}
		f.args = append(f.args, name)
		cond := fmt.Sprintf("c.relname ~ $%d", len(f.args))
		if schema != "" {
			f.args = append(f.args, schema)
			cond += fmt.Sprintf(" AND n.nspname ~ $%d", len(f.args))
		} else {
			// pg_dump resolves an unqualified name through the default
			// search_path.
			cond += " AND pg_catalog.pg_table_is_visible(c.oid)"
		}
		ors = append(ors, "("+cond+")")
	}
	return "(" + strings.Join(ors, " OR ") + ")"
}

// schemaConds selects the schemas pg_dump dumps when no table is included.
func (s *Source) schemaConds(f *filterSQL) []string {
	var where []string
	if len(s.cfg.IncludeSchemas) > 0 {
		where = append(where, f.match(s.cfg.IncludeSchemas, true))
	}
	if len(s.cfg.ExcludeSchemas) > 0 {
		where = append(where, "NOT "+f.match(s.cfg.ExcludeSchemas, true))
	}
	return where
}

// tablesQuery lists the ordinary tables whose data pg_dump dumps with the
// configured patterns, following pg_dump's rules: --table selects tables
// regardless of --schema and --exclude-schema; otherwise tables of the
// included (or all) schemas not excluded; --exclude-table applies in both
// cases. Extension member tables are left out, as pg_dump leaves out their
// data. Partitioned tables hold no rows themselves; their partitions count.
func (s *Source) tablesQuery() (string, []any) {
	return s.relationsQuery("'r'")
}

// relationsQuery lists the relations of the given kinds that pg_dump dumps,
// as tablesQuery does for tables; extra conditions are ANDed.
func (s *Source) relationsQuery(relkinds string, extra ...string) (string, []any) {
	var f filterSQL
	where := []string{
		"c.relkind IN (" + relkinds + ")",
		"n.nspname !~ '^pg_'",
		"n.nspname <> 'information_schema'",
		`NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::regclass
			AND d.objid = c.oid AND d.deptype = 'e')`,
	}
	if len(s.cfg.IncludeTables) > 0 {
		where = append(where, f.match(s.cfg.IncludeTables, false))
	} else {
		where = append(where, s.schemaConds(&f)...)
	}
	if len(s.cfg.ExcludeTables) > 0 {
		where = append(where, "NOT "+f.match(s.cfg.ExcludeTables, false))
	}
	where = append(where, extra...)
	return `SELECT n.nspname, c.relname FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE ` + strings.Join(where, "\n\t\tAND ") + `
		ORDER BY 1, 2`, f.args
}

// createsPublicSchema reports whether the dump has CREATE SCHEMA public:
// pg_dump writes it when --schema selects public explicitly, and it fails
// against the public schema every new database has.
func (s *Source) createsPublicSchema(ctx context.Context, q querier) (bool, error) {
	if len(s.cfg.IncludeSchemas) == 0 || len(s.cfg.IncludeTables) > 0 {
		return false, nil
	}
	var f filterSQL
	where := append([]string{"n.nspname = 'public'"}, s.schemaConds(&f)...)
	var yes bool
	err := q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE "+
		strings.Join(where, " AND ")+")", f.args...).Scan(&yes)
	return yes, err
}

// patternRegexes converts a psql pattern (as pg_dump --table takes it) into
// anchored PostgreSQL regular expressions for the schema (empty when the
// pattern names none) and the name, as psql's processSQLNamePattern does:
// outside double quotes letters fold to lower case, * and ? are wildcards,
// . separates schema from name and $ is literal; inside double quotes every
// character is literal. A leading database part is ignored.
func patternRegexes(pat string) (schema, name string) {
	parts := []*strings.Builder{{}}
	cur := parts[0]
	inQuotes := false
	rs := []rune(pat)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case c == '"':
			if inQuotes && i+1 < len(rs) && rs[i+1] == '"' {
				cur.WriteRune('"')
				i++
			} else {
				inQuotes = !inQuotes
			}
		case inQuotes:
			if strings.ContainsRune(`|*+?()[]{}.^$\`, c) {
				cur.WriteRune('\\')
			}
			cur.WriteRune(c)
		case c == '.':
			cur = &strings.Builder{}
			parts = append(parts, cur)
		case c == '*':
			cur.WriteString(".*")
		case c == '?':
			cur.WriteRune('.')
		case c == '$':
			cur.WriteString(`\$`)
		default:
			cur.WriteRune(unicode.ToLower(c))
		}
	}
	anchor := func(b *strings.Builder) string { return "^(" + b.String() + ")$" }
	name = anchor(parts[len(parts)-1])
	if len(parts) > 1 {
		schema = anchor(parts[len(parts)-2])
	}
	return schema, name
}
