// Package drill restores a backup into a scratch target and checks that the
// copy is usable: the real test of a backup.
//
// # What a drill checks
//
//   - restore: the artifact's bytes match the manifest's size and SHA-256,
//     and the stream decrypts and decompresses to its end, through the same
//     restore code path `lifeboat restore` uses (job.Runner.Restore).
//   - row_counts: every table the manifest counted has the same number of
//     rows in the restored copy.
//   - schema_version: the source's schema_version query returns on the
//     restored copy what the manifest recorded.
//   - file_count: for file backups, the restored folder holds as many
//     regular files and bytes as the manifest recorded.
//   - assertion NAME: the user's own checks: SQL that must return true on the
//     restored copy, or a shell command that must exit 0, run with the
//     restored target in LIFEBOAT_DRILL_TARGET.
//   - rto: the time from the drill's start to a usable restored copy (the
//     real recovery time) against the source's declared rto.
//
// The report's OK says whether the restored copy is good: every check but
// rto passed. A slow restore does not make a backup bad, but the rto check
// is recorded as failed and the drill command exits non-zero.
//
// # Scratch targets
//
// A drill never touches the source. SQL drills restore into a new database
// named lifeboat_drill_SOURCE_TIME on the source's drill server, checked not
// to exist before anything is written, and dropped afterwards; SQLite and
// file drills restore into a new temporary folder, removed afterwards. An
// [Inspector] does this per source type.
//
// # Report
//
// The report is written beside the artifact as catalog.DrillKey(artifact,
// started), in the storage the backup was read from. Reports are never
// overwritten; `list` and `status` show the newest.
package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/job"
	"github.com/lifeboat-backup/lifeboat/internal/pipeline"
	"github.com/lifeboat-backup/lifeboat/internal/source"
)

// Check names in drill reports.
const (
	CheckRestore       = "restore"
	CheckRowCounts     = "row_counts"
	CheckSchemaVersion = "schema_version"
	CheckFileCount     = "file_count"
	CheckRTO           = "rto"
	assertionPrefix    = "assertion "
)

// Inspector makes, examines and removes scratch targets of one source type.
// Targets are what the type's source.Restorer takes (a file path, a folder,
// a database URL).
type Inspector interface {
	// NewTarget returns a scratch target for a drill named name
	// (lifeboat_drill_...) that is known not to exist yet. Nothing is
	// written to the source.
	NewTarget(ctx context.Context, name string) (string, error)
	// RowCounts counts the rows of the named tables (keys as in
	// source.Meta.RowCounts) in target; a missing table is absent from the
	// result.
	RowCounts(ctx context.Context, target string, tables []string) (map[string]int64, error)
	// SchemaVersion runs the source's schema_version query on target.
	SchemaVersion(ctx context.Context, target, query string) (string, error)
	// Query runs an assertion's SQL on target and reports whether its first
	// column of its first row is true (true, t, 1, yes, on).
	Query(ctx context.Context, target, sql string) (bool, error)
	// Drop removes target and everything NewTarget made for it. Dropping a
	// target that does not exist is not an error.
	Drop(ctx context.Context, target string) error
}

// FileCounter is implemented by inspectors of file backups: the number of
// regular files and their total size below target.
type FileCounter interface {
	FileCount(ctx context.Context, target string) (files, bytes int64, err error)
}

// Request is one drill.
type Request struct {
	Entry    catalog.Entry
	Restorer source.Restorer
	// Stages decode the artifact (an identity is needed).
	Stages    []pipeline.Stage
	Inspector Inspector
	// SchemaVersionQuery is the source's schema_version query, if any.
	SchemaVersionQuery string
	Assertions         []config.Assertion
	// RTO is the source's declared rto; zero means none declared.
	RTO time.Duration
	// Dir is the working folder of command assertions (the config's folder).
	Dir string
	// CommandTimeout bounds each command assertion (default 10m).
	CommandTimeout time.Duration
	// Keep leaves the scratch target in place (for debugging a failed drill).
	Keep bool
	// NoReport skips writing the report to storage.
	NoReport bool
}

// Result is a finished drill.
type Result struct {
	Report *catalog.DrillReport
	// Key is where the report was written (empty with NoReport).
	Key string
	// RTOExceeded is set when the restore took longer than the declared rto.
	RTOExceeded bool
}

// Failed returns the failed checks' names and details, one per line.
func (r Result) Failed() []string {
	var out []string
	for _, c := range r.Report.Checks {
		if !c.OK {
			out = append(out, c.Name+": "+c.Detail)
		}
	}
	return out
}

