package prune

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/retention"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

// Defaults of [Options].
const (
	DefaultGarbageAge     = 24 * time.Hour
	DefaultClockTolerance = time.Hour
)

// Safety refusals, wrapped by [Plan.Refused].
var (
	// ErrOverdue: the newest good backup is older than the source's rpo.
	ErrOverdue = errors.New("newest good backup is older than the rpo")
	// ErrClock: manifest times disagree with storage times or sequence order.
	ErrClock = errors.New("clocks disagree")
)

// IncompleteAborter is implemented by storages where an interrupted upload
// can leave invisible parts behind (S3 multipart uploads). Prune calls it
// with the garbage age: it aborts uploads started longer ago than olderThan
// (by the storage's own clock) and returns how many it aborted.
type IncompleteAborter interface {
	AbortIncomplete(ctx context.Context, olderThan time.Duration) (int, error)
}

// Partials is implemented by storages that keep objects in progress as
// temporary files in a local folder (storage/local). Prune removes those
// older than the garbage age with os.Remove.
type Partials interface {
	Partials(fn func(path string, info fs.FileInfo) error) error
}

// RemotePartials is implemented by storages that keep objects in progress
// as temporary files on a server (storage/sftp): Partials reports them with
// the server's modification time, RemovePartial deletes one (and refuses
// anything that is not a temporary file).
type RemotePartials interface {
	Partials(ctx context.Context, fn func(path string, info fs.FileInfo) error) error
	RemovePartial(ctx context.Context, path string) error
}

// Source is one source to prune.
type Source struct {
	Name   string
	Policy retention.Policy
	// RPO is the source's rpo; zero turns the overdue rule off.
	RPO      time.Duration
	Storages []storage.Storage
}

// NewSource builds a Source from its config and opened storages (opened
// with storage.Options.Prune set, so that prune_credentials apply).
func NewSource(src *config.Source, storages []storage.Storage) (Source, error) {
	p, err := retention.NewPolicy(src.Keep, src.KeepTagged, src.Timezone)
	if err != nil {
		return Source{}, fmt.Errorf("source %s: %w", src.Name, err)
	}
	return Source{Name: src.Name, Policy: p, RPO: src.RPO.D(), Storages: storages}, nil
}

// Options tune a plan. The zero value is usable.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// TrustClock plans deletions even when clocks disagree (--trust-clock).
	TrustClock bool
	// ClockTolerance is how far manifest and storage times may differ
	// (default 1h).
	ClockTolerance time.Duration
	// GarbageAge is how old garbage must be to be removed (default 24h).
	GarbageAge time.Duration
	Logger     *slog.Logger
}

func (o Options) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

// Plan is what prune will do for one source.
type Plan struct {
	Source string
	Policy string
	Now    time.Time
	// Backups lists every backup in every storage: by storage (in the
	// source's order), part, then newest first.
	Backups []Backup
	Garbage []Garbage
	// Aborts are storages asked to abort unfinished uploads.
	Aborts []Abort
	// Warnings are problems that do not stop the plan (unreadable manifests,
	// clock disagreement under --trust-clock).
	Warnings []string
	// Refused is set when a safety rule stops the plan: it wraps ErrOverdue
	// or ErrClock, and nothing is deleted (Actions is empty).
	Refused error
}

// Backup is one backup in one storage and the verdict on it.
type Backup struct {
	retention.Decision
	Storage storage.Storage
	Part    string
	Suspect bool
	// Key is the artifact's key; Drills the keys of its drill reports.
	Key             string
	Drills          []string
	ManifestModTime time.Time
}

// Garbage is one leftover to remove.
type Garbage struct {
	Storage storage.Storage
	// Key is the object's key, or Path a temporary file's path (local, or
	// relative to a remote storage's folder).
	Key, Path string
	Size      int64
	ModTime   time.Time
	Why       string

	remove func(ctx context.Context) error // for temporary files
}

// Abort is a request to a storage to abort unfinished uploads started more
// than OlderThan ago.
type Abort struct {
	Storage   storage.Storage
	OlderThan time.Duration
}

// Action is one deletion of a plan.
type Action struct {
	Storage storage.Storage
	// What is "artifact", "manifest", "drill report", "garbage", "temp file"
	// or "unfinished uploads".
	What string
	// Key is the storage key (or local path of a temp file, or for
	// unfinished uploads a description).
	Key      string
	BackupID string

	group string // actions after a failed artifact in the same group are skipped
	do    func(ctx context.Context) (int, error)
}

