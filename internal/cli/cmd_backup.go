package cli

import (
	"errors"
	"os"
	"time"

	"context"
	"encoding/json"
	"fmt"
	"github.com/lifeboat-backup/lifeboat/internal/daemon"
	"github.com/lifeboat-backup/lifeboat/internal/lock"
	"github.com/lifeboat-backup/lifeboat/internal/metrics"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/job"
	"github.com/lifeboat-backup/lifeboat/internal/report"
)

type backupOptions struct {
	tags   []string
	dryRun bool
	json   bool
	// metricsFile, when set, is written in node_exporter textfile format.
	metricsFile string
}

func newBackupCommand(app *App) *cobra.Command {
	var opts backupOptions
	cmd := &cobra.Command{
		Use:   "backup [SOURCE...]",
		Short: "Back up sources now (all when none is named)",
		Long: `Backup runs the named sources (every source when none is named), each in one
streaming pass: dump -> compression -> encryption -> SHA-256 -> every storage of
the source at once. A backup is listed only once its manifest, written last,
exists. The ids of committed backups are printed. When a source fails the
others still run, and the exit status is non-zero.` + "\n" + exitStatusHelp,
		Example: `  lifeboat backup
  lifeboat backup app-db --tag pre-migration
  lifeboat backup --dry-run`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBackup(cmd.Context(), opts, args, app)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&opts.tags, "tag", nil, "tag the backups (repeatable), e.g. pre-deploy")
	f.BoolVar(&opts.dryRun, "dry-run", false, "say what would be backed up, where, and do nothing")
	f.BoolVar(&opts.json, "json", false, "print the run report as JSON")
	f.StringVar(&opts.metricsFile, "metrics-file", "", "write Prometheus metrics to this file (node_exporter textfile format)")
	return cmd
}

func runBackup(ctx context.Context, opts backupOptions, names []string, app *App) error {
	s, err := app.loadSetup()
	if err != nil {
		return err
	}
	if len(names) == 0 {
		names = s.Cfg.SourceNames
		if len(names) == 0 {
			return &UserError{Msg: "no sources configured in " + s.Cfg.File, Hint: "add one under sources: (see `lifeboat init`)", Code: ExitUsage}
		}
	}
	for _, t := range opts.tags {
		if !tagRE.MatchString(t) {
			return usageErr("use lowercase letters, digits, - and _", "tag %q is not allowed", t)
		}
	}
	for _, n := range names {
		if _, err := s.SourceConfig(n); err != nil {
			return err
		}
	}
	if opts.dryRun {
		for _, n := range names {
			sc := s.Cfg.Sources[n]
			app.Printf("would back up %s (%s) to %s\n", n, describe(sc.Spec, sc.Type, s.Cfg.Dir), strings.Join(sc.Storages, ", "))
		}
		return nil
	}
	run := s.backupRun(ctx, names, opts.tags, true)
	if opts.metricsFile != "" {
		if err := metrics.WriteTextfile(opts.metricsFile, run); err != nil {
			app.Logger().Error("write metrics file", "err", err)
		}
	}
	if opts.json {
		b, _ := json.MarshalIndent(run, "", "  ")
		app.Printf("%s\n", b)
	} else {
		printBackupRun(app, run)
	}
	return runErr(ctx, run)
}

// BackupRun backs up the named sources one after another and returns the run
// report. The daemon calls it holding each source's lock; `lifeboat backup`
// calls backupRun with locking on.
func (s *Setup) BackupRun(ctx context.Context, names, tags []string) *report.Run {
	return s.backupRun(ctx, names, tags, false)
}

// backupRun is BackupRun; with lockSources it first takes each source's lock
// (the one the daemon takes, on the source's first storage), so a manual or
// cron run never overlaps the daemon's, or another host's, run of the source.
func (s *Setup) backupRun(ctx context.Context, names, tags []string, lockSources bool) *report.Run {
	runner := s.Runner()
	run := &report.Run{ID: catalog.NewID(), Kind: report.Backup, Host: s.App.Hostname, Started: s.App.Now()}
	d := s.notifier()
	for _, n := range names {
		if ctx.Err() != nil {
			run.Items = append(run.Items, report.Item{Source: n, Status: report.Skipped, Error: "interrupted"})
			continue
		}
		if !lockSources {
			d.RunStarted(ctx, report.Backup, n)
			run.Items = append(run.Items, s.backupSource(ctx, runner, n, tags)...)
			continue
		}
		items, err := s.withLock(ctx, n, "backup", func(ctx context.Context) []report.Item {
			d.RunStarted(ctx, report.Backup, n)
			return s.backupSource(ctx, runner, n, tags)
		})
		if err != nil {
			items = []report.Item{{Source: n, Status: report.Failed, Started: s.App.Now(), Finished: s.App.Now(), Error: err.Error()}}
		}
		run.Items = append(run.Items, items...)
	}
	if s.progress != nil {
		s.progress.done()
	}
	run.Finished = s.App.Now()
	run.Summarize()
	d.RunFinished(context.WithoutCancel(ctx), run)
	return run
}

// runNotifier is what commands tell about runs (a notify.Dispatcher).
type runNotifier interface {
	RunStarted(ctx context.Context, kind report.Kind, source string)
	RunFinished(ctx context.Context, run *report.Run)
}