// Run drills req with the runner's restore path, clock, host and logger. It
// returns an error only when the drill could not be carried out at all (no
// scratch target, report not written); a backup that fails its checks gives
// a Result whose Report.OK is false.
func Run(ctx context.Context, r *job.Runner, req Request) (Result, error) {
	now := r.Now
	if now == nil {
		now = time.Now
	}
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := req.Entry
	start := now()
	rep := &catalog.DrillReport{BackupID: e.ID, Source: e.Source, Artifact: e.Key, Started: start.UTC(),
		Host: r.Host, Version: r.Version, RTOTarget: req.RTO.Seconds()}
	res := Result{Report: rep}

	name := TargetName(e.Source, e.Part, start)
	target, err := req.Inspector.NewTarget(ctx, name)
	if err != nil {
		return res, fmt.Errorf("prepare scratch target %s: %w", name, err)
	}
	rep.Target = redact(target)
	if rep.Target != target {
		// The restore path logs its target: keep the password out.
		rr := *r
		rr.Logger = slog.New(redactHandler{inner: log.Handler(), secret: target, repl: rep.Target})
		r, log = &rr, rr.Logger
	}
	log = log.With("source", e.Source, "id", e.ID, "target", rep.Target)
	log.Info("drill started")
	took := drill(ctx, r, req, target, rep, start, now)
	if req.Keep {
		log.Info("drill target kept")
	} else if err := req.Inspector.Drop(context.WithoutCancel(ctx), target); err != nil {
		log.Warn("drop drill target", "err", err)
		rep.Checks = append(rep.Checks, catalog.Check{Name: "cleanup", OK: true, Detail: "scratch target not removed: " + err.Error()})
	}
	if req.RTO > 0 && took > 0 {
		ok := took <= req.RTO
		res.RTOExceeded = !ok
		rep.Checks = append(rep.Checks, catalog.Check{Name: CheckRTO, OK: ok,
			Detail: fmt.Sprintf("usable copy after %s, rto %s", roundDur(took), declared(req.RTO))})
	}
	// Tools' messages may quote the target, which for a database can hold
	// the drill server's password.
	if rep.Target != target {
		rep.Error = strings.ReplaceAll(rep.Error, target, rep.Target)
		for i := range rep.Checks {
			rep.Checks[i].Detail = strings.ReplaceAll(rep.Checks[i].Detail, target, rep.Target)
		}
	}
	rep.Finished = now().UTC()
	rep.OK = rep.Error == "" && len(rep.Checks) > 0
	for _, c := range rep.Checks {
		if !c.OK && c.Name != CheckRTO {
			rep.OK = false
		}
	}
	if rep.OK {
		log.Info("drill passed", "duration", roundDur(took))
	} else {
		log.Error("drill failed", "failed", strings.Join(res.Failed(), "; "), "err", rep.Error)
	}
	if req.NoReport {
		return res, nil
	}
	res.Key, err = writeReport(ctx, e, rep)
	return res, err
}

// drill restores into target and runs the checks, recording them in rep. It
// returns the time from start to a usable copy (0 when the restore failed).
func drill(ctx context.Context, r *job.Runner, req Request, target string, rep *catalog.DrillReport, start time.Time, now func() time.Time) time.Duration {
	e := req.Entry
	// A scratch target must be new: never restore a drill over anything.
	info, err := req.Restorer.Inspect(ctx, target)
	if err != nil {
		rep.Error = "inspect scratch target: " + err.Error()
		return 0
	}
	if info.IsSource || (info.Exists && !info.Empty) || (info.Identity != "" && info.Identity == e.Identity) {
		rep.Error = fmt.Sprintf("scratch target %s is not new (%s); nothing was written", rep.Target, info.Describe)
		return 0
	}
	if _, err := r.Restore(ctx, job.Restore{Entry: e, Restorer: req.Restorer, Stages: req.Stages, Target: target}); err != nil {
		rep.Checks = append(rep.Checks, catalog.Check{Name: CheckRestore, Detail: err.Error()})
		return 0
	}
	took := now().Sub(start)
	rep.RTOSeconds = took.Seconds()
	rep.Checks = append(rep.Checks, catalog.Check{Name: CheckRestore, OK: true,
		Detail: fmt.Sprintf("%s read, checksum matched, decoded to the end and restored", bytesWord(e.StoredSize))})
	rep.Checks = append(rep.Checks, dataChecks(ctx, req, target)...)
	rep.Checks = append(rep.Checks, assertions(ctx, r, req, target)...)
	return took
}

