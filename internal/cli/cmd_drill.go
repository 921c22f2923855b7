package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/drill"
	"github.com/lifeboat-backup/lifeboat/internal/job"
	"github.com/lifeboat-backup/lifeboat/internal/report"
	"github.com/lifeboat-backup/lifeboat/internal/source"
	"github.com/lifeboat-backup/lifeboat/internal/source/files"
	"github.com/lifeboat-backup/lifeboat/internal/source/mysql"
	"github.com/lifeboat-backup/lifeboat/internal/source/postgres"
	"github.com/lifeboat-backup/lifeboat/internal/source/sqlite"
)

type drillOptions struct {
	id   string
	keep bool
	json bool
}

func newDrillCommand(app *App) *cobra.Command {
	var opts drillOptions
	cmd := &cobra.Command{
		Use:   "drill [SOURCE...]",
		Short: "Restore the latest backup into a scratch target and check it",
		Long: `Drill restores the newest good backup of each named source (every source
when none is named; one backup with --id) into a scratch target, and checks
it: the stream decrypts and decompresses to its end with a matching SHA-256,
every table has the row count the manifest recorded, the schema_version query
gives the recorded value, and the source's drill assertions pass (SQL that
must return true, or commands that must exit 0, run with the restored copy in
$LIFEBOAT_DRILL_TARGET). It measures the time to a usable copy (the real RTO)
against the source's rto.

A drill never touches the source. PostgreSQL and MySQL drills restore into a
new database lifeboat_drill_SOURCE_TIME on the server in drill.target, checked
not to exist first and dropped afterwards; SQLite and file drills use a new
temporary folder. The report is stored beside the backup (.drill.json); list
and status show the newest. Decrypting needs the identity (private key).` + "\n" + exitStatusHelp,
		Example: `  lifeboat drill                    # every source
  lifeboat drill app-db --identity ~/keys/lifeboat.txt
  lifeboat drill app-db --id 3f9c2a71 --keep   # keep the scratch copy to look at it`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDrill(cmd.Context(), opts, args, app)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.id, "id", "", "drill this backup (id prefix) instead of the newest good one")
	f.BoolVar(&opts.keep, "keep", false, "leave the scratch copy in place (it is printed) instead of removing it")
	f.BoolVar(&opts.json, "json", false, "print the run report as JSON")
	return cmd
}

func runDrill(ctx context.Context, opts drillOptions, names []string, app *App) error {
	s, err := app.loadSetup()
	if err != nil {
		return err
	}
	w := app.Stdout
	if opts.json {
		w = app.Stderr // the JSON report owns stdout
	}
	run, err := s.DrillRun(ctx, names, opts.id, opts.keep, w)
	if err != nil {
		return err
	}
	s.notifier().RunFinished(context.WithoutCancel(ctx), run)
	if opts.json {
		b, _ := json.MarshalIndent(run, "", "  ")
		app.Printf("%s\n", b)
	}
	var failed, slow []string
	for _, it := range run.Items {
		name := it.Source
		if it.Part != "" {
			name += "/" + it.Part
		}
		switch {
		case it.Status == report.Failed:
			failed = append(failed, name)
		case slices.Contains(it.Warnings, rtoWarning):
			slow = append(slow, name)
		}
	}
	switch {
	case ctx.Err() != nil:
		return &UserError{Msg: "drill interrupted", Err: errInterrupted, Code: ExitInterrupted}
	case len(failed) > 0:
		return &UserError{Msg: "drill failed for " + strings.Join(failed, ", "),
			Hint: "the failed checks above say what is wrong; until fixed, do not rely on those backups"}
	case len(slow) > 0:
		return &UserError{Msg: "restore took longer than the rto for " + strings.Join(slow, ", "),
			Hint: "the backups restore correctly, but too slowly for the declared rto: raise rto or speed up restores"}
	}
	return nil
}

// rtoWarning marks a drill item whose restore took longer than the rto.
const rtoWarning = "restore took longer than the rto"