type noNotifier struct{}

func (noNotifier) RunStarted(context.Context, report.Kind, string) {}
func (noNotifier) RunFinished(context.Context, *report.Run)        {}

// notifier returns the configured dispatcher. A notifier that cannot be set
// up is logged and skipped: telling people must never stop a backup.
func (s *Setup) notifier() runNotifier {
	if len(s.Cfg.NotifierNames) == 0 {
		return noNotifier{}
	}
	d, err := s.Dispatcher()
	if err != nil {
		s.App.Logger().Error("notifiers unavailable; this run will not be reported", "err", err)
		return noNotifier{}
	}
	return d
}

func (s *Setup) backupSource(ctx context.Context, runner *job.Runner, name string, tags []string) []report.Item {
	fail := func(err error) []report.Item {
		return []report.Item{{Source: name, Status: report.Failed, Started: s.App.Now(), Finished: s.App.Now(), Error: err.Error()}}
	}
	src, sc, err := s.Source(name)
	if err != nil {
		return fail(err)
	}
	sts, err := s.SourceStorages(ctx, sc)
	if err != nil {
		return fail(err)
	}
	return runner.Backup(ctx, job.Backup{
		Name: name, Type: sc.Type, Source: src, Stages: s.EncodeStages(sc), Storages: sts,
		Tags: append(append([]string(nil), sc.Tags...), tags...), Checks: sc.Checks, Hooks: sc.Hooks, Dir: s.Cfg.Dir,
	})
}

func printBackupRun(app *App, run *report.Run) {
	for _, it := range run.Items {
		name := it.Source
		if it.Part != "" {
			name += "/" + it.Part
		}
		switch it.Status {
		case report.OK, report.Suspect, report.Partial:
			app.Printf("%s: committed backup %s (%s stored, %s before compression) to %s\n", name, it.BackupID,
				humanBytes(it.StoredSize), humanBytes(it.PlainSize), okStorages(it))
			if it.Status != report.OK {
				app.Printf("%s: %s: %s\n", name, strings.ToUpper(string(it.Status)), it.Error)
			}
		case report.Skipped:
			app.Printf("%s: skipped (%s)\n", name, it.Error)
		default:
			app.Printf("%s: FAILED, nothing committed: %s\n", name, it.Error)
		}
		for _, w := range it.Warnings {
			app.Printf("%s: warning: %s\n", name, w)
		}
	}
}

func okStorages(it report.Item) string {
	var ok []string
	for _, s := range it.Storages {
		if s.OK {
			ok = append(ok, s.Storage)
		}
	}
	return strings.Join(ok, ", ")
}

// runErr turns a run's status into the command's error and exit code.
func runErr(ctx context.Context, run *report.Run) error {
	var failed []string
	for _, it := range run.Items {
		if it.Status == report.Failed || it.Status == report.Partial || it.Status == report.Suspect {
			failed = append(failed, it.Source)
		}
	}
	switch {
	case ctx.Err() != nil:
		return &UserError{Msg: "interrupted; nothing half-written was committed", Code: ExitInterrupted}
	case run.Status == report.Failed:
		return &UserError{Msg: fmt.Sprintf("%s failed: %s", run.Kind, strings.Join(failed, ", ")), Hint: "the lines above say why; fix it and run again", Code: ExitFailed}
	case run.Status == report.Partial:
		return &UserError{Msg: fmt.Sprintf("%s only partly stored: %s", run.Kind, strings.Join(failed, ", ")), Hint: "a storage failed; `lifeboat copy` can replicate once it is back", Code: ExitPartial}
	case run.Status == report.Suspect:
		return &UserError{Msg: "backup stored but suspect: " + strings.Join(failed, ", "), Hint: "a backup-time check failed; look at the data before trusting this backup", Code: ExitFailed}
	}
	return nil
}

// withLock runs fn holding the source's lock on its first storage. When
// another process or host holds it, fn does not run and the error says who.
func (s *Setup) withLock(ctx context.Context, name, purpose string, fn func(context.Context) []report.Item) ([]report.Item, error) {
	sc, err := s.SourceConfig(name)
	if err != nil {
		return nil, err
	}
	st, err := s.Storage(ctx, sc.Storages[0])
	if err != nil {
		return nil, err
	}
	lk, err := lock.Acquire(ctx, st, name, lock.Options{Clock: daemon.SystemClock{}, TTL: s.Cfg.Daemon.LockTTL.D(),
		Host: s.App.Hostname, PID: os.Getpid(), Purpose: purpose, Logger: s.App.Logger(), Dead: lock.DeadOnHost(s.App.Hostname)})
	var he *lock.HeldError
	if errors.As(err, &he) {
		return nil, fmt.Errorf("not run: %s is being worked on by %s since %s; try again when it is done",
			name, he.Owner, he.Owner.Acquired.UTC().Format(time.RFC3339))
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s in storage %s: %w", name, st.Name(), err)
	}
	held, stop := lk.Keep(ctx)
	defer func() {
		stop()
		if err := lk.Release(context.WithoutCancel(ctx)); err != nil {
			s.App.Logger().Warn("cannot release lock; it expires on its own", "source", name, "err", err)
		}
	}()
	return fn(held), nil
}
