package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"strings"

	"github.com/lifeboat-backup/lifeboat/internal/doctor"
	"github.com/lifeboat-backup/lifeboat/internal/source"
)

// Doctor implements doctor.Checker. It connects, reads grants and schema
// metadata, and runs the dump tool with --no-data; it changes nothing.
func (s *Source) Doctor(ctx context.Context) []doctor.Finding {
	subject := "source " + s.deps.Name
	var fs []doctor.Finding
	add := func(l doctor.Level, hint, format string, args ...any) {
		fs = append(fs, doctor.Finding{Level: l, Subject: subject, Msg: fmt.Sprintf(format, args...), Hint: hint})
	}
	const installHint = "install the client tools: apt-get install mariadb-client (or your distribution's mysql-client)"

	dump, dumpErr := findTool(ctx, s, s.cfg.Tool, []string{"mariadb-dump", "mysqldump"}, "mariadb-client")
	if dumpErr != nil {
		add(doctor.Fail, installHint, "dump tool: %v", dumpErr)
	}
	if _, err := findTool(ctx, s, s.cfg.Client, []string{"mariadb", "mysql"}, "mariadb-client"); err != nil {
		add(doctor.Warn, installHint, "restores need the mysql client: %v", err)
	}

	db, err := s.ep.connect(ctx, "")
	if err != nil {
		add(doctor.Fail, "check host, port, socket, user and password; try the same with `mysql -h HOST -P PORT -u USER -p`", "%v", err)
		return fs
	}
	defer db.Close()
	srv, err := readServer(ctx, db)
	if err != nil {
		add(doctor.Fail, "", "%v", err)
		return fs
	}
	add(doctor.OK, "", "connected to %s as %s", srv.describe(s.ep), s.ep.user)
	if dumpErr == nil {
		if dump.mariadb != srv.mariadb {
			add(doctor.Warn, "use the dump tool of the server's own family (`tool:` names it)",
				"dump tool %s %s is not from the server's family (%s)", dump.name, dump.version, srv.version)
		} else {
			add(doctor.OK, "", "dump tool %s %s", dump.name, dump.version)
		}
	}

	databases := []string{s.database}
	if s.database == AllDatabases {
		if databases, err = listDatabases(ctx, db); err != nil {
			add(doctor.Fail, "", "%v", err)
			return fs
		}
		add(doctor.OK, "", "%d databases to back up: %s", len(databases), strings.Join(databases, ", "))
	}

	grants, err := showGrants(ctx, db)
	if err != nil {
		add(doctor.Warn, "", "cannot read the account's grants: %v", err)
	} else {
		fs = append(fs, s.privilegeFindings(subject, grants, srv)...)
	}

	for _, name := range databases {
		fs = append(fs, s.forDatabase(name).databaseFindings(ctx, subject, db, dump, dumpErr == nil, srv)...)
	}
	return fs
}

func showGrants(ctx context.Context, db *sql.DB) ([]grant, error) {
	rows, err := db.QueryContext(ctx, "SHOW GRANTS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []grant
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, err
		}
		if g, ok := parseGrant(line); ok {
			out = append(out, g)
		}
	}
	return out, rows.Err()
}

// privilegeFindings says whether the account can change what it backs up,
// and whether it can read stored routines.
func (s *Source) privilegeFindings(subject string, grants []grant, srv server) []doctor.Finding {
	var fs []doctor.Finding
	scope := s.database
	if s.database == AllDatabases {
		scope = ""
	}
	dbPattern := quoteIdent(s.database) + ".*"
	if scope == "" {
		dbPattern = "*.*"
	}
	readOnly := fmt.Sprintf("create a read-only account for backups: CREATE USER 'lifeboat'@'%%' IDENTIFIED BY '...'; "+
		"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON %s TO 'lifeboat'@'%%'", dbPattern)
	if w := writes(grants, scope); len(w) > 0 {
		fs = append(fs, doctor.Finding{Level: doctor.Warn, Subject: subject, Hint: readOnly,
			Msg: fmt.Sprintf("user %s can change the data it backs up (%s): a leaked backup config gives write access", s.ep.user, strings.Join(w, ", "))})
	} else {
		fs = append(fs, doctor.Finding{Level: doctor.OK, Subject: subject,
			Msg: fmt.Sprintf("user %s has no write privileges on what it backs up", s.ep.user)})
	}
	if !canReadRoutines(grants, scope) {
		hint := fmt.Sprintf("GRANT SELECT ON mysql.proc TO the backup user (MariaDB 11.3 and later: GRANT SHOW CREATE ROUTINE ON %s)", dbPattern)
		if !srv.mariadb {
			hint = "GRANT SHOW_ROUTINE ON *.* TO the backup user"
		}
		fs = append(fs, doctor.Finding{Level: doctor.Warn, Subject: subject, Hint: hint,
			Msg: fmt.Sprintf("user %s cannot read stored procedures and functions it does not own; the dump would leave them out without an error", s.ep.user)})
	}
	return fs
}