// DrillRun drills the named sources (all when none; only the backup with id
// when set), printing each check to w, and returns the run report: one item
// per drilled backup, failed when the drill failed or could not run, with
// rtoWarning among its warnings when the restore was slower than the rto.
// The error is for unknown sources or ids. It is what `lifeboat drill` and
// the daemon's scheduled drills call.
func (s *Setup) DrillRun(ctx context.Context, names []string, id string, keep bool, w io.Writer) (*report.Run, error) {
	app := s.App
	if len(names) == 0 {
		names = s.Cfg.SourceNames
	}
	for _, n := range names {
		if _, err := s.SourceConfig(n); err != nil {
			return nil, err
		}
	}
	say := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }

	// What to drill: per source and part, the newest good backup (or id).
	type target struct {
		sc *config.Source
		e  catalog.Entry
	}
	var todo []target
	for _, n := range names {
		sc, _ := s.SourceConfig(n)
		es, warns, err := s.Entries(ctx, n, nil)
		if err != nil {
			return nil, err
		}
		for _, warn := range warns {
			app.Logger().Warn(warn)
		}
		picked, err := pickDrill(es, sc, id)
		if err != nil {
			return nil, err
		}
		if len(picked) == 0 && id == "" {
			say("%s: no backup to drill yet\n", n)
		}
		for _, e := range picked {
			todo = append(todo, target{sc, e})
		}
	}
	if id != "" && len(todo) == 0 {
		return nil, &UserError{Msg: "no backup with id " + id, Hint: "see `lifeboat list`", Code: ExitUsage}
	}

	runner := s.Runner()
	run := &report.Run{ID: catalog.NewID(), Kind: report.Drill, Host: app.Hostname, Started: app.Now()}
	for _, j := range todo {
		e := j.e
		it := report.Item{Source: e.Source, Part: e.Part, BackupID: e.ID, Artifact: e.Artifact, Started: app.Now(), Status: report.Failed}
		if ctx.Err() != nil {
			it.Status, it.Error = report.Skipped, "interrupted"
			run.Items = append(run.Items, it)
			continue
		}
		run.Items = append(run.Items, drillOne(ctx, s, runner, j.sc, e, keep, it, say))
	}
	run.Finished = app.Now()
	run.Summarize()
	return run, nil
}

// drillOne drills e and fills it.
func drillOne(ctx context.Context, s *Setup, runner *job.Runner, sc *config.Source, e catalog.Entry, keep bool, it report.Item, say func(string, ...any)) report.Item {
	app := s.App
	name := e.Source
	if e.Part != "" {
		name += "/" + e.Part
	}
	req, err := drillRequest(ctx, s, sc, e, keep)
	if err != nil {
		it.Error, it.Finished = err.Error(), app.Now()
		say("%s: cannot drill %s: %v\n", name, e.ID, err)
		return it
	}
	say("%s: drilling %s of %s from %s...\n", name, e.ID, e.Started.UTC().Format("2006-01-02 15:04"), e.Storage.Name())
	res, err := drill.Run(ctx, runner, req)
	rep := res.Report
	it.Finished, it.Checks, it.RTOSeconds = app.Now(), rep.Checks, rep.RTOSeconds
	for _, c := range rep.Checks {
		mark := "ok    "
		if !c.OK {
			mark = "FAILED"
		}
		say("  %s  %-16s %s\n", mark, c.Name, c.Detail)
	}
	if rep.Error != "" {
		say("  FAILED  %s\n", rep.Error)
		it.Error = rep.Error
	}
	if res.Key != "" {
		it.Details = append(it.Details, "report: "+res.Key+" in "+e.Storage.Name())
	}
	switch {
	case err != nil:
		it.Error = strings.TrimPrefix(it.Error+"; "+err.Error(), "; ")
		say("%s: drill could not be completed: %v\n", name, err)
	case !rep.OK:
		it.Error = strings.TrimPrefix(it.Error+"; "+strings.Join(res.Failed(), "; "), "; ")
		say("%s: DRILL FAILED (report %s)\n", name, res.Key)
	default:
		it.Status = report.OK
		rto := ""
		if req.RTO > 0 {
			rto = ", rto " + declaredDuration(req.RTO)
		}
		say("%s: drill passed: usable copy after %s%s (report %s)\n", name,
			(time.Duration(rep.RTOSeconds * float64(time.Second))).Round(time.Millisecond), rto, res.Key)
		if res.RTOExceeded {
			it.Warnings = append(it.Warnings, rtoWarning)
		}
	}
	if keep && rep.Target != "" {
		say("%s: scratch copy kept at %s\n", name, rep.Target)
	}
	return it
}

