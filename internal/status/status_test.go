package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/source"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
	"github.com/lifeboat-backup/lifeboat/internal/storage/local"
	"github.com/lifeboat-backup/lifeboat/internal/storage/s3"
	"github.com/lifeboat-backup/lifeboat/internal/storage/sftp"
)

var t0 = time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)

type store struct {
	t   *testing.T
	st  *local.Store
	seq map[string]int64
}

func newStore(t *testing.T, name string) *store {
	st, err := local.New(name, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &store{t: t, st: st, seq: map[string]int64{}}
}

type opt struct {
	part    string
	size    int64
	suspect bool
	checks  []catalog.Check
	drill   *catalog.DrillReport
}

func (s *store) put(src string, start time.Time, o opt) *catalog.Manifest {
	s.t.Helper()
	ctx := context.Background()
	s.seq[src+o.part]++
	key := catalog.ArtifactKey(src, catalog.ArtifactName("h", start, src, o.part, "sqlite.zst.age"))
	body := strings.Repeat("x", int(o.size))
	if _, err := s.st.Put(ctx, key, strings.NewReader(body)); err != nil {
		s.t.Fatal(err)
	}
	m := &catalog.Manifest{FormatVersion: 1, ID: fmt.Sprintf("%s%s%02d", src, o.part, s.seq[src+o.part]), Source: src,
		Sequence: s.seq[src+o.part], Started: start, Finished: start.Add(time.Minute), Key: key, SHA256: "00",
		StoredSize: o.size, PlainSize: 3 * o.size, Suspect: o.suspect, Checks: o.checks, Meta: source.Meta{Part: o.part}}
	b, _ := m.Encode()
	if _, err := s.st.Put(ctx, catalog.ManifestKey(key), bytes.NewReader(b)); err != nil {
		s.t.Fatal(err)
	}
	if d := o.drill; d != nil {
		d.BackupID, d.Source, d.Artifact = m.ID, src, key
		db, _ := json.Marshal(d)
		if _, err := s.st.Put(ctx, catalog.DrillKey(key, d.Started), bytes.NewReader(db)); err != nil {
			s.t.Fatal(err)
		}
	}
	return m
}

func fixed(t time.Time) func() time.Time { return func() time.Time { return t } }

func one(t *testing.T, rep *Report, name string) SourceStatus {
	t.Helper()
	for _, s := range rep.Sources {
		if s.Name() == name {
			return s
		}
	}
	t.Fatalf("no status for %s in %+v", name, rep.Sources)
	return SourceStatus{}
}

func TestCollect(t *testing.T) {
	ctx := context.Background()
	a, b := newStore(t, "local"), newStore(t, "offsite")
	now := t0.Add(48 * time.Hour)

	// healthy: daily, the newest 10% bigger, drilled.
	for i := range 2 {
		a.put("healthy", t0.Add(time.Duration(i)*24*time.Hour), opt{size: 1000})
	}
	m := a.put("healthy", now.Add(-2*time.Hour), opt{size: 1100, drill: &catalog.DrillReport{Started: now.Add(-time.Hour),
		Finished: now.Add(-50 * time.Minute), OK: true, RTOSeconds: 42, RTOTarget: 600}})
	b.put("healthy", m.Started, opt{size: 1100}) // same backup copied offsite (own sequence there)
	// overdue: last good backup three days ago, rpo one day.
	a.put("stale", now.Add(-72*time.Hour), opt{size: 500})
	// suspect: the newest shrank.
	a.put("shrinking", now.Add(-20*time.Hour), opt{size: 1000})
	a.put("shrinking", now.Add(-2*time.Hour), opt{size: 400, suspect: true,
		checks: []catalog.Check{{Name: "max_shrink", Detail: "stored size 1.0 kB -> 400 B (-60%), limit -20%"}}})
	// drill failed on the newest.
	a.put("undrillable", now.Add(-3*time.Hour), opt{size: 10})
	a.put("undrillable", now.Add(-2*time.Hour), opt{size: 10, drill: &catalog.DrillReport{Started: now.Add(-time.Hour),
		Finished: now.Add(-time.Hour), Checks: []catalog.Check{{Name: "row_counts", Detail: "table orders: 3 rows, manifest says 5"}}}})
	// parts
	a.put("pg", now.Add(-time.Hour), opt{part: "shop", size: 10})
	a.put("pg", now.Add(-30*time.Hour), opt{part: "blog", size: 10})

	day := 24 * time.Hour
	rep, err := Collect(ctx, []Source{
		{Name: "healthy", RPO: day, RTO: 10 * time.Minute, Storages: []storage.Storage{a.st, b.st}},
		{Name: "stale", RPO: day, Storages: []storage.Storage{a.st}},
		{Name: "shrinking", RPO: day, Storages: []storage.Storage{a.st}},
		{Name: "undrillable", Storages: []storage.Storage{a.st}},
		{Name: "pg", RPO: day, Storages: []storage.Storage{a.st}},
		{Name: "never", RPO: day, Storages: []storage.Storage{b.st}},
		{Name: "norpo", Storages: []storage.Storage{b.st}},
	}, Options{Now: fixed(now), LastVerify: func(src, part string) *Verify {
		if src == "healthy" {
			return &Verify{When: now.Add(-time.Hour), OK: true}
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}

	h := one(t, rep, "healthy")
	if len(h.Problems) != 0 || h.Overdue || h.Suspect || h.NewestGood == nil || h.NewestGood.ID != m.ID {
		t.Fatalf("healthy: %+v", h)
	}
	if h.AgeSeconds != (2*time.Hour-time.Minute).Seconds() || h.PrevStoredSize != 1000 || h.ChangePercent == nil || *h.ChangePercent != 10 {
		t.Errorf("healthy: age %v prev %v change %v", h.AgeSeconds, h.PrevStoredSize, h.ChangePercent)
	}
	if fmt.Sprint(h.NewestGood.Storages) != "[local]" || h.Backups != 3 {
		t.Errorf("healthy: storages %v, backups %d", h.NewestGood.Storages, h.Backups)
	}
	if d := h.LastDrill; d == nil || !d.OK || d.RTOSeconds != 42 || h.LastVerify == nil {
		t.Errorf("healthy: drill %+v verify %+v", d, h.LastVerify)
	}
	for name, want := range map[string]string{
		"stale":       "overdue: newest good backup is 3d old (rpo 1d)",
		"shrinking":   "is suspect: max_shrink: stored size 1.0 kB -> 400 B (-60%), limit -20%",
		"undrillable": "failed: row_counts: table orders: 3 rows, manifest says 5",
		"pg/blog":     "overdue: newest good backup is 29h59m old (rpo 1d)",
		"never":       "overdue: no good backup (rpo 1d)",
	} {
		s := one(t, rep, name)
		if len(s.Problems) != 1 || !strings.Contains(s.Problems[0], want) {
			t.Errorf("%s: problems %q, want %q", name, s.Problems, want)
		}
	}
	if s := one(t, rep, "shrinking"); !s.Suspect || s.NewestGood == nil || s.NewestGood.StoredSize != 1000 {
		t.Errorf("shrinking: %+v", s)
	}
	if s := one(t, rep, "undrillable"); s.NewestGood == nil || s.NewestGood.Sequence != 1 {
		t.Errorf("undrillable: the drilled-bad backup counts as good: %+v", s.NewestGood)
	}
	for _, ok := range []string{"pg/shop", "norpo"} {
		if s := one(t, rep, ok); len(s.Problems) != 0 {
			t.Errorf("%s: %q", ok, s.Problems)
		}
	}
	if rep.OK() || len(rep.Problems()) != 5 {
		t.Errorf("problems %q", rep.Problems())
	}
	if len(rep.Storages) != 2 || rep.Storages[0].Name != "local" || rep.Storages[0].Used <= 0 || rep.Storages[0].Free <= 0 {
		t.Errorf("storages %+v", rep.Storages)
	}

	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"SOURCE       NEWEST GOOD",
		"healthy      " + m.ID + " 2026-11-22 01:00      1h59m / 1d   1.1 kB (+10%)  ok 2026-11-22  ok 2026-11-22, RTO 42s     ok",
		"stale", "OVERDUE", "SUSPECT", "DRILL FAILED", "never        none",
		"STORAGE  USED", "PROBLEM: pg/blog: overdue",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	j, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(j, &back); err != nil || len(back.Sources) != len(rep.Sources) {
		t.Fatalf("json: %v", err)
	}
}

type brokenStore struct{ storage.Storage }

func (brokenStore) List(ctx context.Context, prefix string, fn func(storage.Object) error) error {
	return errors.New("connection refused")
}

type usageStore struct{ storage.Storage }

func (usageStore) Used(ctx context.Context) (int64, error) { return 12345, nil }

func TestStorageProblems(t *testing.T) {
	a := newStore(t, "local")
	now := t0
	a.put("db", now.Add(-time.Hour), opt{size: 10})
	rep, err := Collect(context.Background(), []Source{{Name: "db", RPO: time.Hour * 24,
		Storages: []storage.Storage{usageStore{a.st}, brokenStore{a.st}}}}, Options{Now: fixed(now)})
	if err != nil {
		t.Fatal(err)
	}
	s := one(t, rep, "db")
	if s.NewestGood == nil || len(s.Problems) != 1 || !strings.Contains(s.Problems[0], "could not be read: list local: connection refused") {
		t.Fatalf("%+v", s)
	}
	if rep.Storages[0].Used != 12345 || rep.Storages[0].Free != -1 {
		t.Errorf("usage store: %+v", rep.Storages[0])
	}
}

// Storages that know their usage without a full listing.
var (
	_ UsageReporter = (*s3.Store)(nil)
	_ UsageReporter = (*sftp.Store)(nil)
)
