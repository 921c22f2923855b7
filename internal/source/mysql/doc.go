// Package mysql backs up and restores MySQL and MariaDB databases with the
// servers' own dump tool (mariadb-dump or mysqldump) and client.
//
// # Dump
//
// A dump is the SQL text of one database, without CREATE DATABASE or USE, so
// it restores under any name. mysqldump runs with --single-transaction: one
// REPEATABLE READ snapshot, consistent for InnoDB tables while the
// application keeps writing. Tables of other engines (MyISAM, Aria, MEMORY)
// are not covered by that snapshot, so the dump refuses to start when any
// table to be dumped uses one, naming them ([NonTransactionalError]), unless
// allow_non_transactional is set. Routines, triggers and events are
// included; binary columns are written as hex.
//
// Before the dump, in a START TRANSACTION WITH CONSISTENT SNAPSHOT of its
// own, the source counts every table's rows and runs the schema_version
// query. Neither MySQL nor MariaDB can hand that snapshot to mysqldump, so the
// counts are recorded as taken "before dump": consistent among themselves,
// a moment older than the dump.
//
// With `database: all`, [Source.Parts] lists every database except mysql,
// sys, information_schema and performance_schema, and each is backed up as
// its own part. Users and grants are not part of any dump.
//
// # Credentials
//
// The password reaches the tools only through a 0600 option file in a
// private temporary directory, named by --defaults-extra-file and removed
// when the tool exits; never through argv or the environment. Host, port,
// socket and user are passed as arguments, which win over any my.cnf. Without
// a password in the config the tools read ~/.my.cnf as usual (and the
// metadata queries connect without a password, as for socket
// authentication). The tools read ~/.my.cnf after the option file, so a
// password there wins over the configured one. Children get a minimal
// environment ([source.MinimalEnv]).
//
// # Identity
//
// Meta.Identity is "mysql:<server>/<database>". On MySQL <server> is
// @@server_uuid. MariaDB has no server UUID; <server> is "mariadb-" and a
// hash of @@hostname, @@datadir and @@server_id (see serverID for why these),
// the same whether the server is reached by TCP, socket or tunnel.
//
// # Restore
//
// A restore target is a database name on the source's server, or
// mysql://USER@HOST:PORT/DATABASE (or ?socket=PATH) for another server; the
// source's password is used only when the target is the same server and
// account. Restore creates the database if missing, with the source
// database's character set and collation, and streams the dump into the
// client with --database; the client stops at the first failing statement.
// Objects keep their DEFINER, so restoring views, routines and triggers
// defined by another account needs SUPER (MariaDB) or SET_USER_ID /
// SYSTEM_USER (MySQL).
package mysql
