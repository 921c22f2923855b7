package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/prune"
	"github.com/lifeboat-backup/lifeboat/internal/report"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

type pruneOptions struct {
	dryRun     bool
	trustClock bool
	json       bool
}

func newPruneCommand(app *App) *cobra.Command {
	var opts pruneOptions
	cmd := &cobra.Command{
		Use:   "prune [SOURCE...]",
		Short: "Delete backups the keep policy no longer keeps, and garbage",
		Long: `Prune applies each source's keep policy (keep: last, hourly, daily, weekly,
monthly, yearly, within; keep_tagged) in every storage of the source, and
prints for each backup keep or delete and the rules that keep it. It deletes
the artifact first, then its manifest, then its drill reports. It also removes
garbage older than 24h: artifacts without a manifest, drill reports of deleted
backups, temporary files and unfinished uploads of interrupted runs.
--dry-run prints exactly what a real run would delete, and deletes nothing.

Safety rules: the newest good backup of a source is never deleted; nothing is
deleted while a source's newest good backup is older than its rpo (that is an
alert, fix the backups first); nothing is deleted when manifest times disagree
with the storage's own times or sequence numbers by more than an hour, unless
--trust-clock; objects under object lock are reported as kept by lock.
Storages with prune_credentials are opened with them.` + "\n" + exitStatusHelp,
		Example: `  lifeboat prune --dry-run          # what would go, and why the rest stays
  lifeboat prune app-db
  lifeboat prune --trust-clock      # after checking the clock warning is harmless`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPrune(cmd.Context(), opts, args, app)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.dryRun, "dry-run", false, "print what would be deleted and delete nothing")
	f.BoolVar(&opts.trustClock, "trust-clock", false, "prune even when manifest and storage times disagree")
	f.BoolVar(&opts.json, "json", false, "print the run report as JSON")
	return cmd
}

// pruneStorages opens a source's storages for deleting: with their
// prune_credentials when configured (storage.Options.Prune).
func pruneStorages(ctx context.Context, s *Setup, names []string, cache map[string]storage.Storage) ([]storage.Storage, error) {
	var out []storage.Storage
	for _, n := range names {
		if st, ok := cache[n]; ok {
			out = append(out, st)
			continue
		}
		sc, ok := s.Cfg.Storages[n]
		if !ok {
			return nil, &UserError{Msg: fmt.Sprintf("no storage named %q", n), Code: ExitUsage}
		}
		st, err := storageKinds()[sc.Type].open(ctx, n, sc.Spec, storage.Options{Logger: s.App.Logger().With("storage", n),
			Dir: s.Cfg.Dir, Env: s.App.Env, Prune: true})
		if err != nil {
			return nil, &UserError{Msg: fmt.Sprintf("open storage %s for pruning", n), Err: err, Hint: "check the storage's settings (and prune_credentials) with `lifeboat doctor`"}
		}
		cache[n] = st
		out = append(out, st)
	}
	return out, nil
}

func runPrune(ctx context.Context, opts pruneOptions, names []string, app *App) error {
	s, err := app.loadSetup()
	if err != nil {
		return err
	}
	w := app.Stdout
	if opts.json {
		w = app.Stderr // the JSON report owns stdout
	}
	run, err := s.PruneRun(ctx, names, opts.dryRun, opts.trustClock, w)
	if err != nil {
		return err
	}
	if !opts.dryRun {
		s.notifier().RunFinished(context.WithoutCancel(ctx), run)
	}
	if opts.json {
		b, _ := json.MarshalIndent(run, "", "  ")
		app.Printf("%s\n", b)
	}
	var refused, failed []string
	for _, it := range run.Items {
		switch {
		case it.Status != report.Failed:
		case strings.HasPrefix(it.Error, "prune "+it.Source+" refused:"):
			refused = append(refused, it.Source)
		default:
			failed = append(failed, it.Source)
		}
	}
	switch {
	case ctx.Err() != nil:
		return &UserError{Msg: "prune interrupted; what was deleted is listed above", Err: errInterrupted, Code: ExitInterrupted}
	case len(refused) > 0:
		return &UserError{Msg: "prune refused for " + strings.Join(refused, ", ") + ": nothing was deleted there",
			Hint: "the lines above say which safety rule stopped it and what to do"}
	case len(failed) > 0:
		return &UserError{Msg: "prune failed for " + strings.Join(failed, ", "), Hint: "the lines above say what could not be read or deleted; run prune again once fixed"}
	}
	return nil
}

// PruneRun prunes the named sources (all when none) one after another,
// printing each plan and outcome to w, and returns the run report. A refused
// source's item is failed with an error starting "prune SOURCE refused". It
// is what `lifeboat prune` and the daemon's scheduled prunes call.
func (s *Setup) PruneRun(ctx context.Context, names []string, dryRun, trustClock bool, w io.Writer) (*report.Run, error) {
	if len(names) == 0 {
		names = s.Cfg.SourceNames
	}
	for _, n := range names {
		if _, err := s.SourceConfig(n); err != nil {
			return nil, err
		}
	}
	app := s.App
	run := &report.Run{ID: catalog.NewID(), Kind: report.Prune, Host: app.Hostname, Started: app.Now()}
	cache := map[string]storage.Storage{}
	opts := pruneOptions{dryRun: dryRun, trustClock: trustClock}
	for _, n := range names {
		if ctx.Err() != nil {
			run.Items = append(run.Items, report.Item{Source: n, Status: report.Skipped, Error: "interrupted"})
			continue
		}
		run.Items = append(run.Items, pruneSource(ctx, s, n, opts, cache, w))
	}
	run.Finished = app.Now()
	run.Summarize()
	return run, nil
}