// Actions returns the deletions the plan makes, in the order Execute makes
// them; none when the plan was refused.
func (p *Plan) Actions() []Action {
	if p.Refused != nil {
		return nil
	}
	var out []Action
	for _, b := range p.Backups {
		if b.Keep {
			continue
		}
		st, group := b.Storage, storageName(b.Storage)+"\x00"+b.Key
		del := func(key string) func(ctx context.Context) (int, error) {
			return func(ctx context.Context) (int, error) { return 1, st.Delete(ctx, key) }
		}
		out = append(out, Action{Storage: st, What: "artifact", Key: b.Key, BackupID: b.ID, group: group, do: del(b.Key)})
		mk := catalog.ManifestKey(b.Key)
		out = append(out, Action{Storage: st, What: "manifest", Key: mk, BackupID: b.ID, group: group, do: del(mk)})
		for _, d := range b.Drills {
			out = append(out, Action{Storage: st, What: "drill report", Key: d, BackupID: b.ID, group: group, do: del(d)})
		}
	}
	for _, g := range p.Garbage {
		if g.Path != "" {
			remove := g.remove
			out = append(out, Action{Storage: g.Storage, What: "temp file", Key: g.Path, do: func(ctx context.Context) (int, error) {
				return 1, remove(ctx)
			}})
			continue
		}
		st, key := g.Storage, g.Key
		out = append(out, Action{Storage: st, What: "garbage", Key: key, do: func(ctx context.Context) (int, error) {
			return 1, st.Delete(ctx, key)
		}})
	}
	for _, a := range p.Aborts {
		ab := a.Storage.(IncompleteAborter)
		out = append(out, Action{Storage: a.Storage, What: "unfinished uploads",
			Key: "started more than " + config.FormatDuration(a.OlderThan) + " ago",
			do:  func(ctx context.Context) (int, error) { return ab.AbortIncomplete(ctx, a.OlderThan) }})
	}
	return out
}

func storageName(s storage.Storage) string {
	if s == nil {
		return ""
	}
	return s.Name()
}

// Deletes returns how many backups (per storage) the plan deletes.
func (p *Plan) Deletes() int {
	if p.Refused != nil {
		return 0
	}
	n := 0
	for _, b := range p.Backups {
		if !b.Keep {
			n++
		}
	}
	return n
}

// artifactRE matches artifact file names of one source:
// "{host}.{timestamp}.{source}[.{part}].{format}".
func artifactRE(src string) *regexp.Regexp {
	return regexp.MustCompile(`^[^/]+\.[0-9]{8}T[0-9]{6}Z\.` + regexp.QuoteMeta(src) + `\.[^/]+$`)
}

// drillArtifact returns the artifact key a drill report key belongs to
// ("{artifact}.{timestamp}.drill.json").
func drillArtifact(key string) (string, bool) {
	k, ok := strings.CutSuffix(key, catalog.DrillSuffix)
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(k, '.')
	if i < 0 {
		return "", false
	}
	return k[:i], true
}