// pickDrill returns the entries to drill for one source: the newest backup
// that is not suspect per part (as restore picks), or the one with id. Of
// several copies the one in the first storage listed for the source is used.
func pickDrill(es []catalog.Entry, sc *config.Source, id string) ([]catalog.Entry, error) {
	rank := func(e catalog.Entry) int {
		if i := slices.Index(sc.Storages, e.Storage.Name()); i >= 0 {
			return i
		}
		return len(sc.Storages)
	}
	if id != "" {
		found, err := catalog.Find(es, id)
		if err != nil {
			return nil, usageErr("see `lifeboat list`", "%v", err)
		}
		ids := map[string]bool{}
		for _, e := range found {
			ids[e.ID] = true
		}
		if len(ids) > 1 {
			return nil, &UserError{Msg: fmt.Sprintf("id prefix %q matches %d backups", id, len(ids)), Hint: "give more characters of the id", Code: ExitUsage}
		}
		if len(found) == 0 {
			return nil, nil
		}
		best := found[0]
		for _, e := range found[1:] {
			if rank(e) < rank(best) {
				best = e
			}
		}
		return []catalog.Entry{best}, nil
	}
	best := map[string]catalog.Entry{}
	var parts []string
	for _, e := range es { // oldest first
		if e.Source != sc.Name || e.Suspect {
			continue
		}
		b, ok := best[e.Part]
		switch {
		case !ok:
			parts = append(parts, e.Part)
			best[e.Part] = e
		case e.ID == b.ID: // another copy of the same backup
			if rank(e) < rank(b) {
				best[e.Part] = e
			}
		case e.Sequence > b.Sequence || (e.Sequence == b.Sequence && e.Started.After(b.Started)):
			best[e.Part] = e
		}
	}
	slices.Sort(parts)
	var out []catalog.Entry
	for _, p := range parts {
		out = append(out, best[p])
	}
	return out, nil
}

// drillRequest builds the drill of e: restorer, decoding stages, and the
// inspector for the source's type.
func drillRequest(ctx context.Context, s *Setup, sc *config.Source, e catalog.Entry, keep bool) (drill.Request, error) {
	src, _, err := s.Source(sc.Name)
	if err != nil {
		return drill.Request{}, err
	}
	rs, ok := src.(source.Restorer)
	if !ok {
		return drill.Request{}, fmt.Errorf("%s sources cannot be restored by lifeboat, so they cannot be drilled", sc.Type)
	}
	stages, err := s.DecodeStages(e.Manifest, true)
	if err != nil {
		return drill.Request{}, err
	}
	var d config.Drill
	if sc.Drill != nil {
		d = *sc.Drill
	}
	req := drill.Request{Entry: e, Restorer: rs, Stages: stages, Assertions: d.Assertions, RTO: sc.RTO.D(),
		Dir: s.Cfg.Dir, Keep: keep}
	needTarget := func(scheme string) error {
		if d.Target == "" {
			return &UserError{Msg: fmt.Sprintf("source %s has no drill server", sc.Name),
				Hint: fmt.Sprintf("add `drill: {target: %s://USER@HOST:PORT}` to it: a server where lifeboat may create and drop lifeboat_drill_* databases", scheme)}
		}
		return nil
	}
	switch spec := sc.Spec.(type) {
	case *sqlite.Config:
		req.Inspector, req.SchemaVersionQuery = drill.SQLite{}, spec.SchemaVersion
	case *files.Config:
		req.Inspector = drill.Files{}
	case *postgres.Config:
		if err := needTarget("postgres"); err != nil {
			return req, err
		}
		req.Inspector, req.SchemaVersionQuery = drill.Postgres{Server: d.Target, Password: d.Password.Reveal()}, spec.SchemaVersion
	case *mysql.Config:
		if err := needTarget("mysql"); err != nil {
			return req, err
		}
		req.Inspector, req.SchemaVersionQuery = drill.MySQL{Server: d.Target, Password: d.Password.Reveal()}, spec.SchemaVersion
	default:
		return req, fmt.Errorf("drills of %s sources are not supported yet", sc.Type)
	}
	return req, nil
}

// declaredDuration prints a configured duration as written: "15m", "1h",
// "2d", not "15m0s".
func declaredDuration(d time.Duration) string {
	s := config.FormatDuration(d)
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
