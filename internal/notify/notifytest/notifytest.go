// Package notifytest holds what the notifier tests share: golden-file
// comparison and fixed events to render.
package notifytest

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/notify"
	"github.com/lifeboat-backup/lifeboat/internal/report"
	"github.com/lifeboat-backup/lifeboat/internal/storage/local"
	"github.com/lifeboat-backup/lifeboat/internal/summary"
)

// Golden compares got with the file at path (under testdata/). With update
// set (the test's -update flag) it rewrites the file instead. On a mismatch
// it writes got to path+".actual" so the two can be diffed, and fails.
func Golden(t testing.TB, path string, got []byte, update bool) {
	t.Helper()
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		_ = os.Remove(path + ".actual")
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file: %v (run the test with -update to create it)", err)
	}
	if bytes.Equal(want, got) {
		_ = os.Remove(path + ".actual")
		return
	}
	if err := os.WriteFile(path+".actual", got, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Errorf("%s differs from the output; see %s.actual (diff them; rerun with -update if the change is intended)\n%s",
		path, path, firstDiff(string(want), string(got)))
}

func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "first difference at line " + strconv.Itoa(i+1) + ":\n  want: " + w + "\n  got:  " + g
		}
	}
	return ""
}

// Logger logs to the test's output and, when also is not nil, to also
// (to check what was logged).
func Logger(t testing.TB, also io.Writer) *slog.Logger {
	var w io.Writer = t.Output()
	if also != nil {
		w = io.MultiWriter(w, also)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// sourceSpec is a source type for test configs; it has a secret so that
// redaction of source secrets can be tested.
type sourceSpec struct {
	Path     string        `yaml:"path"`
	Password config.Secret `yaml:"password"`
}

func (*sourceSpec) Validate() error { return nil }

// Config parses a config file for a test. Besides the given notifier types
// it knows a source type "test" (keys path, password) and the storage type
// "local". env holds the environment for ${env:...} references. A missing
// encryption section gets a fixed recipient.
func Config(t testing.TB, yaml string, env map[string]string, notifiers map[string]func() config.Spec) *config.Config {
	t.Helper()
	if !strings.Contains(yaml, "encryption:") {
		yaml = "encryption:\n  recipients: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]\n" + yaml
	}
	reg := config.Registry{
		Sources:   map[string]func() config.Spec{"test": func() config.Spec { return &sourceSpec{} }},
		Storages:  map[string]func() config.Spec{"local": func() config.Spec { return &local.Config{} }},
		Notifiers: notifiers,
	}
	cfg, err := config.Parse("lifeboat.yaml", t.TempDir(), []byte(yaml), reg, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	if err != nil {
		t.Fatalf("config:\n%v", err)
	}
	return cfg
}

// T0 is the fixtures' reference time: 2026-11-21 03:00 UTC.
func T0() time.Time { return time.Date(2026, 11, 21, 3, 0, 0, 0, time.UTC) }

// FailedRun is a backup run of two sources on web1: app-db failed (pg_dump
// exited 1, with a stderr tail containing characters HTML must escape),
// uploads succeeded.
func FailedRun() *report.Run {
	t0 := T0()
	return &report.Run{
		ID: "r-7f3a9c", Kind: report.Backup, Host: "web1",
		Started: t0, Finished: t0.Add(95 * time.Second), Status: report.Failed,
		Items: []report.Item{
			{
				Source: "app-db", Status: report.Failed, Started: t0, Finished: t0.Add(12 * time.Second),
				Error:      `pg_dump exited with status 1: connection to server at "db.internal" failed`,
				StderrTail: "pg_dump: error: connection to server at \"db.internal\" (10.0.0.5), port 5432 failed: FATAL:  role \"backup\" does not exist\n<html> & 'quotes'",
				Storages: []report.StorageResult{
					{Storage: "local", OK: false, Error: "not written: the dump failed"},
				},
			},
			{
				Source: "uploads", Status: report.OK, Started: t0.Add(12 * time.Second), Finished: t0.Add(95 * time.Second),
				BackupID: "4be1c07d9a2e", Artifact: "web1.20261121T030012Z.uploads.tar.zst.age",
				PlainSize: 2_400_000_000, StoredSize: 1_800_000_000, PrevStoredSize: 1_750_000_000,
				Storages: []report.StorageResult{
					{Storage: "local", Key: "uploads/web1.20261121T030012Z.uploads.tar.zst.age", OK: true},
					{Storage: "offsite", Key: "uploads/web1.20261121T030012Z.uploads.tar.zst.age", OK: true},
				},
				Checks: []catalog.Check{{Name: "max_shrink", OK: true, Detail: "grew 2.9%"}},
			},
		},
	}
}

// SuspectRun is a backup of app-db that committed but shrank too much.
func SuspectRun() *report.Run {
	t0 := T0()
	return &report.Run{
		ID: "r-81b2d0", Kind: report.Backup, Host: "web1",
		Started: t0, Finished: t0.Add(40 * time.Second), Status: report.Suspect,
		Items: []report.Item{{
			Source: "app-db", Status: report.Suspect, Started: t0, Finished: t0.Add(40 * time.Second),
			BackupID: "0c55e1aa7b31", Artifact: "web1.20261121T030000Z.app-db.pgdump.zst.age",
			PlainSize: 52_000_000, StoredSize: 9_100_000, PrevStoredSize: 23_400_000,
			Storages: []report.StorageResult{{Storage: "offsite", Key: "app-db/web1.20261121T030000Z.app-db.pgdump.zst.age", OK: true}},
			Checks:   []catalog.Check{{Name: "max_shrink", OK: false, Detail: "shrank 61.1% (limit 20%)"}},
		}},
	}
}

// DrillRun is a failed drill of app-db.
func DrillRun() *report.Run {
	t0 := T0()
	return &report.Run{
		ID: "r-d71e02", Kind: report.Drill, Host: "web1",
		Started: t0.Add(time.Hour), Finished: t0.Add(time.Hour + 4*time.Minute), Status: report.Failed,
		Items: []report.Item{{
			Source: "app-db", Status: report.Failed, Started: t0.Add(time.Hour), Finished: t0.Add(time.Hour + 4*time.Minute),
			BackupID: "0c55e1aa7b31", RTOSeconds: 240,
			Error:  "assertion users_exist failed: select count(*) > 0 from users returned false",
			Checks: []catalog.Check{{Name: "row_counts", OK: true, Detail: "12 tables match"}, {Name: "users_exist", OK: false, Detail: "returned false"}},
		}},
	}
}

// Event returns the event for source from run, as the dispatcher makes it.
func Event(t testing.TB, run *report.Run, source string) notify.Event {
	t.Helper()
	for _, ev := range notify.Events(run, "") {
		if ev.Source == source {
			return ev
		}
	}
	t.Fatalf("run %s has no source %s", run.ID, source)
	return notify.Event{}
}

// OverdueEvent is uploads on web1, last backed up 30 hours ago with a 1d RPO.
func OverdueEvent() notify.Event {
	t0 := T0()
	return notify.Event{Kind: notify.Overdue, Source: "uploads", Host: "web1",
		Finished: t0.Add(5 * time.Hour), Newest: t0.Add(-25 * time.Hour), RPO: 24 * time.Hour}
}

// Summary is a fixed summary with one source of each interesting state.
func Summary() *summary.Summary {
	t0 := T0()
	until := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	return &summary.Summary{
		Host: "web1", From: until.Add(-24 * time.Hour), Until: until, Location: time.UTC,
		Sources: []summary.Source{
			{Name: "app-db", Configured: true, Status: summary.OK, Backups: 1, Bytes: 23_900_000,
				Size: 23_900_000, PrevSize: 23_400_000, RPO: 24 * time.Hour,
				Newest: &summary.Backup{ID: "0c55e1aa7b31", Finished: t0.Add(40 * time.Second), StoredSize: 23_900_000, Storages: []string{"local", "offsite"}},
				Drill:  &summary.Drill{Finished: t0.Add(-23 * time.Hour), OK: true, RTO: 63 * time.Second, RTOTarget: 15 * time.Minute, BackupID: "9e0d"}},
			{Name: "uploads", Configured: true, Status: summary.Overdue, RPO: 24 * time.Hour,
				Newest: &summary.Backup{ID: "4be1c07d9a2e", Finished: t0.Add(-27 * time.Hour), StoredSize: 1_800_000_000, Storages: []string{"offsite"}}},
			{Name: "mail", Configured: true, Status: summary.Failed, Failures: 2},
			{Name: "old-app", Status: summary.Idle,
				Newest: &summary.Backup{ID: "77aa", Finished: t0.Add(-40 * 24 * time.Hour), StoredSize: 5_000, Storages: []string{"local"}},
				Drill:  &summary.Drill{Finished: t0.Add(-39 * 24 * time.Hour), OK: false, Error: "pg_restore: error: <input> is not a valid archive"}},
		},
		Storages: []summary.Storage{
			{Name: "local", Backups: 14, Used: 3_400_000_000, Free: 120_300_000_000},
			{Name: "offsite", Backups: 9, Used: 12_000_000_000, Free: -1},
			{Name: "broken", Used: -1, Free: -1, Error: "list broken: permission denied"},
		},
		Failures: []summary.Failure{
			{Source: "mail", Kind: report.Backup, When: t0.Add(-20 * time.Hour), Error: "maildir /srv/mail: permission denied"},
			{Source: "mail", Kind: report.Backup, When: t0, Error: "maildir /srv/mail: permission denied & <more>"},
		},
		Problems: []string{"storage broken could not be listed: list broken: permission denied"},
	}
}
