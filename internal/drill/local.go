package drill

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/lifeboat-backup/lifeboat/internal/source/sqlite"
)

// tempDir makes a new folder for a drill below root (the system's temporary
// folder when empty). os.MkdirTemp creates it exclusively, so it is new.
func tempDir(root, name string) (string, error) {
	dir, err := os.MkdirTemp(root, name+"-")
	if err != nil {
		return "", fmt.Errorf("create scratch folder: %w", err)
	}
	return dir, nil
}

// removeDrillDir removes a folder made by tempDir, refusing anything else.
func removeDrillDir(dir string) error {
	if !strings.HasPrefix(filepath.Base(dir), "lifeboat_drill_") {
		return fmt.Errorf("refusing to remove %s: not a drill folder", dir)
	}
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// SQLite drills SQLite backups into a database file in a new temporary
// folder.
type SQLite struct {
	// Root is where scratch folders are made; empty means the system's
	// temporary folder.
	Root string
}

var _ Inspector = SQLite{}

// NewTarget returns FOLDER/NAME.db in a new folder.
func (s SQLite) NewTarget(ctx context.Context, name string) (string, error) {
	dir, err := tempDir(s.Root, name)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, name+".db"), nil
}

func (s SQLite) open(target string) (*sql.DB, error) {
	if _, err := os.Stat(target); err != nil {
		return nil, fmt.Errorf("open restored database: %w", err)
	}
	return sqlite.Open(target, true)
}

func (s SQLite) RowCounts(ctx context.Context, target string, tables []string) (map[string]int64, error) {
	db, err := s.open(target)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	all, err := sqlite.RowCounts(ctx, db)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, t := range tables {
		if n, ok := all[t]; ok {
			out[t] = n
		}
	}
	return out, nil
}

func (s SQLite) SchemaVersion(ctx context.Context, target, query string) (string, error) {
	db, err := s.open(target)
	if err != nil {
		return "", err
	}
	defer db.Close()
	return sqlite.SchemaVersion(ctx, db, query)
}

func (s SQLite) Query(ctx context.Context, target, q string) (bool, error) {
	db, err := s.open(target)
	if err != nil {
		return false, err
	}
	defer db.Close()
	return queryTrue(ctx, db, q)
}

// Drop removes the scratch folder holding target.
func (s SQLite) Drop(ctx context.Context, target string) error {
	return removeDrillDir(filepath.Dir(target))
}

// Files drills file backups into a new temporary folder.
type Files struct {
	Root string
}

var (
	_ Inspector   = Files{}
	_ FileCounter = Files{}
)

// NewTarget returns a new, empty folder.
func (f Files) NewTarget(ctx context.Context, name string) (string, error) {
	return tempDir(f.Root, name)
}

func (Files) RowCounts(ctx context.Context, target string, tables []string) (map[string]int64, error) {
	return nil, errors.New("a file backup has no tables")
}

func (Files) SchemaVersion(ctx context.Context, target, query string) (string, error) {
	return "", errors.New("a file backup has no schema version")
}

func (Files) Query(ctx context.Context, target, q string) (bool, error) {
	return false, errors.New("sql assertions need a database source; use `command:` with $LIFEBOAT_DRILL_TARGET for files")
}

func (Files) Drop(ctx context.Context, target string) error { return removeDrillDir(target) }

// FileCount counts regular files and their bytes below target, as the files
// source counts them when it dumps.
func (Files) FileCount(ctx context.Context, target string) (files, size int64, err error) {
	err = filepath.WalkDir(target, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			files++
			size += fi.Size()
		}
		return nil
	})
	return files, size, err
}

// queryTrue runs q and reports whether the first column of its first row is
// true. No row is false.
func queryTrue(ctx context.Context, db interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}, q string) (bool, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	if !rows.Next() {
		return false, rows.Err()
	}
	cols, err := rows.Columns()
	if err != nil {
		return false, err
	}
	vals := make([]any, len(cols))
	var v sql.NullString
	vals[0] = &v
	for i := 1; i < len(vals); i++ {
		vals[i] = new(any)
	}
	if err := rows.Scan(vals...); err != nil {
		return false, err
	}
	return v.Valid && truthy(v.String), rows.Err()
}

// truthy reads a SQL value printed as text.
func truthy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "t", "true", "y", "yes", "on":
		return true
	}
	return false
}
