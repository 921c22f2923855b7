package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/report"
)

type copyOptions struct {
	from, to string
}

func newCopyCommand(app *App) *cobra.Command {
	var opts copyOptions
	cmd := &cobra.Command{
		Use:   "copy --from STORAGE --to STORAGE [SOURCE...]",
		Short: "Replicate committed backups from one storage to another",
		Long: `Copy replicates every committed backup (of the named sources, or all) that is
missing from the destination: the artifact first, checked against its SHA-256
as it streams so a damaged artifact is never spread, then its manifest. It
never deletes or overwrites anything in the destination; running it again
copies nothing new. This is the backup of the backup.`,
		Example: `  lifeboat copy --from local --to offsite
  lifeboat copy --from offsite --to local app-db`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.from == "" || opts.to == "" || opts.from == opts.to {
				return usageErr("for example: lifeboat copy --from local --to offsite", "--from and --to must name two different storages")
			}
			return runCopy(cmd.Context(), opts, args, app)
		},
	}
	cmd.Flags().StringVar(&opts.from, "from", "", "storage to copy from")
	cmd.Flags().StringVar(&opts.to, "to", "", "storage to copy to")
	return cmd
}

func runCopy(ctx context.Context, opts copyOptions, sources []string, app *App) error {
	s, err := app.loadSetup()
	if err != nil {
		return err
	}
	from, err := s.Storage(ctx, opts.from)
	if err != nil {
		return err
	}
	to, err := s.Storage(ctx, opts.to)
	if err != nil {
		return err
	}
	run := &report.Run{ID: catalog.NewID(), Kind: report.Copy, Host: app.Hostname, Started: app.Now()}
	run.Items = s.Runner().Copy(ctx, from, to, sources)
	run.Finished = app.Now()
	run.Summarize()
	s.notifier().RunFinished(context.WithoutCancel(ctx), run)
	copied := 0
	for _, it := range run.Items {
		if it.Status == report.OK {
			copied++
			app.Printf("copied %s %s (%s)\n", it.Source, it.BackupID, humanBytes(it.StoredSize))
		} else {
			app.Printf("FAILED %s %s: %s\n", it.Source, it.BackupID, it.Error)
		}
	}
	app.Printf("%d backup(s) copied from %s to %s.\n", copied, opts.from, opts.to)
	return runErr(ctx, run)
}
