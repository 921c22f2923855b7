package summary_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/notify/notifytest"
	"github.com/lifeboat-backup/lifeboat/internal/report"
	"github.com/lifeboat-backup/lifeboat/internal/source"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
	"github.com/lifeboat-backup/lifeboat/internal/storage/local"
	"github.com/lifeboat-backup/lifeboat/internal/summary"
)

// The golden files in testdata/ were produced with
//
//	go test ./internal/summary -run TestGolden -update
//
// from the storages and runs built by world(), and checked by reading them.
var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var now = time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)

// withSpace is a real local store whose free space is fixed, so that the
// rendering does not depend on the disk the test runs on.
type withSpace struct {
	storage.Storage
	free int64
}

func (s withSpace) Space(context.Context) (storage.Space, error) {
	return storage.Space{Free: s.free}, nil
}

// plain hides the local store's SpaceReporter, like object storage.
type plain struct{ storage.Storage }

// unlistable is a store whose listing fails.
type unlistable struct{ storage.Storage }

func (unlistable) List(context.Context, string, func(storage.Object) error) error {
	return &fs.PathError{Op: "open", Path: "/mnt/backup", Err: fs.ErrPermission}
}

type backup struct {
	src, part  string
	at         time.Time
	size       int64
	suspect    bool
	stores     []storage.Storage
	drill      *catalog.DrillReport
	sourceType string
}

