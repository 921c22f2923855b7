package mysql

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lifeboat-backup/lifeboat/internal/source"
)

// systemSchemas are never backed up by `database: all` and never restored into.
func systemSchemas() []string {
	return []string{"mysql", "sys", "information_schema", "performance_schema"}
}

func isSystemSchema(name string) bool {
	return slices.Contains(systemSchemas(), strings.ToLower(name)) || strings.HasPrefix(name, "#mysql50#")
}

// server is what lifeboat learns about a server when it connects.
type server struct {
	version string // @@version, "10.11.19-MariaDB-0+deb12u1" or "8.0.36"
	mariadb bool
	id      string // see serverID
}

// readServer reads the server's version and identity.
func readServer(ctx context.Context, db *sql.DB) (server, error) {
	var s server
	var hostname, datadir, sid string
	err := db.QueryRowContext(ctx, "SELECT @@version, @@hostname, @@datadir, @@server_id").
		Scan(&s.version, &hostname, &datadir, &sid)
	if err != nil {
		return s, fmt.Errorf("read server version: %w", err)
	}
	s.mariadb = strings.Contains(s.version, "MariaDB")
	var name, uuid string
	err = db.QueryRowContext(ctx, `SHOW GLOBAL VARIABLES LIKE 'server\_uuid'`).Scan(&name, &uuid)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("read server_uuid: %w", err)
	}
	s.id = serverID(uuid, hostname, datadir, sid)
	return s, nil
}

// serverID identifies a server independently of how it is reached.
//
// MySQL has @@server_uuid, generated once per data directory and kept in
// auto.cnf: the identity is that UUID. MariaDB has no such thing (its
// server_uid variable is a hash of a MAC address and the port, so it changes
// with the network card and collides between containers). The identity of a
// MariaDB server is "mariadb-" and the first 128 bits of
// sha256(@@hostname NUL @@datadir NUL @@server_id): the same through TCP,
// the socket or a tunnel, distinct for two servers on one host (different
// data directories) and for servers on different hosts (different host
// names). It changes when the host is renamed or the data directory moves,
// which makes lifeboat treat the server as a new one; restore then still
// refuses a non-empty target without --force.
func serverID(uuid, hostname, datadir, serverID string) string {
	if uuid != "" {
		return uuid
	}
	h := sha256.Sum256([]byte(hostname + "\x00" + filepath.Clean(datadir) + "\x00" + serverID))
	return "mariadb-" + hex.EncodeToString(h[:16])
}

// identity is Meta.Identity for a schema of s.
func (s server) identity(schema string) string {
	return "mysql:" + s.id + "/" + schema
}

// describe names the server for people: "MariaDB 10.11.19 at 127.0.0.1:3306".
func (s server) describe(e endpoint) string {
	v, _, _ := strings.Cut(s.version, "-")
	if s.mariadb {
		return "MariaDB " + v + " at " + e.String()
	}
	return "MySQL " + v + " at " + e.String()
}

// tool is a client program found on the machine.
type tool struct {
	path    string
	name    string // base name, the key in Meta.ToolVersions
	version string // "10.11.19-MariaDB", "8.0.36"
	mariadb bool
}

// findTool finds the configured program, or the first of candidates on PATH.
// It runs `--version` to learn what it is.
func findTool(ctx context.Context, s *Source, configured string, candidates []string, pkg string) (tool, error) {
	var path string
	if configured != "" {
		path = configured
		if strings.Contains(configured, "/") {
			path = s.deps.Path(configured)
		}
		p, err := source.LookPath(path, pkg)
		if err != nil {
			return tool{}, err
		}
		path = p
	} else {
		var err error
		for _, c := range candidates {
			if path, err = source.LookPath(c, pkg); err == nil {
				break
			}
		}
		if err != nil {
			return tool{}, &source.MissingToolError{Tool: strings.Join(candidates, " or "), Package: pkg}
		}
	}
	out, err := source.Output(ctx, source.Command{Path: path, Args: []string{"--version"}, BaseEnv: s.baseEnv()})
	if err != nil {
		return tool{}, fmt.Errorf("run %s --version: %w", path, err)
	}
	t := tool{path: path, name: filepath.Base(path)}
	t.version, t.mariadb = parseToolVersion(out)
	return t, nil
}

// parseToolVersion reads the version from a client's --version line:
//
//	mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)
//	mariadb-dump from 11.4.2-MariaDB, client 10.19 for debian-linux-gnu (x86_64)
//	mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)
func parseToolVersion(out string) (string, bool) {
	line, _, _ := strings.Cut(out, "\n")
	mariadb := strings.Contains(line, "MariaDB")
	for _, marker := range []string{" Distrib ", " from ", " Ver "} {
		if _, rest, ok := strings.Cut(line, marker); ok {
			v, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
			return strings.TrimSuffix(v, ","), mariadb
		}
	}
	return strings.TrimSpace(line), mariadb
}
