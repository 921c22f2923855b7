// Package summary builds the daily summary: every source, what was backed up
// in the last day with sizes and change, failures, overdue sources, the last
// drill of each source, and the space left on each storage.
//
// # Where the numbers come from
//
// Backups are read from the manifests in the storages ([catalog.List]), never
// from memory, so `lifeboat report` on any host that can read the storages
// prints the same summary as the daemon that ran the backups. Failures are not
// in the storages (a failed run commits nothing); they come from run reports
// when the caller has some ([Input.Runs]). Free space comes from storages
// that implement [storage.SpaceReporter]; the bytes used by lifeboat are the
// sum of the stored sizes in the manifests, or [UsageReporter.Used] when the
// storage knows better.
//
// # Rendering
//
// [Summary.Text] and [Summary.HTML] render the same content; the HTML is
// produced by html/template, so every name, error and path is escaped.
package summary

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/report"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

// DefaultWindow is the period a summary covers when none is given.
const DefaultWindow = 24 * time.Hour

// UsageReporter is implemented by storages that can tell how many bytes they
// hold (a quota, a bucket's metrics). Optional; without it the used bytes
// are summed from the manifests.
type UsageReporter interface {
	Used(ctx context.Context) (int64, error)
}

// Input is what [Build] reads.
type Input struct {
	// Config gives the sources (in file order), their RPOs and storages.
	// Nil means: only what the storages hold.
	Config *config.Config
	// Storages are listed for manifests; normally one per configured storage.
	Storages []storage.Storage
	// Runs are recent run reports, for failures. Optional.
	Runs []*report.Run
	// Now is the end of the period; Window its length (DefaultWindow if 0).
	Now    time.Time
	Window time.Duration
	// Host is the host the summary is made on, for the title. Optional.
	Host string
	// Location is used to print times (the summary's timezone). Nil is UTC.
	Location *time.Location
	// Logger receives unreadable manifests; nil discards.
	Logger *slog.Logger
}

// Status is a source's state in a summary.
type Status string

const (
	OK      Status = "ok"      // backed up in the period, nothing wrong
	Failed  Status = "failed"  // its latest run in the period failed
	Overdue Status = "overdue" // newest good backup older than its RPO
	Suspect Status = "suspect" // newest backup failed a backup-time check
	Idle    Status = "idle"    // no backup in the period, but not overdue
	Never   Status = "never"   // no backup at all
)

// Summary is the content of a daily summary. It is also sent as JSON by the
// webhook notifier; its field names are part of that format.
type Summary struct {
	Host     string    `json:"host,omitempty"`
	From     time.Time `json:"from"`
	Until    time.Time `json:"until"`
	Sources  []Source  `json:"sources"`
	Storages []Storage `json:"storages"`
	Failures []Failure `json:"failures,omitempty"`
	// Problems are things that made the summary incomplete (a storage that
	// could not be listed, a manifest that could not be read).
	Problems []string `json:"problems,omitempty"`

	// Location is the time zone times are printed in.
	Location *time.Location `json:"-"`
}

// Source is one source's line in the summary.
type Source struct {
	Name string `json:"name"`
	// Configured is false for sources found in a storage but not in the
	// config (removed, or another host's).
	Configured bool   `json:"configured"`
	Status     Status `json:"status"`
	// Backups and Bytes count the backups committed in the period (stored
	// bytes, each backup once however many storages hold it).
	Backups int   `json:"backups"`
	Bytes   int64 `json:"bytes"`
	// Size is the stored size of the newest backup in the period (summed
	// over parts), PrevSize that of the newest one before the period; 0
	// when there is none.
	Size     int64 `json:"size"`
	PrevSize int64 `json:"prev_size"`
	// Newest is the newest good (committed, not suspect) backup, if any.
	Newest *Backup `json:"newest,omitempty"`
	// Suspect is set when the newest backup failed a backup-time check.
	Suspect bool `json:"suspect,omitempty"`
	// RPO is the configured recovery point objective (0: none). JSON:
	// rpo_seconds.
	RPO time.Duration `json:"-"`
	// Failures counts failed runs of the source in the period.
	Failures int `json:"failures"`
	// Drill is the newest drill of any of the source's backups.
	Drill *Drill `json:"drill,omitempty"`
}

// MarshalJSON writes the RPO in seconds.
func (s Source) MarshalJSON() ([]byte, error) {
	type plain Source
	return json.Marshal(struct {
		plain
		RPO float64 `json:"rpo_seconds"`
	}{plain(s), s.RPO.Seconds()})
}

