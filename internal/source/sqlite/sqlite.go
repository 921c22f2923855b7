// Package sqlite backs up and restores SQLite database files.
//
// # Snapshot
//
// The dump is a byte image of the database file taken inside one read
// transaction, page by page, through SQLite's sqlite_dbpage virtual table.
// The read transaction pins a snapshot (in WAL mode writers carry on; in
// rollback mode they wait), so the image is consistent however busy the
// database is, and it streams: nothing is staged on disk. The image is a
// normal database file: `sqlite3 restored.db` opens it.
//
// Row counts and the schema version are read in the same transaction.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/source"
	"github.com/lifeboat-backup/lifeboat/internal/source/files"
)

// Config is the `type: sqlite` source configuration.
type Config struct {
	Path string `yaml:"path"`
	// SchemaVersion is SQL returning one value recorded in the manifest
	// (for example `SELECT max(version) FROM schema_migrations`).
	SchemaVersion string `yaml:"schema_version"`
}

// Validate implements config.Spec.
func (c *Config) Validate() error {
	if c.Path == "" {
		return config.Errorf("path", "for example `path: ./app.db`", "path is required")
	}
	return nil
}

// Describe says what the source is, for `lifeboat explain`.
func (c *Config) Describe(dir string) string {
	return "SQLite database " + config.Abs(dir, c.Path) + ", a consistent snapshot taken while it stays online"
}

// Source is a SQLite database file.
type Source struct {
	cfg  Config
	path string // absolute
}

var (
	_ source.Source   = (*Source)(nil)
	_ source.Restorer = (*Source)(nil)
)

// New returns the source for cfg.
func New(cfg *Config, d source.Deps) (*Source, error) {
	p, err := filepath.Abs(d.Path(cfg.Path))
	if err != nil {
		return nil, err
	}
	return &Source{cfg: *cfg, path: p}, nil
}

func (s *Source) Format() string { return "sqlite" }

// Path is the absolute path of the database file.
func (s *Source) Path() string { return s.path }

// Open opens a database file with a busy timeout; ro opens it read-only.
func Open(path string, ro bool) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	if ro {
		q.Add("mode", "ro")
	}
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// Dump streams a consistent image of the database file into w.
func (s *Source) Dump(ctx context.Context, w io.Writer, meta *source.Meta) error {
	fi, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("open sqlite database: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a file", s.path)
	}
	db, err := Open(s.path, false)
	if err != nil {
		return fmt.Errorf("open sqlite database %s: %w", s.path, err)
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read transaction on %s: %w", s.path, err)
	}
	defer tx.Rollback()

	// The first read starts the snapshot; everything below sees the same one.
	var version, journal string
	var pageSize, pages int64
	if err := tx.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&version); err != nil {
		return fmt.Errorf("read %s: %w (is it a SQLite database?)", s.path, err)
	}
	for q, dst := range map[string]any{"PRAGMA page_size": &pageSize, "PRAGMA page_count": &pages, "PRAGMA journal_mode": &journal} {
		if err := tx.QueryRowContext(ctx, q).Scan(dst); err != nil {
			return fmt.Errorf("read %s: %s: %w (is it a SQLite database?)", s.path, q, err)
		}
	}
	counts, err := RowCounts(ctx, tx)
	if err != nil {
		return err
	}
	meta.RowCounts, meta.RowCountsTaken = counts, "same snapshot"
	if s.cfg.SchemaVersion != "" {
		v, err := SchemaVersion(ctx, tx, s.cfg.SchemaVersion)
		if err != nil {
			return err
		}
		meta.SchemaVersion = v
	}
	meta.ToolVersions = map[string]string{"sqlite": version}
	meta.DatabaseSize = pageSize * pages
	meta.Identity = Identity(s.path)
	meta.Extra = map[string]string{"page_size": fmt.Sprint(pageSize), "journal_mode": journal}

	rows, err := tx.QueryContext(ctx, "SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno")
	if err != nil {
		return fmt.Errorf("read pages of %s: %w", s.path, err)
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		var pgno int64
		var data []byte
		if err := rows.Scan(&pgno, &data); err != nil {
			return fmt.Errorf("read page of %s: %w", s.path, err)
		}
		n++
		if pgno != n || int64(len(data)) != pageSize {
			return fmt.Errorf("read %s: unexpected page %d of %d bytes", s.path, pgno, len(data))
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read pages of %s: %w", s.path, err)
	}
	if n != pages {
		return fmt.Errorf("read %s: got %d pages, expected %d", s.path, n, pages)
	}
	return nil
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

// RowCounts counts the rows of every table (not views, not sqlite_ internals).
func RowCounts(ctx context.Context, q querier) (map[string]int64, error) {
	rows, err := q.QueryContext(ctx, "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		names = append(names, n)
	}
	rows.Close()
	counts := make(map[string]int64, len(names))
	for _, n := range names {
		var c int64
		if err := q.QueryRowContext(ctx, `SELECT count(*) FROM "`+strings.ReplaceAll(n, `"`, `""`)+`"`).Scan(&c); err != nil {
			return nil, fmt.Errorf("count rows of %s: %w", n, err)
		}
		counts[n] = c
	}
	return counts, nil
}

// SchemaVersion runs the configured query and returns its value as text.
func SchemaVersion(ctx context.Context, q querier, query string) (string, error) {
	var v sql.NullString
	if err := q.QueryRowContext(ctx, query).Scan(&v); err != nil {
		return "", fmt.Errorf("schema_version query: %w", err)
	}
	return v.String, nil
}

// Identity is the canonical path of a database file.
func Identity(path string) string {
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	return "sqlite:" + path
}

// Inspect reports whether a file exists at target and whether it is the
// configured database.
func (s *Source) Inspect(ctx context.Context, target string) (source.TargetInfo, error) {
	abs, err := filepath.Abs(target)
	if err != nil {
		return source.TargetInfo{}, err
	}
	info := source.TargetInfo{Identity: Identity(abs), Describe: "file " + abs}
	info.IsSource = info.Identity == Identity(s.path)
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		info.Empty = true
	case err != nil:
		return info, err
	case fi.IsDir():
		return info, fmt.Errorf("%s is a folder: give the path of the database file to create", abs)
	default:
		info.Exists, info.Empty = true, fi.Size() == 0
		info.Describe = fmt.Sprintf("file %s (%d bytes)", abs, fi.Size())
	}
	return info, nil
}

