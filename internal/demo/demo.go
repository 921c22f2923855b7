// Package demo creates the small example data of `lifeboat demo` and
// compares restored data with the original. Tests use the same functions.
package demo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/source/sqlite"
)

// SeedSQLite creates a database at path with a few related tables and rows
// of every storage class (text with unicode, integers, reals, blobs, NULL).
func SeedSQLite(ctx context.Context, path string, rows int) error {
	db, err := sqlite.Open(path, false)
	if err != nil {
		return err
	}
	defer db.Close()
	stmts := []string{
		"PRAGMA journal_mode=WAL",
		`CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE, balance REAL, avatar BLOB, note TEXT)`,
		`CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT, customer_id INTEGER NOT NULL REFERENCES customers(id), total_cents INTEGER, placed_at TEXT)`,
		`CREATE INDEX orders_customer ON orders(customer_id)`,
		`CREATE VIEW big_orders AS SELECT * FROM orders WHERE total_cents > 10000`,
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY)`,
		`INSERT INTO schema_migrations VALUES (20261101), (20261115)`,
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("seed %s: %w", path, err)
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	names := []string{"Ada Lovelace", "Jürgen Groß", "Zoë 🚣 Ocean", "李小龍", "O'Brien \"Bobby\""}
	for i := 1; i <= rows; i++ {
		var note any
		if i%3 != 0 {
			note = fmt.Sprintf("customer since %d", 2000+i%25)
		}
		avatar := sha256.Sum256([]byte(fmt.Sprint(i)))
		if _, err := tx.ExecContext(ctx, "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)",
			i, names[i%len(names)], fmt.Sprintf("c%d@example.com", i), float64(i)*1.25, avatar[:], note); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO orders (customer_id, total_cents, placed_at) VALUES (?, ?, ?)",
			i, i*731%25000, time.Date(2026, 11, 1+i%20, i%24, 0, 0, 0, time.UTC).Format(time.RFC3339)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// SeedFiles creates an uploads folder under dir with nested folders, varied
// modes and times, a symbolic link, and a *.tmp file the demo excludes.
func SeedFiles(dir string) error {
	files := map[string]string{
		"avatars/ada.png":      "\x89PNG fake image bytes\x00\x01\x02",
		"avatars/zoe.png":      strings.Repeat("zoë", 1000),
		"invoices/2026/11.pdf": "%PDF-1.7 " + strings.Repeat("invoice ", 5000),
		"README.txt":           "Uploaded by users. Backed up by lifeboat.\n",
		"scratch.tmp":          "temporary, excluded from backups\n",
	}
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "invoices/2026/11.pdf"), 0o600); err != nil {
		return err
	}
	if err := os.Symlink("avatars/ada.png", filepath.Join(dir, "latest-avatar.png")); err != nil {
		return err
	}
	old := time.Date(2024, 2, 29, 12, 34, 56, 789000000, time.UTC)
	return os.Chtimes(filepath.Join(dir, "avatars/ada.png"), old, old)
}

// CompareSQLite checks that two databases hold the same schema and the same
// rows in every table.
func CompareSQLite(ctx context.Context, a, b string) error {
	da, err := dumpSQLite(ctx, a)
	if err != nil {
		return err
	}
	db, err := dumpSQLite(ctx, b)
	if err != nil {
		return err
	}
	for name := range da {
		if _, ok := db[name]; !ok {
			return fmt.Errorf("%s is missing %s", b, name)
		}
	}
	for name := range db {
		if _, ok := da[name]; !ok {
			return fmt.Errorf("%s has an extra %s", b, name)
		}
		if !reflect.DeepEqual(da[name], db[name]) {
			return fmt.Errorf("%s differs between %s and %s", name, a, b)
		}
	}
	return nil
}

// dumpSQLite returns "schema" and "table:NAME" -> rows as values.
func dumpSQLite(ctx context.Context, path string) (map[string][][]any, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	db, err := sqlite.Open(path, true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	out := map[string][][]any{}
	schema, err := queryAll(ctx, db, "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name")
	if err != nil {
		return nil, err
	}
	out["schema"] = schema
	for _, r := range schema {
		if r[0] == "table" && !strings.HasPrefix(fmt.Sprint(r[1]), "sqlite_") {
			name := fmt.Sprint(r[1])
			rows, err := queryAll(ctx, db, `SELECT * FROM "`+name+`" ORDER BY rowid`)
			if err != nil {
				return nil, err
			}
			out["table "+name] = rows
		}
	}
	return out, nil
}

func queryAll(ctx context.Context, db *sql.DB, q string) ([][]any, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, vals)
	}
	return out, rows.Err()
}

// CompareTrees checks that tree b holds exactly what tree a holds, skipping
// entries of a for which skip returns true: content, permission bits,
// modification times (files and links) and link targets.
func CompareTrees(a, b string, skip func(rel string) bool) error {
	seen := map[string]bool{}
	err := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		if rel != "." && skip != nil && skip(filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		seen[rel] = true
		q := filepath.Join(b, rel)
		fa, err := os.Lstat(p)
		if err != nil {
			return err
		}
		fb, err := os.Lstat(q)
		if err != nil {
			return fmt.Errorf("%s: missing from the restore", rel)
		}
		if fa.Mode() != fb.Mode() {
			return fmt.Errorf("%s: mode %v, restored %v", rel, fa.Mode(), fb.Mode())
		}
		switch {
		case fa.Mode()&fs.ModeSymlink != 0:
			ta, _ := os.Readlink(p)
			tb, _ := os.Readlink(q)
			if ta != tb {
				return fmt.Errorf("%s: link to %q, restored link to %q", rel, ta, tb)
			}
		case fa.Mode().IsRegular():
			ca, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			cb, err := os.ReadFile(q)
			if err != nil {
				return err
			}
			if !bytes.Equal(ca, cb) {
				return fmt.Errorf("%s: content differs", rel)
			}
		}
		if !fa.IsDir() && !fa.ModTime().Equal(fb.ModTime()) {
			return fmt.Errorf("%s: modified %v, restored %v", rel, fa.ModTime(), fb.ModTime())
		}
		return nil
	})
	if err != nil {
		return err
	}
	return filepath.WalkDir(b, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(b, p)
		if !seen[rel] {
			return errors.New(rel + ": in the restore but not in the original")
		}
		return nil
	})
}