// Backup is one committed backup.
type Backup struct {
	ID         string    `json:"id"`
	Finished   time.Time `json:"finished"`
	StoredSize int64     `json:"stored_size"`
	Storages   []string  `json:"storages"`
}

// Drill is the result of a restore drill.
type Drill struct {
	Finished   time.Time     `json:"finished"`
	OK         bool          `json:"ok"`
	RTO        time.Duration `json:"-"` // JSON: rto_seconds
	RTOTarget  time.Duration `json:"-"` // JSON: rto_target_seconds
	BackupID   string        `json:"backup_id"`
	Error      string        `json:"error,omitempty"`
	OverTarget bool          `json:"over_target,omitempty"`
}

// MarshalJSON writes the durations in seconds.
func (d Drill) MarshalJSON() ([]byte, error) {
	type plain Drill
	return json.Marshal(struct {
		plain
		RTO       float64 `json:"rto_seconds"`
		RTOTarget float64 `json:"rto_target_seconds,omitempty"`
	}{plain(d), d.RTO.Seconds(), d.RTOTarget.Seconds()})
}

// Storage is one storage's line.
type Storage struct {
	Name    string `json:"name"`
	Backups int    `json:"backups"`
	// Used is the bytes lifeboat's backups take there, -1 unknown.
	Used int64 `json:"used"`
	// Free is the space left, -1 unknown (object storage).
	Free int64 `json:"free"`
	// Error is set when the storage could not be listed.
	Error string `json:"error,omitempty"`
}

// Failure is one failed run item in the period.
type Failure struct {
	Source string      `json:"source"`
	Kind   report.Kind `json:"kind"`
	When   time.Time   `json:"when"`
	Error  string      `json:"error"`
}

// Age is how old the source's newest good backup is at the end of the
// period; -1 when there is none.
func (s *Summary) Age(src *Source) time.Duration {
	if src.Newest == nil {
		return -1
	}
	return s.Until.Sub(src.Newest.Finished)
}

// Count returns how many sources have status st.
func (s *Summary) Count(st Status) int {
	n := 0
	for _, src := range s.Sources {
		if src.Status == st {
			n++
		}
	}
	return n
}

