package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/lifeboat-backup/lifeboat/internal/doctor"
)

// Doctor implements doctor.Checker: the dump tool is installed and not older
// than the server, the server is reachable, and the backup user cannot write
// (not a superuser; no INSERT, UPDATE, DELETE or TRUNCATE on any table; no
// CREATE on any schema). It changes nothing.
func (s *Source) Doctor(ctx context.Context) []doctor.Finding {
	subject := "source " + s.d.Name
	var out []doctor.Finding
	add := func(l doctor.Level, hint, format string, args ...any) {
		out = append(out, doctor.Finding{Level: l, Subject: subject, Msg: fmt.Sprintf(format, args...), Hint: hint})
	}

	toolName := "pg_dump"
	if s.IsCluster() || s.globals {
		toolName = "pg_dumpall"
	}
	tool, err := findTool(toolName, s.binDir)
	if err != nil {
		add(doctor.Fail, "install "+clientPackage+" (apt-get install "+clientPackage+"), or set bin_dir", "%v", err)
		return out
	}
	ver, major, err := toolVersion(ctx, tool, s.p.env(s.d.Env))
	if err != nil {
		add(doctor.Fail, "check that "+tool+" runs", "%v", err)
		return out
	}

	var conn *pgx.Conn
	if s.IsCluster() || s.globals {
		conn, err = s.p.connectMaintenance(ctx, s.d.Env)
	} else {
		conn, err = s.p.connect(ctx, s.d.Env)
	}
	if err != nil {
		add(doctor.Fail, "check host, port, user and database, and the password (password: ${env:...}, or ~/.pgpass / PGPASSFILE)", "%v", err)
		return out
	}
	defer conn.Close(context.WithoutCancel(ctx))
	si, err := readServerInfo(ctx, conn)
	if err != nil {
		add(doctor.Fail, "", "%v", err)
		return out
	}
	var ve *VersionError
	if err := checkVersion(major, VersionError{Tool: toolName, ToolVersion: ver, Path: tool,
		Of: "the server (PostgreSQL " + si.shortVersion() + ")", Verb: "dump", NeedMajor: si.major()}); errors.As(err, &ve) {
		add(doctor.Fail, "install "+ve.Package()+" (from apt.postgresql.org if your distribution does not have it), or set bin_dir",
			"%v", err)
	} else {
		add(doctor.OK, "", "%s %s can dump PostgreSQL %s on %s", toolName, ver, si.shortVersion(), s.p.where())
	}

	user := conn.Config().User
	hint := readOnlyHint(si.major())
	if si.superuser {
		add(doctor.Warn, hint, "user %q is a superuser: these backup credentials could change or delete production data", user)
		return out
	}
	dbs := []string{s.p.db()}
	if s.IsCluster() || s.globals {
		if dbs, err = s.databases(ctx); err != nil {
			add(doctor.Warn, "", "could not list databases to check privileges: %v", err)
			return out
		}
	}
	readOnly, cannotRead := true, false
	for _, db := range dbs {
		c := conn
		if db != si.database {
			if c, err = s.p.withDB(db).connect(ctx, s.d.Env); err != nil {
				add(doctor.Warn, "", "could not check privileges in database %q: %v", db, err)
				readOnly = false
				continue
			}
		}
		tables, schemas, err := writePrivileges(ctx, c)
		var unreadable []string
		if err == nil {
			unreadable, err = s.unreadable(ctx, c)
		}
		if c != conn {
			c.Close(context.WithoutCancel(ctx))
		}
		if err != nil {
			add(doctor.Warn, "", "could not check privileges in database %q: %v", db, err)
			readOnly = false
			continue
		}
		if len(unreadable) > 0 {
			cannotRead = true
			add(doctor.Fail, "grant the backup user SELECT on them: GRANT pg_read_all_data TO "+quoteIdent(user)+
				"; (PostgreSQL 14+), or GRANT SELECT ON ALL TABLES / ALL SEQUENCES IN SCHEMA ...; or exclude them with exclude_tables",
				"user %q cannot read %d tables or sequences in database %q (%s): pg_dump would fail", user, len(unreadable), db, sample(unreadable))
		}
		if len(tables) > 0 {
			readOnly = false
			add(doctor.Warn, hint, "user %q can INSERT, UPDATE, DELETE or TRUNCATE %d tables in database %q (%s): "+
				"these backup credentials could change production data", user, len(tables), db, sample(tables))
		}
		if len(schemas) > 0 {
			readOnly = false
			add(doctor.Warn, hint, "user %q can CREATE in %d schemas of database %q (%s): "+
				"these backup credentials could change production data", user, len(schemas), db, sample(schemas))
		}
	}
	if readOnly && !cannotRead {
		add(doctor.OK, "", "user %q is read-only (no superuser, no write privileges, no CREATE on schemas)", user)
	}
	return out
}

// writePrivileges lists the tables the current user may write to and the
// schemas it may create objects in. Column-level grants count.
func writePrivileges(ctx context.Context, conn *pgx.Conn) (tables, schemas []string, err error) {
	rows, err := conn.Query(ctx, `SELECT format('%I.%I', n.nspname, c.relname)
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
		AND (pg_catalog.has_any_column_privilege(c.oid, 'INSERT') OR pg_catalog.has_any_column_privilege(c.oid, 'UPDATE')
			OR pg_catalog.has_table_privilege(c.oid, 'DELETE') OR pg_catalog.has_table_privilege(c.oid, 'TRUNCATE'))
		ORDER BY 1`)
	if err != nil {
		return nil, nil, err
	}
	if tables, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return nil, nil, err
	}
	rows, err = conn.Query(ctx, `SELECT format('%I', nspname) FROM pg_catalog.pg_namespace
		WHERE nspname !~ '^pg_' AND nspname <> 'information_schema' AND pg_catalog.has_schema_privilege(oid, 'CREATE')
		ORDER BY 1`)
	if err != nil {
		return nil, nil, err
	}
	schemas, err = pgx.CollectRows(rows, pgx.RowTo[string])
	return tables, schemas, err
}

// unreadable lists the tables and sequences pg_dump would dump but the
// current user may not SELECT from.
func (s *Source) unreadable(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	q, args := s.relationsQuery("'r', 'S'", "NOT pg_catalog.has_table_privilege(c.oid, 'SELECT')")
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var schema, name string
		err := r.Scan(&schema, &name)
		return schema + "." + name, err
	})
}

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

func sample(names []string) string {
	if len(names) > 3 {
		return strings.Join(names[:3], ", ") + ", ..."
	}
	return strings.Join(names, ", ")
}

// readOnlyHint says how to make a read-only backup role.
func readOnlyHint(serverMajor int) string {
	if serverMajor >= 1400 {
		return "back up as a read-only role: CREATE ROLE lifeboat LOGIN PASSWORD '...'; GRANT pg_read_all_data TO lifeboat;"
	}
	return "back up as a read-only role: CREATE ROLE lifeboat LOGIN PASSWORD '...'; then in each schema " +
		"GRANT USAGE ON SCHEMA s TO lifeboat; GRANT SELECT ON ALL TABLES IN SCHEMA s TO lifeboat; GRANT SELECT ON ALL SEQUENCES IN SCHEMA s TO lifeboat;"
}