// NewPlan reads the source's storages and plans its prune. An error means a
// storage could not be read (nothing is planned); a safety refusal is
// reported in Plan.Refused instead, with the plan that would have run.
func NewPlan(ctx context.Context, src Source, opt Options) (*Plan, error) {
	if opt.ClockTolerance <= 0 {
		opt.ClockTolerance = DefaultClockTolerance
	}
	if opt.GarbageAge <= 0 {
		opt.GarbageAge = DefaultGarbageAge
	}
	now := opt.now()
	p := &Plan{Source: src.Name, Policy: src.Policy.String(), Now: now}
	cutoff := now.Add(-opt.GarbageAge)

	type stored struct {
		st      storage.Storage
		objects []storage.Object
		entries []catalog.Entry
	}
	var all []stored
	for _, s := range src.Storages {
		// List the objects first, then the manifests: a backup committing
		// in between has its manifest seen, never its artifact alone.
		var objs []storage.Object
		err := s.List(ctx, src.Name+"/", func(o storage.Object) error {
			objs = append(objs, o)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list %s in %s: %w", src.Name, s.Name(), err)
		}
		es, err := catalog.List(ctx, s, src.Name, func(key string, err error) {
			p.Warnings = append(p.Warnings, fmt.Sprintf("%s: %s: unreadable manifest kept: %v", s.Name(), key, err))
		})
		if err != nil {
			return nil, fmt.Errorf("list backups of %s in %s: %w", src.Name, s.Name(), err)
		}
		es = slices.DeleteFunc(es, func(e catalog.Entry) bool { return e.Source != src.Name })
		all = append(all, stored{s, objs, es})
	}

	// Facts about each backup id across storages: the newest drill report,
	// and the earliest time a storage recorded its manifest (a later copy
	// made by `lifeboat copy` has a later one).
	type fact struct {
		m       *catalog.Manifest
		drill   *catalog.DrillReport
		firstMT time.Time
	}
	facts := map[string]*fact{}
	for _, s := range all {
		for _, e := range s.entries {
			f := facts[e.ID]
			if f == nil {
				f = &fact{m: e.Manifest, firstMT: e.ManifestModTime}
				facts[e.ID] = f
			}
			if e.ManifestModTime.Before(f.firstMT) {
				f.firstMT = e.ManifestModTime
			}
			if e.Drill != nil && (f.drill == nil || e.Drill.Finished.After(f.drill.Finished)) {
				f.drill = e.Drill
			}
		}
	}
	good := func(id string) bool { f := facts[id]; return retention.Good(f.m, f.drill) }

	// Safety: clocks.
	var clock []string
	for id, f := range facts {
		skew := f.firstMT.Sub(f.m.Finished)
		if skew > opt.ClockTolerance || -skew > opt.ClockTolerance {
			clock = append(clock, fmt.Sprintf("backup %s finished at %s by its manifest but the storage recorded the manifest at %s",
				id, f.m.Finished.UTC().Format(time.RFC3339), f.firstMT.UTC().Format(time.RFC3339)))
		}
		if f.m.Started.Sub(now) > opt.ClockTolerance {
			clock = append(clock, fmt.Sprintf("backup %s is dated %s, in the future", id, f.m.Started.UTC().Format(time.RFC3339)))
		}
	}
	byPart := map[string][]*catalog.Manifest{}
	for _, f := range facts {
		byPart[f.m.Part] = append(byPart[f.m.Part], f.m)
	}
	for _, ms := range byPart {
		slices.SortFunc(ms, func(a, b *catalog.Manifest) int {
			return cmp.Or(cmp.Compare(a.Sequence, b.Sequence), a.Started.Compare(b.Started))
		})
		var latest *catalog.Manifest
		for _, m := range ms {
			if latest != nil && latest.Sequence < m.Sequence && latest.Started.Sub(m.Started) > opt.ClockTolerance {
				clock = append(clock, fmt.Sprintf("backup %s (sequence %d, %s) is dated before backup %s (sequence %d, %s)",
					m.ID, m.Sequence, m.Started.UTC().Format(time.RFC3339), latest.ID, latest.Sequence, latest.Started.UTC().Format(time.RFC3339)))
			}
			if latest == nil || m.Started.After(latest.Started) {
				latest = m
			}
		}
	}
	slices.Sort(clock)
	if len(clock) > 0 {
		if opt.TrustClock {
			for _, c := range clock {
				p.Warnings = append(p.Warnings, "clock: "+c+" (trusted: --trust-clock)")
			}
		} else {
			p.Refused = &SafetyError{Source: src.Name, Err: ErrClock, Details: clock,
				Hint: "check the clocks of the backup hosts and the storage; if the times are right, run prune again with --trust-clock"}
		}
	}

	// Safety: rpo.
	if src.RPO > 0 && p.Refused == nil {
		parts := slices.Sorted(maps.Keys(byPart))
		if len(parts) == 0 {
			parts = []string{""}
		}
		for _, part := range parts {
			var newest *catalog.Manifest
			for _, m := range byPart[part] {
				if good(m.ID) && (newest == nil || retention.Newer(backupOf(m), backupOf(newest)) < 0) {
					newest = m
				}
			}
			what := src.Name
			if part != "" {
				what += "/" + part
			}
			var detail string
			switch {
			case newest == nil:
				detail = fmt.Sprintf("%s has no good backup", what)
			case now.Sub(newest.Finished) > src.RPO:
				detail = fmt.Sprintf("the newest good backup of %s (%s) finished %s ago, more than the rpo of %s",
					what, newest.ID, config.FormatDuration(now.Sub(newest.Finished).Round(time.Minute)), config.FormatDuration(src.RPO))
			default:
				continue
			}
			p.Refused = &SafetyError{Source: src.Name, Err: ErrOverdue, Details: []string{detail},
				Hint: "find out why backups stopped (lifeboat status, the last run's report); prune resumes once a fresh good backup exists"}
			break
		}
	}

	// Retention, per storage and part.
	for _, s := range all {
		parts := map[string][]catalog.Entry{}
		for _, e := range s.entries {
			parts[e.Part] = append(parts[e.Part], e)
		}
		drills := map[string][]string{}
		for _, o := range s.objects {
			if a, ok := drillArtifact(o.Key); ok {
				drills[a] = append(drills[a], o.Key)
			}
		}
		for _, part := range slices.Sorted(maps.Keys(parts)) {
			es := parts[part]
			byID := map[string]catalog.Entry{}
			var bs []retention.Backup
			for _, e := range es {
				b := backupOf(e.Manifest)
				b.Good = good(e.ID)
				byID[e.ID] = e
				bs = append(bs, b)
			}
			for _, d := range retention.Apply(bs, src.Policy) {
				e := byID[d.ID]
				ds := drills[e.Key]
				slices.Sort(ds)
				p.Backups = append(p.Backups, Backup{Decision: d, Storage: s.st, Part: part, Suspect: e.Suspect,
					Key: e.Key, Drills: ds, ManifestModTime: e.ManifestModTime})
			}
		}
	}
	if err := p.checkNewestGood(); err != nil {
		return nil, err
	}

	// Garbage.
	re := artifactRE(src.Name)
	for _, s := range all {
		manifests, artifacts := map[string]bool{}, map[string]bool{}
		for _, o := range s.objects {
			if k, ok := strings.CutSuffix(o.Key, catalog.ManifestSuffix); ok {
				manifests[k] = true
			}
		}
		for _, e := range s.entries {
			artifacts[e.Key] = true
		}
		for _, o := range s.objects {
			if !o.ModTime.Before(cutoff) {
				continue
			}
			var why string
			if a, ok := drillArtifact(o.Key); ok {
				if !manifests[a] {
					why = "drill report of a backup that is gone"
				}
			} else if !strings.Contains(o.Key, catalog.ManifestSuffix) && !strings.Contains(o.Key, catalog.DrillSuffix) &&
				!manifests[o.Key] && !artifacts[o.Key] && re.MatchString(strings.TrimPrefix(o.Key, src.Name+"/")) {
				why = "artifact without manifest (interrupted backup)"
			}
			if why != "" {
				p.Garbage = append(p.Garbage, Garbage{Storage: s.st, Key: o.Key, Size: o.Size, ModTime: o.ModTime, Why: why})
			}
		}
		var listPartials func(fn func(string, fs.FileInfo) error) error
		var removePartial func(path string) func(context.Context) error
		switch pt := s.st.(type) {
		case Partials:
			listPartials = pt.Partials
			removePartial = func(path string) func(context.Context) error {
				return func(context.Context) error { return removeFile(path) }
			}
		case RemotePartials:
			listPartials = func(fn func(string, fs.FileInfo) error) error { return pt.Partials(ctx, fn) }
			removePartial = func(path string) func(context.Context) error {
				return func(ctx context.Context) error { return pt.RemovePartial(ctx, path) }
			}
		}
		if listPartials != nil {
			err := listPartials(func(path string, info fs.FileInfo) error {
				if info.ModTime().Before(cutoff) {
					p.Garbage = append(p.Garbage, Garbage{Storage: s.st, Path: path, Size: info.Size(), ModTime: info.ModTime(),
						Why: "temporary file of an interrupted upload", remove: removePartial(path)})
				}
				return nil
			})
			if err != nil {
				p.Warnings = append(p.Warnings, fmt.Sprintf("%s: list temporary files: %v", s.st.Name(), err))
			}
		}
		if _, ok := s.st.(IncompleteAborter); ok {
			p.Aborts = append(p.Aborts, Abort{Storage: s.st, OlderThan: opt.GarbageAge})
		}
	}
	return p, nil
}

// checkNewestGood makes sure no plan deletes the newest good backup of a
// part in a storage, whatever retention decided.
func (p *Plan) checkNewestGood() error {
	seen := map[string]bool{}
	for _, b := range p.Backups { // newest first within storage and part
		k := storageName(b.Storage) + "\x00" + b.Part
		if seen[k] || !b.Good {
			continue
		}
		seen[k] = true
		if !b.Keep {
			return fmt.Errorf("internal error: the plan for %s would delete the newest good backup %s in %s; nothing pruned", p.Source, b.ID, storageName(b.Storage))
		}
	}
	return nil
}

func backupOf(m *catalog.Manifest) retention.Backup {
	return retention.Backup{ID: m.ID, Time: m.Started, Sequence: m.Sequence, Tags: m.Tags}
}

// SafetyError is a plan refused by a safety rule.
type SafetyError struct {
	Source  string
	Err     error // ErrOverdue or ErrClock
	Details []string
	Hint    string
}

func (e *SafetyError) Error() string {
	return fmt.Sprintf("prune %s refused: %v: %s", e.Source, e.Err, strings.Join(e.Details, "; "))
}

func (e *SafetyError) Unwrap() error { return e.Err }
