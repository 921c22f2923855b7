package cli

import (
	"bufio"
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/job"
	"github.com/lifeboat-backup/lifeboat/internal/report"
	"github.com/lifeboat-backup/lifeboat/internal/source"
	"github.com/lifeboat-backup/lifeboat/internal/storage/local"
)

type restoreOptions struct {
	id      string
	to      string
	force   bool
	plan    bool
	storage string
	part    string
}

func newRestoreCommand(app *App) *cobra.Command {
	var opts restoreOptions
	cmd := &cobra.Command{
		Use:   "restore SOURCE --to TARGET",
		Short: "Restore a backup into a new target",
		Long: `Restore puts a backup of SOURCE back, the newest good one unless --id names
another. TARGET is a new place by default: a file path for SQLite, a folder for
files, a database URL for PostgreSQL and MySQL.

Restore refuses a target that is not empty, or that is the configured source
itself, unless --force is given; then, on a terminal, it asks you to type the
source's name, and it backs up what is there first (tag pre-restore), so an
overwrite can be undone. Targets listed under protected: are always refused.

The artifact's SHA-256 is checked while it streams; a damaged backup stops the
restore. --plan prints the manual commands with standard tools (age, zstd,
tar, sqlite3, pg_restore, mysql) instead of restoring.`,
		Example: `  lifeboat restore app-db --to ./restored.db
  lifeboat restore uploads --to /srv/restore --id 3f9c2a71
  lifeboat restore app-db --to ./app.db --force      # over the live file: asks first
  lifeboat restore db --to postgresql://localhost/app_restored
  lifeboat restore app-db --to ./restored.db --plan`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.to == "" {
				return usageErr("for example: lifeboat restore "+args[0]+" --to ./restored", "--to TARGET is required: restore never guesses where to write")
			}
			return runRestore(cmd.Context(), opts, args[0], app)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.id, "id", "", "backup id (prefix) to restore; default the newest good backup")
	f.StringVar(&opts.to, "to", "", "where to restore: file, folder or database URL")
	f.BoolVar(&opts.force, "force", false, "allow writing over a non-empty target or the source itself (after a safety backup)")
	f.BoolVar(&opts.plan, "plan", false, "print the manual restore commands instead of restoring")
	f.StringVar(&opts.storage, "storage", "", "read from this storage (default: the first that has the backup)")
	f.StringVar(&opts.part, "part", "", "for sources with several parts (one per database): which part")
	return cmd
}

// pickBackup chooses the entry to restore.
func pickBackup(es []catalog.Entry, src string, opts restoreOptions) (catalog.Entry, error) {
	var cands []catalog.Entry
	parts := map[string]bool{}
	for _, e := range es {
		if e.Source != src || (opts.storage != "" && e.Storage.Name() != opts.storage) {
			continue
		}
		parts[e.Part] = true
		if opts.part != "" && e.Part != opts.part {
			continue
		}
		cands = append(cands, e)
	}
	if opts.part == "" && len(parts) > 1 {
		var ps []string
		for p := range parts {
			ps = append(ps, p)
		}
		return catalog.Entry{}, usageErr("pass --part NAME", "%s has several parts (%s): restore one at a time", src, strings.Join(ps, ", "))
	}
	if opts.id != "" {
		found, err := catalog.Find(cands, opts.id)
		if err != nil {
			return catalog.Entry{}, usageErr("see `lifeboat list "+src+"`", "%v", err)
		}
		if len(found) == 0 {
			return catalog.Entry{}, &UserError{Msg: fmt.Sprintf("no backup of %s with id %s", src, opts.id), Hint: "see `lifeboat list " + src + "`", Code: ExitUsage}
		}
		return found[0], nil
	}
	// Newest good backup: not suspect. Entries are sorted oldest first.
	for i := len(cands) - 1; i >= 0; i-- {
		if !cands[i].Suspect {
			return cands[i], nil
		}
	}
	if len(cands) > 0 {
		return catalog.Entry{}, &UserError{Msg: "every backup of " + src + " is marked suspect", Hint: "pick one explicitly with --id after checking it (`lifeboat list " + src + "`)"}
	}
	return catalog.Entry{}, &UserError{Msg: "no backup of " + src + " found", Hint: "see `lifeboat list`; run `lifeboat backup " + src + "` first"}
}

