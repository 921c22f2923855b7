package cli

import (
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/daemon"
	"github.com/spf13/cobra"
)

func newValidateCommand(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "Check the config file without touching anything",
		Long: `Validate reads the config file and reports every problem it finds, each with
file:line:column, what is wrong and what was expected. It contacts nothing and
writes nothing. Secrets referenced as ${env:...} or ${file:...} must resolve.`,
		Example: `  lifeboat validate
  lifeboat -c deploy/lifeboat.yaml validate`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := app.loadSetup()
			if err != nil {
				return err
			}
			// Schedules, time zones and daemon settings.
			if ps := daemon.Check(s.Cfg, time.Local); len(ps) > 0 {
				return ps
			}
			app.Printf("%s is valid: %d source(s), %d storage(s).\n", s.Cfg.File, len(s.Cfg.SourceNames), len(s.Cfg.StorageNames))
			return nil
		},
	}
}
