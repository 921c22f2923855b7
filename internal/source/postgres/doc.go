// Package postgres backs up PostgreSQL databases with pg_dump and restores
// them with pg_restore or psql.
//
// # Snapshot
//
// A dump is taken in one snapshot: lifeboat opens a REPEATABLE READ, READ
// ONLY transaction, exports its snapshot (pg_export_snapshot) and runs
// `pg_dump --snapshot=ID` while the transaction stays open. In the same
// transaction it counts every dumped table's rows exactly, reads the
// database size and the configured schema_version query. So the manifest's
// row counts describe exactly the rows in the dump, however busy the
// database is (Meta.RowCountsTaken is "same snapshot").
//
// # Formats
//
// `custom` (the default) is pg_dump's archive format with pg_dump's own
// compression off (-Z0; lifeboat compresses the stream). It restores with
// pg_restore, in parallel when jobs > 1. `plain` is SQL, dumped with
// --no-owner, and restores with psql in one transaction.
//
// # Whole servers
//
// With `database: all` the source expands into one part per database that
// accepts connections and is not a template, named after the database, plus
// a part named `globals` holding roles and tablespaces
// (`pg_dumpall --globals-only`; role passwords only when the backup user is a
// superuser).
//
// # Identity
//
// A database is identified as postgres:SYSTEM_IDENTIFIER/DATABASE, where the
// system identifier is the cluster's (pg_control_system()). It is the same
// whether the server is reached by 127.0.0.1, a hostname or a unix socket,
// so restore can recognise the database a backup was taken from.
//
// # Secrets
//
// The password reaches pg_dump, pg_restore and psql only as PGPASSWORD in
// their environment, never in argv. Without a configured password the tools
// read ~/.pgpass or PGPASSFILE as usual, and so does lifeboat's own
// connection.
package postgres