// Build reads the storages and run reports and makes the summary. It does
// not fail when a storage cannot be read: that goes into the summary, which
// is exactly where someone needs to see it.
func Build(ctx context.Context, in Input) (*Summary, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log := in.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	window := in.Window
	if window <= 0 {
		window = DefaultWindow
	}
	loc := in.Location
	if loc == nil {
		loc = time.UTC
	}
	s := &Summary{Host: in.Host, From: in.Now.Add(-window), Until: in.Now, Location: loc}

	// Read every storage; the same backup in several storages counts once.
	byID := map[string]*entryInfo{}
	var order []string
	for _, st := range in.Storages {
		line := Storage{Name: st.Name(), Used: -1, Free: -1}
		entries, err := catalog.List(ctx, st, "", func(key string, err error) {
			log.Warn("unreadable manifest", "storage", st.Name(), "key", key, "error", err)
			s.Problems = append(s.Problems, "storage "+st.Name()+": unreadable manifest "+key+": "+err.Error())
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			line.Error = err.Error()
			s.Problems = append(s.Problems, "storage "+st.Name()+" could not be listed: "+err.Error())
			s.Storages = append(s.Storages, line)
			continue
		}
		var used int64
		for _, e := range entries {
			line.Backups++
			used += e.StoredSize
			info, ok := byID[e.ID]
			if !ok {
				info = &entryInfo{Entry: e}
				byID[e.ID] = info
				order = append(order, e.ID)
			}
			info.storages = append(info.storages, st.Name())
			if e.Drill != nil && (info.Drill == nil || e.Drill.Finished.After(info.Drill.Finished)) {
				info.Drill = e.Drill
			}
		}
		line.Used = used
		if ur, ok := st.(UsageReporter); ok {
			if u, err := ur.Used(ctx); err == nil {
				line.Used = u
			}
		}
		if sr, ok := st.(storage.SpaceReporter); ok {
			if sp, err := sr.Space(ctx); err == nil {
				line.Free = sp.Free
			} else {
				s.Problems = append(s.Problems, "storage "+st.Name()+": free space unknown: "+err.Error())
			}
		}
		s.Storages = append(s.Storages, line)
	}

	// Group by source, keeping the config's order first.
	bySource := map[string][]*entryInfo{}
	for _, id := range order {
		e := byID[id]
		bySource[e.Source] = append(bySource[e.Source], e)
	}
	var names []string
	configured := map[string]bool{}
	if in.Config != nil {
		for _, n := range in.Config.SourceNames {
			names = append(names, n)
			configured[n] = true
		}
	}
	var extra []string
	for n := range bySource {
		if !configured[n] {
			extra = append(extra, n)
		}
	}
	slices.Sort(extra)
	names = append(names, extra...)

	failures, lastRun := failuresFrom(in.Runs, s.From, s.Until)
	s.Failures = failures

	for _, name := range names {
		src := Source{Name: name, Configured: configured[name]}
		if in.Config != nil {
			if c := in.Config.Sources[name]; c != nil {
				src.RPO = c.RPO.D()
			}
		}
		fillSource(&src, bySource[name], s.From, s.Until)
		for _, f := range failures {
			if f.Source == name {
				src.Failures++
			}
		}
		src.Status = status(&src, s.Until, lastRun[name])
		s.Sources = append(s.Sources, src)
	}
	return s, nil
}

type entryInfo struct {
	catalog.Entry
	storages []string
}

// fillSource computes the per-source numbers from its entries.
func fillSource(src *Source, entries []*entryInfo, from, until time.Time) {
	slices.SortFunc(entries, func(a, b *entryInfo) int { return a.Finished.Compare(b.Finished) })
	newestIn := map[string]*entryInfo{}     // part -> newest in period
	newestBefore := map[string]*entryInfo{} // part -> newest before period
	for _, e := range entries {
		if e.Finished.After(until) {
			continue // made after the period's end (a report for the past)
		}
		if !e.Finished.Before(from) {
			src.Backups++
			src.Bytes += e.StoredSize
			newestIn[e.Part] = e
		} else {
			newestBefore[e.Part] = e
		}
		src.Suspect = e.Suspect
		if !e.Suspect {
			src.Newest = &Backup{ID: e.ID, Finished: e.Finished, StoredSize: e.StoredSize, Storages: e.storages}
		}
		if d := e.Drill; d != nil && d.Finished.Before(until.Add(time.Second)) &&
			(src.Drill == nil || d.Finished.After(src.Drill.Finished)) {
			src.Drill = &Drill{
				Finished:  d.Finished,
				OK:        d.OK,
				RTO:       seconds(d.RTOSeconds),
				RTOTarget: seconds(d.RTOTarget),
				BackupID:  d.BackupID,
				Error:     d.Error,
			}
			src.Drill.OverTarget = d.RTOTarget > 0 && d.RTOSeconds > d.RTOTarget
		}
	}
	for part, e := range newestIn {
		src.Size += e.StoredSize
		if p := newestBefore[part]; p != nil {
			src.PrevSize += p.StoredSize
		}
	}
}

// status decides a source's single word. A failure counts only when the
// source's last backup run in the period failed: a later success repaired it.
func status(src *Source, until time.Time, lastRunFailed *bool) Status {
	switch {
	case lastRunFailed != nil && *lastRunFailed:
		return Failed
	case src.RPO > 0 && (src.Newest == nil || until.Sub(src.Newest.Finished) > src.RPO):
		return Overdue
	case src.Newest == nil && src.Backups == 0:
		return Never
	case src.Suspect:
		return Suspect
	case src.Backups == 0:
		return Idle
	}
	return OK
}

// failuresFrom lists failed items of runs that finished in [from, until],
// and whether each source's last run there failed.
func failuresFrom(runs []*report.Run, from, until time.Time) ([]Failure, map[string]*bool) {
	var out []Failure
	type last struct {
		when   time.Time
		failed bool
	}
	lasts := map[string]*last{}
	for _, r := range runs {
		if r == nil || r.Finished.Before(from) || r.Finished.After(until) {
			continue
		}
		for _, it := range r.Items {
			when := it.Finished
			if when.IsZero() {
				when = r.Finished
			}
			failed := it.Status == report.Failed || it.Status == report.Partial
			if failed {
				msg := it.Error
				if msg == "" {
					msg = string(it.Status)
				}
				out = append(out, Failure{Source: it.Source, Kind: r.Kind, When: when, Error: firstLine(msg)})
			}
			if r.Kind != report.Backup {
				continue
			}
			if l := lasts[it.Source]; l == nil || !when.Before(l.when) {
				lasts[it.Source] = &last{when: when, failed: failed}
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Failure) int { return a.When.Compare(b.When) })
	res := map[string]*bool{}
	for k, l := range lasts {
		res[k] = &l.failed
	}
	return out, res
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

func seconds(f float64) time.Duration {
	return time.Duration(f * float64(time.Second)).Round(time.Second)
}