func put(t *testing.T, b backup) {
	t.Helper()
	ctx := t.Context()
	name := catalog.ArtifactName("web1", b.at, b.src, b.part, "pgdump.zst.age")
	key := catalog.ArtifactKey(b.src, name)
	id := catalog.NewID()
	m := &catalog.Manifest{
		FormatVersion: catalog.FormatVersion, ID: id, Source: b.src, SourceType: "postgres", Host: "web1",
		Started: b.at.Add(-time.Minute), Finished: b.at, Artifact: name, Key: key, Format: "pgdump.zst.age",
		StoredSize: b.size, PlainSize: b.size * 3, SHA256: strings.Repeat("ab", 32), Suspect: b.suspect,
		Meta: source.Meta{Part: b.part},
	}
	data, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range b.stores {
		if _, err := st.Put(ctx, key, strings.NewReader("artifact")); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Put(ctx, catalog.ManifestKey(key), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		if b.drill != nil {
			d := *b.drill
			d.BackupID, d.Source, d.Artifact = id, b.src, name
			dj, _ := json.Marshal(d)
			if _, err := st.Put(ctx, catalog.DrillKey(key, d.Finished), bytes.NewReader(dj)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func newLocal(t *testing.T, name string) storage.Storage {
	t.Helper()
	st, err := local.New(name, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func cfgWith(sources ...*config.Source) *config.Config {
	cfg := &config.Config{Sources: map[string]*config.Source{}}
	for _, s := range sources {
		cfg.Sources[s.Name] = s
		cfg.SourceNames = append(cfg.SourceNames, s.Name)
	}
	return cfg
}

func src(name string, rpo time.Duration) *config.Source {
	return &config.Source{Name: name, SourceCommon: config.SourceCommon{RPO: config.Duration(rpo)}}
}

func day(d, h int) time.Time { return time.Date(2026, 11, d, h, 0, 0, 0, time.UTC) }

// world builds real local storages with manifests, and run reports.
func world(t *testing.T) summary.Input {
	loc := withSpace{newLocal(t, "local"), 120_300_000_000}
	off := plain{newLocal(t, "offsite")}
	broken := unlistable{newLocal(t, "broken")}
	both := []storage.Storage{loc, off}

	put(t, backup{src: "app-db", at: day(19, 3), size: 10_000_000, stores: both})
	put(t, backup{src: "app-db", at: day(20, 3), size: 23_400_000, stores: both,
		drill: &catalog.DrillReport{Started: day(20, 4), Finished: day(20, 4).Add(63 * time.Second), OK: true, RTOSeconds: 63, RTOTarget: 900}})
	put(t, backup{src: "app-db", at: day(21, 3), size: 23_900_000, stores: both})
	put(t, backup{src: "uploads", at: day(20, 1), size: 1_800_000_000, stores: []storage.Storage{off}})
	put(t, backup{src: "redis", at: day(21, 2), size: 1_000_000, stores: []storage.Storage{loc}})
	put(t, backup{src: "redis", at: day(21, 6), size: 200_000, suspect: true, stores: []storage.Storage{loc}})
	put(t, backup{src: "dbs", part: "shop", at: day(20, 2), size: 4_000_000, stores: []storage.Storage{loc}})
	put(t, backup{src: "dbs", part: "blog", at: day(20, 2), size: 1_000_000, stores: []storage.Storage{loc}})
	put(t, backup{src: "dbs", part: "shop", at: day(21, 2), size: 5_000_000, stores: []storage.Storage{loc}})
	put(t, backup{src: "dbs", part: "blog", at: day(21, 2), size: 1_000_000, stores: []storage.Storage{loc}})
	put(t, backup{src: "old-app", at: day(11, 3).AddDate(0, 0, -30), size: 5_000, stores: []storage.Storage{loc},
		drill: &catalog.DrillReport{Started: day(11, 3).AddDate(0, 0, -29), Finished: day(11, 3).AddDate(0, 0, -29), OK: false,
			Error: "pg_restore: error: <input> is not a valid archive\nmore detail"}})
	// Made after the summary's end: not counted.
	put(t, backup{src: "app-db", at: day(21, 9), size: 99_000_000, stores: both})

	runs := []*report.Run{
		{Kind: report.Backup, Finished: day(21, 2), Items: []report.Item{
			{Source: "app-db", Status: report.Failed, Finished: day(21, 2), Error: "pg_dump exited with status 1: <script>alert(1)</script>\nsecond line"}}},
		{Kind: report.Backup, Finished: day(21, 3), Items: []report.Item{{Source: "app-db", Status: report.OK, Finished: day(21, 3)}}},
		{Kind: report.Backup, Finished: day(20, 12), Items: []report.Item{{Source: "mail", Status: report.Failed, Finished: day(20, 12), Error: "maildir /srv/mail: permission denied"}}},
		{Kind: report.Backup, Finished: day(21, 3), Items: []report.Item{{Source: "mail", Status: report.Partial, Finished: day(21, 3), Error: "storage offsite: timeout"}}},
		{Kind: report.Backup, Finished: day(19, 3), Items: []report.Item{{Source: "uploads", Status: report.Failed, Finished: day(19, 3), Error: "too old to count"}}},
	}
	return summary.Input{
		Config: cfgWith(src("app-db", 24*time.Hour), src("uploads", 24*time.Hour), src("redis", 0),
			src("mail", 24*time.Hour), src("dbs", 0)),
		Storages: []storage.Storage{loc, off, broken},
		Runs:     runs,
		Now:      now,
		Host:     "web1",
	}
}

func TestBuild(t *testing.T) {
	s, err := summary.Build(t.Context(), world(t))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]summary.Source{}
	var order []string
	for _, src := range s.Sources {
		got[src.Name] = src
		order = append(order, src.Name)
	}
	if want := "app-db uploads redis mail dbs old-app"; strings.Join(order, " ") != want {
		t.Errorf("order = %v, want config order then others: %s", order, want)
	}
	for name, want := range map[string]summary.Status{
		"app-db": summary.OK, "uploads": summary.Overdue, "redis": summary.Suspect,
		"mail": summary.Failed, "dbs": summary.OK, "old-app": summary.Idle,
	} {
		if got[name].Status != want {
			t.Errorf("%s: status %s, want %s", name, got[name].Status, want)
		}
	}
	app := got["app-db"]
	if app.Backups != 1 || app.Size != 23_900_000 || app.PrevSize != 23_400_000 || app.Bytes != 23_900_000 {
		t.Errorf("app-db: backups %d size %d prev %d bytes %d; want 1, 23.9M, 23.4M, 23.9M (the 09:00 backup is after the end)",
			app.Backups, app.Size, app.PrevSize, app.Bytes)
	}
	if app.Newest == nil || !app.Newest.Finished.Equal(day(21, 3)) || len(app.Newest.Storages) != 2 {
		t.Errorf("app-db newest = %+v, want 21st 03:00 in 2 storages", app.Newest)
	}
	if app.Failures != 1 {
		t.Errorf("app-db failures = %d, want 1 (the one before the success)", app.Failures)
	}
	if app.Drill == nil || !app.Drill.OK || app.Drill.RTO != 63*time.Second || app.Drill.RTOTarget != 15*time.Minute {
		t.Errorf("app-db drill = %+v", app.Drill)
	}
	if d := got["dbs"]; d.Backups != 2 || d.Size != 6_000_000 || d.PrevSize != 5_000_000 {
		t.Errorf("dbs: backups %d size %d prev %d; want parts summed: 2, 6M, 5M", d.Backups, d.Size, d.PrevSize)
	}
	if r := got["redis"]; r.Newest == nil || !r.Newest.Finished.Equal(day(21, 2)) || !r.Suspect {
		t.Errorf("redis: newest good %+v suspect %v; want the 02:00 one, suspect", r.Newest, r.Suspect)
	}
	if m := got["mail"]; m.Failures != 2 || m.Newest != nil {
		t.Errorf("mail: %+v", m)
	}
	if o := got["old-app"]; o.Configured || o.Drill == nil || o.Drill.OK {
		t.Errorf("old-app: %+v", o)
	}
	if len(s.Failures) != 3 {
		t.Errorf("failures = %+v, want 3 (the 19th is outside the period)", s.Failures)
	}

	sts := map[string]summary.Storage{}
	for _, st := range s.Storages {
		sts[st.Name] = st
	}
	if l := sts["local"]; l.Free != 120_300_000_000 || l.Backups != 11 {
		t.Errorf("local: %+v, want 11 backups and the reported free space", l)
	}
	if o := sts["offsite"]; o.Free != -1 || o.Backups != 5 || o.Used != 10_000_000+23_400_000+23_900_000+99_000_000+1_800_000_000 {
		t.Errorf("offsite: %+v", o)
	}
	if b := sts["broken"]; b.Error == "" || !strings.Contains(b.Error, "permission denied") {
		t.Errorf("broken storage: %+v, want its listing error", b)
	}
	if len(s.Problems) == 0 {
		t.Error("an unlistable storage must be listed under problems")
	}
}

func TestGolden(t *testing.T) {
	s, err := summary.Build(t.Context(), world(t))
	if err != nil {
		t.Fatal(err)
	}
	notifytest.Golden(t, "testdata/summary.txt.golden", []byte(s.Text()), *update)
	h, err := s.HTML()
	if err != nil {
		t.Fatal(err)
	}
	notifytest.Golden(t, "testdata/summary.html.golden", []byte(h), *update)
	if strings.Contains(h, "<script>") || !strings.Contains(h, "&lt;script&gt;") {
		t.Error("HTML must escape text from errors")
	}
	if strings.Contains(h, "<input>") {
		t.Error("HTML must escape drill errors")
	}
}

func TestLocationAndEmpty(t *testing.T) {
	in := world(t)
	in.Location = time.FixedZone("CET", 3600)
	s, err := summary.Build(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	if txt := s.Text(); !strings.Contains(txt, "2026-11-21 09:00 CET") {
		t.Errorf("times must be printed in the summary's timezone:\n%s", txt)
	}

	empty, err := summary.Build(t.Context(), summary.Input{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if txt := empty.Text(); !strings.Contains(txt, "no sources") {
		t.Errorf("empty summary:\n%s", txt)
	}
	if _, err := empty.HTML(); err != nil {
		t.Fatal(err)
	}
}

func TestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	in := world(t)
	if _, err := summary.Build(ctx, in); !errors.Is(err, context.Canceled) {
		t.Errorf("Build on a cancelled context: %v", err)
	}
}

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-1: "?", 45 * time.Second: "45s", 12*time.Minute + 20*time.Second: "12m",
		5*time.Hour + 10*time.Minute: "5h10m", 5 * time.Hour: "5h", time.Hour + 10*time.Minute: "1h10m",
		53 * time.Hour: "2d5h", 48 * time.Hour: "2d",
	} {
		if got := summary.Age(d); got != want {
			t.Errorf("Age(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestJSON(t *testing.T) {
	s := summary.Summary{Sources: []summary.Source{{Name: "a", RPO: 90 * time.Minute,
		Drill: &summary.Drill{OK: true, RTO: 63 * time.Second}}}}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"rpo_seconds":5400`, `"rto_seconds":63`, `"name":"a"`, `"ok":true`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
}
