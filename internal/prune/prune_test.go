package prune

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/retention"
	"github.com/lifeboat-backup/lifeboat/internal/source"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
	"github.com/lifeboat-backup/lifeboat/internal/storage/local"
)

const src = "db"

var t0 = time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)

type fixture struct {
	t     *testing.T
	st    *local.Store
	seq   map[string]int64
	byKey map[string]*catalog.Manifest
}

func newFixture(t *testing.T, name string) *fixture {
	t.Helper()
	st, err := local.New(name, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, st: st, seq: map[string]int64{}, byKey: map[string]*catalog.Manifest{}}
}

type bopt struct {
	part       string
	suspect    bool
	tags       []string
	modSkew    time.Duration // storage time minus manifest time
	seq        int64         // explicit sequence
	noManifest bool
}

// put stores a backup started at start: artifact, then manifest, with the
// files' modification times set to when they would have been written.
func (f *fixture) put(start time.Time, o bopt) *catalog.Manifest {
	f.t.Helper()
	ctx := context.Background()
	f.seq[o.part]++
	seq := f.seq[o.part]
	if o.seq != 0 {
		seq = o.seq
	}
	fin := start.Add(2 * time.Minute)
	key := catalog.ArtifactKey(src, catalog.ArtifactName("host1", start, src, o.part, "sqlite.zst.age"))
	if _, err := f.st.Put(ctx, key, strings.NewReader("artifact "+key)); err != nil {
		f.t.Fatal(err)
	}
	f.touch(key, fin.Add(o.modSkew))
	m := &catalog.Manifest{FormatVersion: catalog.FormatVersion, ID: fmt.Sprintf("%s%06d%s", o.part, seq, start.Format("0102T15")),
		Source: src, Sequence: seq, Started: start, Finished: fin, Key: key, SHA256: "00", Tags: o.tags, Suspect: o.suspect,
		Meta: source.Meta{Part: o.part}}
	if o.noManifest {
		return m
	}
	b, err := m.Encode()
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.st.Put(ctx, catalog.ManifestKey(key), bytes.NewReader(b)); err != nil {
		f.t.Fatal(err)
	}
	f.touch(catalog.ManifestKey(key), fin.Add(o.modSkew))
	f.byKey[key] = m
	return m
}

func (f *fixture) drill(m *catalog.Manifest, at time.Time, ok bool) string {
	f.t.Helper()
	d := catalog.DrillReport{BackupID: m.ID, Source: src, Artifact: m.Key, Started: at, Finished: at.Add(time.Minute), OK: ok}
	b, _ := jsonMarshal(d)
	key := catalog.DrillKey(m.Key, at)
	if _, err := f.st.Put(context.Background(), key, bytes.NewReader(b)); err != nil {
		f.t.Fatal(err)
	}
	f.touch(key, at.Add(time.Minute))
	return key
}