// dataChecks compares the restored copy with the manifest.
func dataChecks(ctx context.Context, req Request, target string) []catalog.Check {
	e := req.Entry
	var out []catalog.Check
	if len(e.RowCounts) > 0 {
		tables := slices.Sorted(maps.Keys(e.RowCounts))
		got, err := req.Inspector.RowCounts(ctx, target, tables)
		if err != nil {
			out = append(out, catalog.Check{Name: CheckRowCounts, Detail: "count rows: " + err.Error()})
		} else {
			var bad []string
			for _, t := range tables {
				n, ok := got[t]
				switch {
				case !ok:
					bad = append(bad, fmt.Sprintf("table %s: missing (manifest: %d rows)", t, e.RowCounts[t]))
				case n != e.RowCounts[t]:
					bad = append(bad, fmt.Sprintf("table %s: %d rows, manifest says %d", t, n, e.RowCounts[t]))
				}
			}
			if len(bad) > 0 {
				out = append(out, catalog.Check{Name: CheckRowCounts, Detail: strings.Join(bad, "; ")})
			} else {
				out = append(out, catalog.Check{Name: CheckRowCounts, OK: true, Detail: fmt.Sprintf("%d tables match the manifest", len(tables))})
			}
		}
	}
	if e.SchemaVersion != "" {
		c := catalog.Check{Name: CheckSchemaVersion}
		switch v, err := req.Inspector.SchemaVersion(ctx, target, req.SchemaVersionQuery); {
		case req.SchemaVersionQuery == "":
			c.OK, c.Detail = true, "manifest has "+e.SchemaVersion+" but the source has no schema_version query now: not compared"
		case err != nil:
			c.Detail = "run schema_version query: " + err.Error()
		case v != e.SchemaVersion:
			c.Detail = fmt.Sprintf("restored copy has %q, manifest says %q", v, e.SchemaVersion)
		default:
			c.OK, c.Detail = true, v
		}
		out = append(out, c)
	}
	if fc, ok := req.Inspector.(FileCounter); ok && (e.Files > 0 || e.Extra["bytes"] != "") {
		files, size, err := fc.FileCount(ctx, target)
		c := catalog.Check{Name: CheckFileCount}
		want := e.Extra["bytes"]
		switch {
		case err != nil:
			c.Detail = "count files: " + err.Error()
		case files != e.Files || (want != "" && fmt.Sprint(size) != want):
			c.Detail = fmt.Sprintf("restored %d files (%d bytes), manifest says %d files (%s bytes)", files, size, e.Files, want)
		default:
			c.OK, c.Detail = true, fmt.Sprintf("%d files, %s", files, bytesWord(size))
		}
		out = append(out, c)
	}
	return out
}

// TargetName is the scratch name of a drill: lifeboat_drill_SOURCE[_PART]_TIME,
// lowercase letters, digits and underscores only, at most 63 characters (a
// PostgreSQL identifier; MySQL allows 64).
func TargetName(src, part string, t time.Time) string {
	clean := func(s string) string {
		var b strings.Builder
		for _, r := range strings.ToLower(s) {
			if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
				b.WriteRune(r)
			} else {
				b.WriteByte('_')
			}
		}
		return b.String()
	}
	stamp := t.UTC().Format("20060102t150405")
	mid := clean(src)
	if part != "" {
		mid += "_" + clean(part)
	}
	const prefix = "lifeboat_drill_"
	if max := 63 - len(prefix) - 1 - len(stamp); len(mid) > max {
		mid = mid[:max]
	}
	return prefix + mid + "_" + stamp
}

// writeReport stores rep beside the artifact. Reports are never
// overwritten: a second drill in the same second takes the next free name.
func writeReport(ctx context.Context, e catalog.Entry, rep *catalog.DrillReport) (string, error) {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return "", err
	}
	b = append(b, '\n')
	ctx = context.WithoutCancel(ctx) // a drill that ran is recorded, even when interrupted at the end
	var key string
	for i := range 10 {
		key = catalog.DrillKey(e.Key, rep.Started.Add(time.Duration(i)*time.Second))
		_, err = e.Storage.Put(ctx, key, bytes.NewReader(b))
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return key, fmt.Errorf("write drill report %s to %s: %w", key, e.Storage.Name(), err)
	}
	return key, nil
}

// ErrNotNew is returned by NewTarget when the scratch target exists already.
var ErrNotNew = errors.New("drill target exists already")

// declared prints a configured duration as it is usually written ("15m",
// "1h", "2d").
func declared(d time.Duration) string {
	if d >= 24*time.Hour && d%time.Hour == 0 {
		return config.FormatDuration(d)
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

func roundDur(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func bytesWord(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"kB", "MB", "GB", "TB"} {
		f /= unit
		if f < unit {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return fmt.Sprintf("%.1f PB", f/unit)
}
