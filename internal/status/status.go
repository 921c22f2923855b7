// Package status answers "are my backups all right?" for each source: its
// newest good backup and that backup's age against the rpo, its size and
// change from the previous backup, the last drill and its measured RTO, and
// each storage's used and free space.
//
// # Problems
//
// A source (or part) has a problem, and `lifeboat status` exits non-zero,
// when it is overdue (its newest good backup is older than its rpo, or it
// has none and an rpo is set), when its newest backup is suspect (a
// backup-time check failed), when its newest drill failed, or when one of its
// storages could not be read. A good backup is one that is not suspect and
// whose newest drill, if any, passed (retention.Good).
package status

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/retention"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

// UsageReporter is implemented by storages that know how many bytes they
// hold without listing every object (a bucket's metrics, a quota).
type UsageReporter interface {
	Used(ctx context.Context) (int64, error)
}

// Source is one source to report on.
type Source struct {
	Name string
	// RPO and RTO are the declared objectives; zero means none.
	RPO, RTO time.Duration
	Storages []storage.Storage
}

// Verify is one recorded verify run, when a record exists.
type Verify struct {
	When time.Time `json:"when"`
	OK   bool      `json:"ok"`
}

// Options tune Collect. The zero value is usable.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// LastVerify returns the newest recorded verify of a source and part,
	// nil when none is recorded or no record is kept.
	LastVerify func(source, part string) *Verify
}

// Report is the status of every source and storage.
type Report struct {
	Generated time.Time       `json:"generated"`
	Sources   []SourceStatus  `json:"sources"`
	Storages  []StorageStatus `json:"storages"`
}