func (f *fixture) touch(key string, t time.Time) {
	f.t.Helper()
	p := filepath.Join(f.st.Root(), filepath.FromSlash(key))
	if err := os.Chtimes(p, t, t); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) keys() []string {
	f.t.Helper()
	var out []string
	if err := f.st.List(context.Background(), "", func(o storage.Object) error {
		out = append(out, o.Key)
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func (f *fixture) exists(key string) bool {
	_, err := f.st.Stat(context.Background(), key)
	return err == nil
}

func fixed(t time.Time) func() time.Time { return func() time.Time { return t } }

func policy(k config.Keep, tags ...config.TagRule) retention.Policy {
	return retention.Policy{Keep: k, Tagged: tags}
}

func keptIDs(p *Plan) []string {
	var out []string
	for _, b := range p.Backups {
		if b.Keep {
			out = append(out, b.ID)
		}
	}
	return out
}

// TestDryRunIsWhatRuns: the actions a dry run lists are exactly the
// deletions a real run makes, and what remains is exactly what was kept.
func TestDryRunIsWhatRuns(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "local")
	var ms []*catalog.Manifest
	for i := range 72 { // three days, hourly
		ms = append(ms, f.put(t0.Add(time.Duration(i)*time.Hour), bopt{}))
	}
	f.drill(ms[10], t0.Add(30*time.Hour), true)
	f.drill(ms[10], t0.Add(40*time.Hour), true)
	now := t0.Add(72 * time.Hour)
	s := Source{Name: src, Policy: policy(config.Keep{Last: 3, Daily: 3}), RPO: 24 * time.Hour, Storages: []storage.Storage{f.st}}
	opt := Options{Now: fixed(now)}
	before := f.keys()

	dry, err := NewPlan(ctx, s, opt)
	if err != nil {
		t.Fatal(err)
	}
	if dry.Refused != nil {
		t.Fatal(dry.Refused)
	}
	if !slices.Equal(f.keys(), before) {
		t.Fatal("planning changed the storage")
	}
	var planned []string
	for _, a := range dry.Actions() {
		planned = append(planned, a.Key)
	}
	// last 3 (3 backups) + daily 3 (the last of each day: one is among the last 3).
	if n := len(keptIDs(dry)); n != 5 {
		t.Fatalf("kept %d backups, want 5: %v", n, keptIDs(dry))
	}
	if d := dry.Deletes(); d != 67 {
		t.Fatalf("plan deletes %d backups, want 67", d)
	}
	if len(planned) != 67*2+2 { // artifact + manifest each, and two drill reports
		t.Fatalf("%d actions planned", len(planned))
	}

	plan, err := NewPlan(ctx, s, opt)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Execute(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	var done []string
	for _, o := range res.Outcomes {
		if o.Status != Deleted {
			t.Errorf("%s %s: %s %v", o.What, o.Key, o.Status, o.Err)
		}
		done = append(done, o.Key)
	}
	if !slices.Equal(done, planned) {
		t.Fatalf("executed\n%v\nplanned\n%v", done, planned)
	}
	var want []string
	for _, k := range before {
		if !slices.Contains(planned, k) {
			want = append(want, k)
		}
	}
	if got := f.keys(); !slices.Equal(got, want) {
		t.Fatalf("left\n%v\nwant\n%v", got, want)
	}
	for _, b := range dry.Backups {
		if b.Keep != f.exists(b.Key) {
			t.Errorf("%s: keep=%v but exists=%v", b.ID, b.Keep, !b.Keep)
		}
	}
	// A second run has nothing left to do.
	again, err := NewPlan(ctx, s, opt)
	if err != nil {
		t.Fatal(err)
	}
	if a := again.Actions(); len(a) != 0 {
		t.Fatalf("second prune plans %d actions", len(a))
	}
}

// TestNewestGoodBackupSurvives: the newest backups are suspect or failed
// their drill; keep last 1 would otherwise delete the only good one.
func TestNewestGoodBackupSurvives(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "local")
	goodOne := f.put(t0, bopt{})
	drilledBad := f.put(t0.Add(time.Hour), bopt{})
	f.drill(drilledBad, t0.Add(90*time.Minute), false)
	f.put(t0.Add(2*time.Hour), bopt{suspect: true})
	newest := f.put(t0.Add(3*time.Hour), bopt{suspect: true})
	s := Source{Name: src, Policy: policy(config.Keep{Last: 1}), Storages: []storage.Storage{f.st}}
	plan, err := NewPlan(ctx, s, Options{Now: fixed(t0.Add(4 * time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keptIDs(plan), []string{newest.ID, goodOne.ID}; !slices.Equal(got, want) {
		t.Fatalf("kept %v, want %v", got, want)
	}
	for _, b := range plan.Backups {
		if b.ID == goodOne.ID && !slices.Equal(b.Reasons, []string{"newest good backup"}) {
			t.Errorf("reasons %q", b.Reasons)
		}
	}
	if _, err := Execute(ctx, plan); err != nil {
		t.Fatal(err)
	}
	if !f.exists(goodOne.Key) || !f.exists(catalog.ManifestKey(goodOne.Key)) {
		t.Fatal("the newest good backup was deleted")
	}
	if f.exists(drilledBad.Key) {
		t.Error("the backup whose drill failed was kept")
	}
}

// TestOverdueDeletesNothing: backups stopped two days ago (rpo 24h); the
// policy would delete most of them, and the garbage too.
func TestOverdueDeletesNothing(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		put  func(f *fixture)
	}{
		{"old backups", func(f *fixture) {
			for i := range 10 {
				f.put(t0.Add(time.Duration(i)*time.Hour), bopt{})
			}
		}},
		{"only suspect backups are recent", func(f *fixture) {
			for i := range 10 {
				f.put(t0.Add(time.Duration(i)*time.Hour), bopt{})
			}
			for i := range 5 {
				f.put(t0.Add(47*time.Hour+time.Duration(i)*time.Minute), bopt{suspect: true})
			}
		}},
		{"no good backup at all", func(f *fixture) {
			f.put(t0.Add(47*time.Hour), bopt{suspect: true})
			f.put(t0.Add(48*time.Hour), bopt{suspect: true})
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "local")
			tt.put(f)
			f.put(t0.Add(-72*time.Hour), bopt{noManifest: true}) // garbage
			before := f.keys()
			s := Source{Name: src, Policy: policy(config.Keep{Last: 1}), RPO: 24 * time.Hour, Storages: []storage.Storage{f.st}}
			plan, err := NewPlan(ctx, s, Options{Now: fixed(t0.Add(58 * time.Hour))})
			if err != nil {
				t.Fatal(err)
			}
			if !errors.Is(plan.Refused, ErrOverdue) {
				t.Fatalf("Refused = %v, want ErrOverdue", plan.Refused)
			}
			// The plan still shows what the policy would have done.
			if !slices.ContainsFunc(plan.Backups, func(b Backup) bool { return !b.Keep }) || plan.Deletes() != 0 {
				t.Errorf("refused plan: deletes %d, decisions %+v", plan.Deletes(), plan.Backups)
			}
			if len(plan.Actions()) != 0 {
				t.Fatal("a refused plan has actions")
			}
			if _, err := Execute(ctx, plan); !errors.Is(err, ErrOverdue) {
				t.Fatalf("Execute err = %v", err)
			}
			if got := f.keys(); !slices.Equal(got, before) {
				t.Fatalf("deleted %d objects while overdue", len(before)-len(got))
			}
		})
	}
	// Within the rpo the same source prunes.
	f := newFixture(t, "local")
	for i := range 10 {
		f.put(t0.Add(time.Duration(i)*time.Hour), bopt{})
	}
	plan, err := NewPlan(ctx, Source{Name: src, Policy: policy(config.Keep{Last: 1}), RPO: 24 * time.Hour,
		Storages: []storage.Storage{f.st}}, Options{Now: fixed(t0.Add(20 * time.Hour))})
	if err != nil || plan.Refused != nil || plan.Deletes() != 9 {
		t.Fatalf("within rpo: err %v, refused %v, deletes %d", err, plan.Refused, plan.Deletes())
	}
}

// TestClockTroubleDeletesNothing: each case would delete the real newest
// backups if times were believed.
func TestClockTroubleDeletesNothing(t *testing.T) {
	ctx := context.Background()
	now := t0.Add(30 * time.Hour)
	for _, tt := range []struct {
		name   string
		put    func(f *fixture)
		detail string
	}{
		{"manifest times behind the storage's", func(f *fixture) {
			for i := range 10 {
				f.put(t0.Add(time.Duration(i)*time.Hour), bopt{})
			}
			// A host whose clock is a year behind wrote the two newest.
			for i := range 2 {
				f.put(t0.AddDate(-1, 0, 0).Add(time.Duration(i)*time.Hour), bopt{modSkew: 365*24*time.Hour + 11*time.Hour})
			}
		}, "but the storage recorded the manifest at"},
		{"sequence order against time order", func(f *fixture) {
			for i := range 10 {
				f.put(t0.Add(time.Duration(i)*time.Hour), bopt{})
			}
			f.put(t0.Add(-20*time.Hour), bopt{}) // sequence 11, dated before all others
		}, "is dated before backup"},
		{"dated in the future", func(f *fixture) {
			for i := range 10 {
				f.put(t0.Add(time.Duration(i)*time.Hour), bopt{})
			}
			f.put(now.Add(48*time.Hour), bopt{modSkew: -49 * time.Hour})
		}, "in the future"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "local")
			tt.put(f)
			before := f.keys()
			s := Source{Name: src, Policy: policy(config.Keep{Last: 2}), Storages: []storage.Storage{f.st}}
			plan, err := NewPlan(ctx, s, Options{Now: fixed(now)})
			if err != nil {
				t.Fatal(err)
			}
			if !errors.Is(plan.Refused, ErrClock) || !strings.Contains(plan.Refused.Error(), tt.detail) {
				t.Fatalf("Refused = %v, want ErrClock with %q", plan.Refused, tt.detail)
			}
			if _, err := Execute(ctx, plan); !errors.Is(err, ErrClock) {
				t.Fatalf("Execute err = %v", err)
			}
			if got := f.keys(); !slices.Equal(got, before) {
				t.Fatalf("deleted %d objects despite clock trouble", len(before)-len(got))
			}
			// --trust-clock: the user vouches for the times.
			plan, err = NewPlan(ctx, s, Options{Now: fixed(now), TrustClock: true})
			if err != nil {
				t.Fatal(err)
			}
			if plan.Refused != nil || plan.Deletes() == 0 || len(plan.Warnings) == 0 {
				t.Fatalf("trusted: refused %v, deletes %d, warnings %q", plan.Refused, plan.Deletes(), plan.Warnings)
			}
		})
	}
}

// lockingStore refuses to delete keys under object lock, like an S3 bucket
// with retention would.
type lockingStore struct {
	storage.Storage
	mu     sync.Mutex
	locked func(key string) bool
	tried  []string
}

func (l *lockingStore) Delete(ctx context.Context, key string) error {
	l.mu.Lock()
	l.tried = append(l.tried, key)
	l.mu.Unlock()
	if l.locked(key) {
		return &storage.PermanentError{Err: fmt.Errorf("delete %s: %w", key, storage.ErrLocked)}
	}
	return l.Storage.Delete(ctx, key)
}

func TestKeptByLock(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "s3")
	var ms []*catalog.Manifest
	for i := range 5 {
		ms = append(ms, f.put(t0.Add(time.Duration(i)*time.Hour), bopt{}))
	}
	lockedKey := ms[1].Key
	st := &lockingStore{Storage: f.st, locked: func(k string) bool { return strings.HasPrefix(k, lockedKey) }}
	s := Source{Name: src, Policy: policy(config.Keep{Last: 1}), Storages: []storage.Storage{st}}
	plan, err := NewPlan(ctx, s, Options{Now: fixed(t0.Add(6 * time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Execute(ctx, plan)
	if err != nil {
		t.Fatalf("a lock is not an error: %v", err)
	}
	if res.Count(KeptByLock) != 1 || res.Count(Skipped) != 1 || res.Count(Deleted) != 6 {
		t.Fatalf("outcomes: %d kept by lock, %d skipped, %d deleted: %+v", res.Count(KeptByLock), res.Count(Skipped), res.Count(Deleted), res.Outcomes)
	}
	if !f.exists(lockedKey) || !f.exists(catalog.ManifestKey(lockedKey)) {
		t.Fatal("the locked backup lost its artifact or manifest")
	}
	if slices.Contains(st.tried, catalog.ManifestKey(lockedKey)) {
		t.Error("the manifest of a locked artifact was deleted")
	}
	// Other failures are errors, and also keep the manifest.
	f2 := newFixture(t, "s3")
	for i := range 3 {
		f2.put(t0.Add(time.Duration(i)*time.Hour), bopt{})
	}
	broken := &failingStore{Storage: f2.st}
	plan, err = NewPlan(ctx, Source{Name: src, Policy: policy(config.Keep{Last: 1}), Storages: []storage.Storage{broken}},
		Options{Now: fixed(t0.Add(6 * time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	res, err = Execute(ctx, plan)
	if err == nil || !strings.Contains(err.Error(), "permission denied") || res.Count(Failed) != 2 || res.Count(Skipped) != 2 {
		t.Fatalf("err %v, outcomes %+v", err, res.Outcomes)
	}
	if n := len(f2.keys()); n != 6 {
		t.Fatalf("%d objects left, want all 6", n)
	}
}

type failingStore struct{ storage.Storage }

func (failingStore) Delete(ctx context.Context, key string) error {
	return fmt.Errorf("delete %s: permission denied", key)
}

// abortingStore records AbortIncomplete calls, standing for S3 multipart.
type abortingStore struct {
	storage.Storage
	calls []time.Duration
}

func (a *abortingStore) AbortIncomplete(ctx context.Context, olderThan time.Duration) (int, error) {
	a.calls = append(a.calls, olderThan)
	return 2, nil
}

func TestGarbage(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "local")
	now := t0.Add(100 * time.Hour)
	m1 := f.put(t0, bopt{})
	m2 := f.put(t0.Add(time.Hour), bopt{})
	kept := f.put(now.Add(-time.Hour), bopt{})
	oldOrphan := f.put(t0.Add(2*time.Hour), bopt{noManifest: true})
	youngOrphan := f.put(now.Add(-2*time.Hour), bopt{noManifest: true}) // maybe a backup in progress
	// A drill report whose backup is gone.
	gone := f.drill(&catalog.Manifest{ID: "x", Key: src + "/host1.20261101T000000Z.db.sqlite.zst.age"}, t0, true)
	// Something that is not lifeboat's, and an artifact whose manifest is unreadable.
	for k, v := range map[string]string{src + "/README.txt": "mine", src + "/host1.20261101T010000Z.db.sqlite.zst.age.meta.json.x": "x"} {
		if _, err := f.st.Put(ctx, k, strings.NewReader(v)); err != nil {
			t.Fatal(err)
		}
		f.touch(k, t0)
	}
	broken := f.put(t0.Add(3*time.Hour), bopt{})
	if err := os.WriteFile(filepath.Join(f.st.Root(), filepath.FromSlash(catalog.ManifestKey(broken.Key))), []byte("{garbled"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.touch(catalog.ManifestKey(broken.Key), t0)
	// Temp files of interrupted uploads.
	oldPart := filepath.Join(f.st.Root(), src, ".host1.x.abc.part")
	youngPart := filepath.Join(f.st.Root(), src, ".host1.y.abc.part")
	for _, p := range []string{oldPart, youngPart} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(oldPart, t0, t0); err != nil {
		t.Fatal(err)
	}

	s := Source{Name: src, Policy: policy(config.Keep{Last: 1}), Storages: []storage.Storage{f.st}}
	plan, err := NewPlan(ctx, s, Options{Now: fixed(now)})
	if err != nil {
		t.Fatal(err)
	}
	var garbage []string
	for _, g := range plan.Garbage {
		garbage = append(garbage, g.Key+g.Path)
	}
	want := []string{oldOrphan.Key, gone, oldPart}
	slices.Sort(garbage)
	slices.Sort(want)
	if !slices.Equal(garbage, want) {
		t.Fatalf("garbage\n%v\nwant\n%v", garbage, want)
	}
	if len(plan.Warnings) != 1 || !strings.Contains(plan.Warnings[0], "unreadable manifest kept") {
		t.Errorf("warnings %q", plan.Warnings)
	}
	if _, err := Execute(ctx, plan); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{kept.Key, youngOrphan.Key, broken.Key, src + "/README.txt"} {
		if !f.exists(k) {
			t.Errorf("%s was deleted", k)
		}
	}
	for _, k := range []string{m1.Key, m2.Key, oldOrphan.Key, gone} {
		if f.exists(k) {
			t.Errorf("%s was kept", k)
		}
	}
	if _, err := os.Stat(oldPart); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("old temp file: %v", err)
	}
	if _, err := os.Stat(youngPart); err != nil {
		t.Errorf("young temp file: %v", err)
	}

	// Storages with unfinished uploads are asked to abort the old ones.
	ab := &abortingStore{Storage: f.st}
	plan, err = NewPlan(ctx, Source{Name: src, Policy: policy(config.Keep{Last: 1}), Storages: []storage.Storage{ab}},
		Options{Now: fixed(now), GarbageAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(ab.calls) != 0 {
		t.Fatal("planning aborted uploads")
	}
	res, err := Execute(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	if len(ab.calls) != 1 || ab.calls[0] != time.Hour {
		t.Fatalf("AbortIncomplete calls %v", ab.calls)
	}
	last := res.Outcomes[len(res.Outcomes)-1]
	if last.What != "unfinished uploads" || last.Count != 2 {
		t.Fatalf("last outcome %+v", last)
	}
}

// TestPerStorageAndPart: each storage keeps the policy on its own, and each
// part has its own timeline.
func TestPerStorageAndPart(t *testing.T) {
	ctx := context.Background()
	a, b := newFixture(t, "a"), newFixture(t, "b")
	var bOnly []*catalog.Manifest
	for i := range 6 {
		start := t0.Add(time.Duration(i) * time.Hour)
		m := a.put(start, bopt{part: "shop"})
		a.put(start.Add(time.Minute), bopt{part: "blog"})
		if i < 4 { // b missed the last two backups of shop
			bOnly = append(bOnly, b.put(start, bopt{part: "shop"}))
			_ = m
		}
	}
	s := Source{Name: src, Policy: policy(config.Keep{Last: 2}), Storages: []storage.Storage{a.st, b.st}}
	plan, err := NewPlan(ctx, s, Options{Now: fixed(t0.Add(6 * time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, bk := range plan.Backups {
		if bk.Keep {
			count[bk.Storage.Name()+"/"+bk.Part]++
		}
	}
	if fmt.Sprint(count) != "map[a/blog:2 a/shop:2 b/shop:2]" {
		t.Fatalf("kept per storage/part: %v", count)
	}
	if _, err := Execute(ctx, plan); err != nil {
		t.Fatal(err)
	}
	// b keeps its own two newest, which a deleted.
	for _, m := range bOnly[2:] {
		if !b.exists(m.Key) {
			t.Errorf("b lost %s", m.ID)
		}
	}
}

func TestNewSource(t *testing.T) {
	cs := &config.Source{Name: "db", SourceCommon: config.SourceCommon{Keep: &config.Keep{Daily: 7}, Timezone: "Europe/Berlin", RPO: config.Duration(time.Hour)}}
	s, err := NewSource(cs, nil)
	if err != nil || s.RPO != time.Hour || s.Policy.Location.String() != "Europe/Berlin" || s.Policy.Keep.Daily != 7 {
		t.Fatalf("%+v %v", s, err)
	}
	cs.Timezone = "Nowhere/Land"
	if _, err := NewSource(cs, nil); err == nil {
		t.Fatal("bad time zone accepted")
	}
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