// Restore writes the image to a temp file beside target, checks it with
// PRAGMA integrity_check, and renames it into place, so target is either
// untouched or the whole restored database.
func (s *Source) Restore(ctx context.Context, r io.Reader, target string, meta *source.Meta) error {
	abs, err := filepath.Abs(target)
	if err != nil {
		return err
	}
	dir := filepath.Dir(abs)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create folder for %s: %w", abs, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(abs)+".restore-*")
	if err != nil {
		return fmt.Errorf("create temp file beside %s: %w", abs, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := IntegrityCheck(ctx, tmp); err != nil {
		return fmt.Errorf("restored database fails its check, %s left unchanged: %w", abs, err)
	}
	// A stale WAL or shared-memory file of the old database would be
	// replayed into the new one: remove them first.
	for _, ext := range []string{"-wal", "-shm", "-journal"} {
		if err := os.Remove(abs + ext); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove old %s%s: %w", abs, ext, err)
		}
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, abs); err != nil {
		return fmt.Errorf("move restored database into place: %w", err)
	}
	return nil
}

// IntegrityCheck runs PRAGMA integrity_check on the file at path.
func IntegrityCheck(ctx context.Context, path string) error {
	db, err := Open(path, false)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return err
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	if len(problems) > 0 {
		if len(problems) > 3 {
			problems = append(problems[:3], fmt.Sprintf("and %d more", len(problems)-3))
		}
		return fmt.Errorf("integrity check: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Snapshot returns a source reading the database at target, or, when target
// is not a SQLite database, one that keeps the file as it is (a tar of it), so
// that whatever an overwrite replaces can be recovered.
func (s *Source) Snapshot(target string) (source.Source, error) {
	abs, err := filepath.Abs(target)
	if err != nil {
		return nil, err
	}
	if isSQLite(abs) {
		return &Source{cfg: Config{Path: abs}, path: abs}, nil
	}
	return files.New(&files.Config{Paths: []string{abs}}, source.Deps{})
}

// isSQLite reports whether the file starts with SQLite's header.
func isSQLite(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var hdr [16]byte
	_, err = io.ReadFull(f, hdr[:])
	return err == nil && string(hdr[:]) == "SQLite format 3\x00"
}

// ManualRestore restores the plaintext image arriving on stdin.
func (s *Source) ManualRestore(target string, meta *source.Meta) []string {
	t := source.ShellQuote(target)
	var cmds []string
	if d := filepath.Dir(target); d != "." {
		cmds = append(cmds, "mkdir -p "+source.ShellQuote(d))
	}
	return append(cmds,
		"| cat > "+t,
		"sqlite3 "+t+" 'PRAGMA integrity_check'",
	)
}