// databaseFindings checks one database: it exists, its tables can be dumped
// consistently, the dump tool can read its schema, and schema_version runs.
func (s *Source) databaseFindings(ctx context.Context, subject string, db *sql.DB, dump tool, haveTool bool, srv server) []doctor.Finding {
	var fs []doctor.Finding
	add := func(l doctor.Level, hint, format string, args ...any) {
		fs = append(fs, doctor.Finding{Level: l, Subject: subject, Msg: fmt.Sprintf(format, args...), Hint: hint})
	}
	sc, err := readSchema(ctx, db, s.database)
	switch {
	case err != nil:
		add(doctor.Fail, "", "%v", err)
		return fs
	case !sc.exists:
		add(doctor.Fail, "check the database name, and that the user has privileges on it",
			"database %s does not exist on %s, or user %s cannot see it", s.database, srv.describe(s.ep), s.ep.user)
		return fs
	}
	tables, err := s.selectTables(sc.tables)
	if err != nil {
		add(doctor.Fail, "fix include_tables", "%v", err)
		return fs
	}
	if nt := nonTransactional(tables); len(nt) > 0 {
		if s.allowNonTx {
			add(doctor.Warn, "convert them with ALTER TABLE ... ENGINE=InnoDB",
				"database %s: tables without transactions are copied without a consistent snapshot: %s", s.database, strings.Join(nt, ", "))
		} else {
			add(doctor.Fail, "convert them with ALTER TABLE ... ENGINE=InnoDB, leave them out with exclude_tables, or set allow_non_transactional: true",
				"database %s has tables without transactions, which a dump cannot copy consistently while the application writes: %s",
				s.database, strings.Join(nt, ", "))
		}
	}
	add(doctor.OK, "", "database %s: %s", s.database, sc.summary())

	if haveTool {
		if err := s.schemaOnlyDump(ctx, dump, srv); err != nil {
			add(doctor.Fail, "grant the backup user SELECT, SHOW VIEW, TRIGGER, EVENT and LOCK TABLES on the database",
				"database %s: the dump tool cannot read the schema: %v", s.database, err)
		} else {
			add(doctor.OK, "", "database %s: %s can read the schema, views, triggers, routines and events", s.database, dump.name)
		}
	}

	if s.cfg.SchemaVersion != "" {
		conn, err := db.Conn(ctx)
		if err == nil {
			defer conn.Close()
			_, err = conn.ExecContext(ctx, "USE "+quoteIdent(s.database))
		}
		var v string
		if err == nil {
			v, err = queryOne(ctx, conn, s.cfg.SchemaVersion)
		}
		if err != nil {
			add(doctor.Warn, "fix the schema_version query; backups go on without it", "database %s: schema_version query failed: %v", s.database, err)
		} else {
			add(doctor.OK, "", "database %s: schema version %q", s.database, v)
		}
	}
	return fs
}

// schemaOnlyDump runs the dump with --no-data into nothing: it needs the same
// privileges as the real dump, except reading rows.
func (s *Source) schemaOnlyDump(ctx context.Context, dump tool, srv server) error {
	opt, cleanup, err := s.ep.optionFile()
	if err != nil {
		return err
	}
	defer cleanup()
	args := append(opt, s.ep.connArgs()...)
	args = append(args, "--no-data")
	_, exclude := s.tableFilter()
	args = append(args, dumpArgs(dump, srv, s.database, nil, exclude)...)
	return source.Run(ctx, source.Command{Path: dump.path, Args: args, Stdout: io.Discard, BaseEnv: s.baseEnv()})
}