// pruneSource plans (and unless dry-run executes) one source's prune and
// prints it to out.
func pruneSource(ctx context.Context, s *Setup, name string, opts pruneOptions, cache map[string]storage.Storage, out io.Writer) report.Item {
	app := s.App
	say := func(format string, args ...any) { fmt.Fprintf(out, format, args...) }
	it := report.Item{Source: name, Started: app.Now(), Status: report.Failed}
	fail := func(err error) report.Item {
		it.Error, it.Finished = err.Error(), app.Now()
		say("%s: FAILED: %v\n", name, err)
		return it
	}
	sc, _ := s.SourceConfig(name)
	sts, err := pruneStorages(ctx, s, sc.Storages, cache)
	if err != nil {
		return fail(err)
	}
	src, err := prune.NewSource(sc, sts)
	if err != nil {
		return fail(err)
	}
	plan, err := prune.NewPlan(ctx, src, prune.Options{Now: app.Now, TrustClock: opts.trustClock, Logger: app.Logger()})
	if err != nil {
		return fail(err)
	}
	say("%s: policy: %s\n", name, plan.Policy)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, b := range plan.Backups {
		verdict, why := "delete", "no rule keeps it"
		if b.Keep {
			verdict, why = "keep", strings.Join(b.Reasons, ", ")
		}
		if b.Suspect {
			why = strings.TrimPrefix(why+", SUSPECT", ", ")
		}
		label := b.ID
		if b.Part != "" {
			label = b.Part + " " + label
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", verdict, label, b.Time.UTC().Format("2006-01-02 15:04"), b.Storage.Name(), why)
		it.Details = append(it.Details, fmt.Sprintf("%s %s %s in %s: %s", verdict, b.ID, b.Time.UTC().Format("2006-01-02T15:04Z"), b.Storage.Name(), why))
	}
	for _, g := range plan.Garbage {
		what := g.Key
		if g.Path != "" {
			what = g.Path
		}
		fmt.Fprintf(tw, "  garbage\t%s\t%s\t%s\t%s\n", what, g.ModTime.UTC().Format("2006-01-02 15:04"), g.Storage.Name(), g.Why)
		it.Details = append(it.Details, fmt.Sprintf("garbage %s in %s: %s", what, g.Storage.Name(), g.Why))
	}
	tw.Flush()
	for _, w := range plan.Warnings {
		say("  warning: %s\n", w)
		it.Warnings = append(it.Warnings, w)
	}
	if plan.Refused != nil {
		var se *prune.SafetyError
		hint := ""
		if errors.As(plan.Refused, &se) {
			hint = se.Hint
		}
		say("%s: REFUSED, nothing deleted: %v\n", name, plan.Refused)
		if hint != "" {
			say("%s: hint: %s\n", name, hint)
		}
		it.Error, it.Finished = plan.Refused.Error(), app.Now()
		return it
	}
	deletes, garbage := plan.Deletes(), len(plan.Garbage)
	if opts.dryRun {
		say("%s: would delete %d backup copies and %d garbage objects (dry run: nothing deleted)\n", name, deletes, garbage)
		if len(plan.Aborts) > 0 {
			say("%s: would also abort unfinished uploads older than 24h in %s\n", name, storageNames(plan.Aborts))
		}
		it.Status, it.Finished = report.Skipped, app.Now()
		return it
	}
	res, err := prune.Execute(ctx, plan)
	deleted, locked, aborted := 0, 0, 0
	for _, o := range res.Outcomes {
		switch {
		case o.Status == prune.KeptByLock:
			locked++
			say("  kept by lock: %s %s in %s\n", o.What, o.Key, o.Storage.Name())
		case o.Status == prune.Failed:
			say("  FAILED: %v\n", o.Err)
		case o.Status == prune.Deleted && o.What == "artifact":
			deleted++
		case o.Status == prune.Deleted && o.What == "unfinished uploads":
			aborted += o.Count
		}
	}
	summary := fmt.Sprintf("deleted %d backup copies and %d garbage objects", deleted, res.Count(prune.Deleted)-deletedBackupObjects(res))
	if aborted > 0 {
		summary += fmt.Sprintf(", aborted %d unfinished uploads", aborted)
	}
	if locked > 0 {
		summary += fmt.Sprintf("; %d kept by object lock", locked)
	}
	say("%s: %s\n", name, summary)
	it.Details = append(it.Details, summary)
	it.Finished = app.Now()
	if err != nil {
		it.Error = err.Error()
		return it
	}
	it.Status = report.OK
	return it
}

// deletedBackupObjects counts deleted artifacts, manifests and drill reports.
func deletedBackupObjects(res prune.Result) int {
	n := 0
	for _, o := range res.Outcomes {
		if o.Status == prune.Deleted && (o.What == "artifact" || o.What == "manifest" || o.What == "drill report" || o.What == "unfinished uploads") {
			n++
		}
	}
	return n
}

func storageNames(as []prune.Abort) string {
	var ns []string
	for _, a := range as {
		ns = append(ns, a.Storage.Name())
	}
	return strings.Join(ns, ", ")
}