func runRestore(ctx context.Context, opts restoreOptions, name string, app *App) error {
	s, err := app.loadSetup()
	if err != nil {
		return err
	}
	src, sc, err := s.Source(name)
	if err != nil {
		return err
	}
	rs, ok := src.(source.Restorer)
	if !ok {
		return &UserError{Msg: sc.Type + " sources cannot be restored by lifeboat yet", Hint: "use --plan for the manual commands"}
	}
	es, warns, err := s.Entries(ctx, name, nil)
	if err != nil {
		return err
	}
	for _, w := range warns {
		app.Logger().Warn(w)
	}
	e, err := pickBackup(es, name, opts)
	if err != nil {
		return err
	}
	if opts.plan {
		return printPlan(app, s, src, e, job.RedactTarget(opts.to))
	}
	stages, err := s.DecodeStages(e.Manifest, true)
	if err != nil {
		return err
	}
	runner := s.Runner()
	shown := job.RedactTarget(opts.to) // never print a password from a URL
	req := job.Restore{
		Entry: e, Restorer: rs, Stages: stages, Target: opts.to, Force: opts.force, Protected: protectedTargets(s, sc.Protected),
		Confirm: func(info source.TargetInfo, reasons []string) error {
			return confirmOverwrite(app, name, shown, reasons)
		},
		SafetyBackup: func(ctx context.Context, snap source.Source) (string, error) {
			app.Printf("Taking a safety backup of %s before overwriting it...\n", shown)
			sts, err := s.SourceStorages(ctx, sc)
			if err != nil {
				return "", err
			}
			items := runner.Backup(ctx, job.Backup{Name: name, Type: sc.Type, Source: snap, Stages: s.EncodeStages(sc), Storages: sts,
				Tags: []string{"pre-restore"}, Dir: s.Cfg.Dir})
			if it := items[0]; it.Status != report.OK && it.Status != report.Partial {
				return "", fmt.Errorf("%s", it.Error)
			}
			return items[0].BackupID, nil
		},
	}
	app.Printf("Restoring %s backup %s (%s, taken %s) from %s into %s\n", name, e.ID, humanBytes(e.StoredSize),
		e.Started.UTC().Format("2006-01-02 15:04:05 UTC"), e.Storage.Name(), shown)
	it, err := runner.Restore(ctx, req)
	if s.progress != nil {
		s.progress.done()
	}
	for _, d := range it.Details {
		app.Printf("%s\n", d)
	}
	if err != nil {
		if re, ok := err.(*job.RefusedError); ok {
			return &UserError{Msg: re.Error(), Hint: re.Hint, Code: ExitFailed}
		}
		if ctx.Err() != nil {
			return &UserError{Msg: "restore interrupted; " + shown + " may be incomplete", Code: ExitInterrupted}
		}
		return &UserError{Msg: "restore failed", Err: err, Hint: "try another backup with --id, or another copy with --storage"}
	}
	app.Printf("Restored %s into %s in %s.\n", name, shown, it.Finished.Sub(it.Started).Round(1e7))
	return nil
}

// protectedTargets resolves relative protected paths against the config.
func protectedTargets(s *Setup, ps []string) []string {
	var out []string
	for _, p := range ps {
		if !strings.Contains(p, "://") {
			p = s.Cfg.Path(p)
		}
		out = append(out, p)
	}
	return out
}

// confirmOverwrite asks a person to type the source name. Off a terminal,
// --force is the confirmation.
func confirmOverwrite(app *App, name, target string, reasons []string) error {
	if !app.Interactive {
		return nil
	}
	fmt.Fprintf(app.Stderr, "About to overwrite %s:\n", target)
	for _, r := range reasons {
		fmt.Fprintf(app.Stderr, "  - %s\n", r)
	}
	fmt.Fprintf(app.Stderr, "A safety backup is taken first. Type the source name (%s) to go on: ", name)
	line, _ := bufio.NewReader(app.Stdin).ReadString('\n')
	if strings.TrimSpace(line) != name {
		return &UserError{Msg: "not confirmed; nothing was changed", Code: ExitFailed}
	}
	return nil
}

func printPlan(app *App, s *Setup, src source.Source, e catalog.Entry, target string) error {
	app.Printf("# Manual restore of %s backup %s (taken %s), with standard tools.\n", e.Source, e.ID, e.Started.UTC().Format(catalog.TimeLayout))
	app.Printf("# Needs: age, zstd, and the tool for the data (sqlite3, tar, pg_restore, mysql).\n")
	if ls, ok := e.Storage.(*local.Store); ok {
		app.Printf("cd %s\n", source.ShellQuote(filepath.Dir(filepath.Join(ls.Root(), filepath.FromSlash(e.Key)))))
	} else {
		app.Printf("# First download %s from storage %s into the current folder.\n", e.Key, e.Storage.Name())
	}
	for _, c := range job.ManualRestore(s.identityPath(), src, e.Manifest, target) {
		app.Printf("%s\n", c)
	}
	return nil
}
