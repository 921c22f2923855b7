package sqlite_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/source"
	"github.com/lifeboat-backup/lifeboat/internal/source/sqlite"
)

// A snapshot taken while another goroutine keeps writing is a consistent
// database: it opens, passes integrity_check, and holds a prefix of the
// writes (every transaction entirely or not at all).
func TestSnapshotWhileWriting(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "live.db")
	db, err := sqlite.Open(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		"PRAGMA journal_mode=WAL",
		"CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)",
		"INSERT INTO accounts VALUES (1, 1000000), (2, 0)",
		"CREATE TABLE log (seq INTEGER PRIMARY KEY, amount INTEGER, pad BLOB)",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// Enough data that the dump takes a while.
	pad := bytes.Repeat([]byte{0xAB}, 2000)
	tx, _ := db.Begin()
	for i := 0; i < 5000; i++ {
		tx.Exec("INSERT INTO log (amount, pad) VALUES (0, ?)", pad)
	}
	tx.Commit()

	var writes atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w, err := sqlite.Open(path, false)
		if err != nil {
			t.Error(err)
			return
		}
		defer w.Close()
		for {
			select {
			case <-stop:
				return
			default:
			}
			// One transfer: both balances and a log row, atomically.
			err := func() error {
				tx, err := w.BeginTx(ctx, nil)
				if err != nil {
					return err
				}
				defer tx.Rollback()
				if _, err := tx.Exec("UPDATE accounts SET balance = balance - 1 WHERE id = 1"); err != nil {
					return err
				}
				if _, err := tx.Exec("UPDATE accounts SET balance = balance + 1 WHERE id = 2"); err != nil {
					return err
				}
				if _, err := tx.Exec("INSERT INTO log (amount, pad) VALUES (1, ?)", pad); err != nil {
					return err
				}
				return tx.Commit()
			}()
			if err != nil {
				t.Error(err)
				return
			}
			writes.Add(1)
		}
	}()
	for writes.Load() < 20 {
		time.Sleep(time.Millisecond)
	}

	src, err := sqlite.New(&sqlite.Config{Path: path}, source.Deps{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	var meta source.Meta
	before := writes.Load()
	if err := src.Dump(ctx, &buf, &meta); err != nil {
		t.Fatal(err)
	}
	during := writes.Load() - before
	close(stop)
	wg.Wait()
	t.Logf("snapshot of %d bytes; %d transactions committed during the dump", buf.Len(), during)

	restored := filepath.Join(dir, "restored.db")
	if err := src.Restore(ctx, &buf, restored, &meta); err != nil {
		t.Fatal(err)
	}
	if err := sqlite.IntegrityCheck(ctx, restored); err != nil {
		t.Fatal(err)
	}
	r, err := sqlite.Open(restored, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var total, moved, logged, maxSeq, n int64
	q := func(query string, dst *int64) {
		if err := r.QueryRow(query).Scan(dst); err != nil {
			t.Fatal(query, err)
		}
	}
	q("SELECT sum(balance) FROM accounts", &total)
	q("SELECT balance FROM accounts WHERE id = 2", &moved)
	q("SELECT count(*) FROM log WHERE amount = 1", &logged)
	q("SELECT max(seq) FROM log", &maxSeq)
	q("SELECT count(*) FROM log", &n)
	if total != 1000000 {
		t.Fatalf("balances sum to %d: a transaction was torn", total)
	}
	if moved != logged {
		t.Fatalf("%d moved but %d logged: not one snapshot", moved, logged)
	}
	if maxSeq != n {
		t.Fatalf("log has %d rows but max seq %d: not a prefix", n, maxSeq)
	}
	if moved < before || moved > writes.Load() {
		t.Fatalf("snapshot holds %d transfers, outside [%d, %d]", moved, before, writes.Load())
	}
	if meta.RowCounts["log"] != n || meta.RowCounts["accounts"] != 2 {
		t.Fatalf("manifest row counts %v do not match the snapshot (%d log rows)", meta.RowCounts, n)
	}
}

func TestDumpOfNonDatabaseFails(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.db")
	if err := os.WriteFile(p, []byte("this is not a database, just text that is long enough to have a header"), 0o644); err != nil {
		t.Fatal(err)
	}
	src, _ := sqlite.New(&sqlite.Config{Path: p}, source.Deps{})
	var buf bytes.Buffer
	if err := src.Dump(context.Background(), &buf, &source.Meta{}); err == nil {
		t.Fatal("dump of a non-database succeeded")
	}
}