// Backup is one backup as status shows it.
type Backup struct {
	ID         string    `json:"id"`
	Sequence   int64     `json:"sequence"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	StoredSize int64     `json:"stored_size"`
	PlainSize  int64     `json:"plain_size"`
	Suspect    bool      `json:"suspect,omitempty"`
	Tags       []string  `json:"tags,omitempty"`
	// Storages holds a copy of the backup.
	Storages []string `json:"storages"`
}

// Drill is the newest drill of a source (or part).
type Drill struct {
	BackupID    string    `json:"backup_id"`
	When        time.Time `json:"when"`
	OK          bool      `json:"ok"`
	RTOSeconds  float64   `json:"rto_seconds"`
	RTOTarget   float64   `json:"rto_target_seconds,omitempty"`
	RTOExceeded bool      `json:"rto_exceeded,omitempty"`
	Failed      []string  `json:"failed,omitempty"`
}

// SourceStatus is one source, or one part of a source with several.
type SourceStatus struct {
	Source     string  `json:"source"`
	Part       string  `json:"part,omitempty"`
	RPOSeconds float64 `json:"rpo_seconds,omitempty"`
	RTOSeconds float64 `json:"rto_seconds,omitempty"`
	Backups    int     `json:"backups"`
	// Newest is the newest backup; NewestGood the newest good one.
	Newest     *Backup `json:"newest,omitempty"`
	NewestGood *Backup `json:"newest_good,omitempty"`
	// AgeSeconds is the newest good backup's age (since it finished).
	AgeSeconds float64 `json:"age_seconds,omitempty"`
	Overdue    bool    `json:"overdue"`
	Suspect    bool    `json:"suspect"`
	// PrevStoredSize is the stored size of the backup before NewestGood
	// (0 when none); ChangePercent the change from it.
	PrevStoredSize int64    `json:"prev_stored_size,omitempty"`
	ChangePercent  *float64 `json:"change_percent,omitempty"`
	LastVerify     *Verify  `json:"last_verify,omitempty"`
	LastDrill      *Drill   `json:"last_drill,omitempty"`
	// Problems say in words what is wrong; empty when all is well.
	Problems []string `json:"problems,omitempty"`
}

// StorageStatus is one storage's space. Used and Free are -1 when unknown.
type StorageStatus struct {
	Name  string `json:"name"`
	Used  int64  `json:"used"`
	Free  int64  `json:"free"`
	Error string `json:"error,omitempty"`
}

// Problems lists every source's problems, prefixed with its name.
func (r *Report) Problems() []string {
	var out []string
	for _, s := range r.Sources {
		for _, p := range s.Problems {
			out = append(out, s.Name()+": "+p)
		}
	}
	return out
}

// OK reports whether no source has a problem.
func (r *Report) OK() bool { return len(r.Problems()) == 0 }

// Name is "source" or "source/part".
func (s SourceStatus) Name() string {
	if s.Part == "" {
		return s.Source
	}
	return s.Source + "/" + s.Part
}

// Collect reads every storage of every source and builds the report. It
// fails only when ctx ends; unreadable storages become problems.
func Collect(ctx context.Context, sources []Source, opt Options) (*Report, error) {
	now := time.Now
	if opt.Now != nil {
		now = opt.Now
	}
	rep := &Report{Generated: now().UTC()}
	seen := map[string]storage.Storage{}
	var order []string
	for _, src := range sources {
		for _, st := range src.Storages {
			if _, ok := seen[st.Name()]; !ok {
				seen[st.Name()] = st
				order = append(order, st.Name())
			}
		}
		sts, err := collectSource(ctx, src, rep.Generated, opt)
		if err != nil {
			return nil, err
		}
		rep.Sources = append(rep.Sources, sts...)
	}
	for _, name := range order {
		rep.Storages = append(rep.Storages, space(ctx, seen[name]))
	}
	return rep, ctx.Err()
}

type copyOf struct {
	m        *catalog.Manifest
	drill    *catalog.DrillReport
	storages []string
}

func collectSource(ctx context.Context, src Source, now time.Time, opt Options) ([]SourceStatus, error) {
	var readErrs []string
	byID := map[string]*copyOf{}
	for _, st := range src.Storages {
		es, err := catalog.List(ctx, st, src.Name, func(key string, err error) {
			readErrs = append(readErrs, fmt.Sprintf("storage %s: unreadable manifest %s", st.Name(), key))
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			readErrs = append(readErrs, fmt.Sprintf("storage %s could not be read: %v", st.Name(), err))
			continue
		}
		for _, e := range es {
			if e.Source != src.Name {
				continue
			}
			c := byID[e.ID]
			if c == nil {
				c = &copyOf{m: e.Manifest}
				byID[e.ID] = c
			}
			c.storages = append(c.storages, st.Name())
			if e.Drill != nil && (c.drill == nil || e.Drill.Finished.After(c.drill.Finished)) {
				c.drill = e.Drill
			}
		}
	}
	parts := map[string][]*copyOf{}
	for _, c := range byID {
		parts[c.m.Part] = append(parts[c.m.Part], c)
	}
	if len(parts) == 0 {
		parts[""] = nil
	}
	var out []SourceStatus
	for _, part := range slices.Sorted(maps.Keys(parts)) {
		cs := parts[part]
		// Newest first, as retention orders them.
		slices.SortFunc(cs, func(a, b *copyOf) int {
			return retention.Newer(backupOf(a.m), backupOf(b.m))
		})
		s := SourceStatus{Source: src.Name, Part: part, Backups: len(cs), RPOSeconds: src.RPO.Seconds(), RTOSeconds: src.RTO.Seconds()}
		if len(cs) > 0 {
			s.Newest = info(cs[0])
			s.Suspect = cs[0].m.Suspect
		}
		for i, c := range cs {
			if !retention.Good(c.m, c.drill) {
				continue
			}
			s.NewestGood = info(c)
			s.AgeSeconds = now.Sub(c.m.Finished).Seconds()
			if i+1 < len(cs) {
				prev := cs[i+1].m.StoredSize
				s.PrevStoredSize = prev
				if prev > 0 {
					ch := (float64(c.m.StoredSize) - float64(prev)) / float64(prev) * 100
					s.ChangePercent = &ch
				}
			}
			break
		}
		// The newest drill of any backup of this part.
		for _, c := range cs {
			d := c.drill
			if d == nil || (s.LastDrill != nil && !d.Finished.After(s.LastDrill.When)) {
				continue
			}
			ld := &Drill{BackupID: d.BackupID, When: d.Finished, OK: d.OK, RTOSeconds: d.RTOSeconds, RTOTarget: d.RTOTarget}
			for _, ch := range d.Checks {
				if !ch.OK {
					ld.Failed = append(ld.Failed, ch.Name+": "+ch.Detail)
					if ch.Name == "rto" {
						ld.RTOExceeded = true
					}
				}
			}
			s.LastDrill = ld
		}
		if opt.LastVerify != nil {
			s.LastVerify = opt.LastVerify(src.Name, part)
		}
		s.Problems = append(s.Problems, readErrs...)
		switch {
		case src.RPO > 0 && s.NewestGood == nil:
			s.Overdue = true
			s.Problems = append(s.Problems, fmt.Sprintf("overdue: no good backup (rpo %s)", declared(src.RPO)))
		case src.RPO > 0 && now.Sub(s.NewestGood.Finished) > src.RPO:
			s.Overdue = true
			s.Problems = append(s.Problems, fmt.Sprintf("overdue: newest good backup is %s old (rpo %s)", dur(now.Sub(s.NewestGood.Finished)), declared(src.RPO)))
		}
		if s.Suspect {
			var why []string
			for _, c := range cs[0].m.Checks {
				if !c.OK {
					why = append(why, c.Name+": "+c.Detail)
				}
			}
			s.Problems = append(s.Problems, "newest backup "+cs[0].m.ID+" is suspect: "+cmp.Or(strings.Join(why, "; "), "a backup-time check failed"))
		}
		if s.LastDrill != nil && !s.LastDrill.OK {
			s.Problems = append(s.Problems, "last drill of "+s.LastDrill.BackupID+" failed: "+cmp.Or(strings.Join(s.LastDrill.Failed, "; "), "see its report"))
		}
		out = append(out, s)
	}
	return out, nil
}

func backupOf(m *catalog.Manifest) retention.Backup {
	return retention.Backup{ID: m.ID, Time: m.Started, Sequence: m.Sequence}
}

func info(c *copyOf) *Backup {
	m := c.m
	sts := slices.Clone(c.storages)
	slices.Sort(sts)
	return &Backup{ID: m.ID, Sequence: m.Sequence, Started: m.Started, Finished: m.Finished, StoredSize: m.StoredSize,
		PlainSize: m.PlainSize, Suspect: m.Suspect, Tags: m.Tags, Storages: sts}
}

// space asks a storage for its used and free bytes. Used comes from a
// UsageReporter, or else from listing every object.
func space(ctx context.Context, st storage.Storage) StorageStatus {
	s := StorageStatus{Name: st.Name(), Used: -1, Free: -1}
	var errs []error
	if u, ok := st.(UsageReporter); ok {
		n, err := u.Used(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("used space: %w", err))
		} else {
			s.Used = n
		}
	} else {
		var n int64
		err := st.List(ctx, "", func(o storage.Object) error {
			n += o.Size
			return nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("list: %w", err))
		} else {
			s.Used = n
		}
	}
	if sr, ok := st.(storage.SpaceReporter); ok {
		sp, err := sr.Space(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("free space: %w", err))
		} else {
			s.Free = sp.Free
		}
	}
	if err := errors.Join(errs...); err != nil {
		s.Error = err.Error()
	}
	return s
}

// declared prints a configured duration the way it is usually written:
// "1h", "90m", "1d", "1d12h".
func declared(d time.Duration) string {
	if d >= 24*time.Hour && d%time.Hour == 0 {
		days, h := d/(24*time.Hour), (d%(24*time.Hour))/time.Hour
		if h == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, h)
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// dur prints a duration for people: "26h", "3d4h", "45m".
func dur(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		d = d.Round(time.Hour)
		days, h := d/(24*time.Hour), (d%(24*time.Hour))/time.Hour
		if h == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, h)
	case d >= time.Hour:
		d = d.Round(time.Minute)
		h, m := d/time.Hour, (d%time.Hour)/time.Minute
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	case d >= time.Minute:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}
