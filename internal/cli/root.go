package cli

import (
	"context"

	"github.com/spf13/cobra"
)

const exitStatusHelp = `
EXIT STATUS
  0    everything asked for succeeded
  1    something failed (the message says what)
  2    the command line or the config file is wrong
  3    partial: a backup was stored in some storages but not all
  130  interrupted (Ctrl-C); nothing half-written is listed
`

// NewRoot builds the lifeboat command tree.
func NewRoot(app *App) *cobra.Command {
	root := &cobra.Command{
		Use:   "lifeboat",
		Short: "Back up and restore the data of web applications",
		Long: `Lifeboat backs up databases and files, described in one YAML file committed
beside your application, through one streaming pass: dump -> zstd -> age ->
SHA-256 -> every storage. It restores into a new target by default, verifies
what it stored, and tells you when something is wrong.` + "\n" + exitStatusHelp,
		Example: `  lifeboat init                  # write lifeboat.yaml and a new key
  lifeboat backup                # back up every source
  lifeboat list                  # what backups exist
  lifeboat restore app-db --to ./restored.db`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       app.Version,
	}
	root.SetOut(app.Stdout)
	root.SetErr(app.Stderr)
	def := "lifeboat.yaml"
	if v, ok := app.Env("LIFEBOAT_CONFIG"); ok && v != "" {
		def = v
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&app.ConfigPath, "config", "c", def, "config file (env LIFEBOAT_CONFIG)")
	pf.StringVarP(&app.Identity, "identity", "i", "", "age identity (private key) file; overrides encryption.identity")
	pf.StringVar(&app.LogLevel, "log-level", "warn", "log level: debug, info, warn, error")
	pf.BoolVar(&app.LogJSON, "log-json", false, "log as JSON lines")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErr("see `"+c.CommandPath()+" --help`", "%v", err)
	})
	for _, c := range []*cobra.Command{
		newInitCommand(app),
		newValidateCommand(app),
		newExplainCommand(app),
		newBackupCommand(app),
		newListCommand(app),
		newVerifyCommand(app),
		newRestoreCommand(app),
		newCopyCommand(app),
		newDoctorCommand(app),
		newDemoCommand(app),
		newPruneCommand(app),
		newDrillCommand(app),
		newStatusCommand(app),
		newReportCommand(app),
		newDaemonCommand(app),
		newScheduleCommand(app),
		// More commands register here, one line each.
	} {
		root.AddCommand(c)
	}
	return root
}

// Execute runs the command line args under ctx.
func Execute(ctx context.Context, app *App, args []string) error {
	root := NewRoot(app)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil && ctx.Err() != nil {
		return &UserError{Msg: "interrupted; nothing half-written was committed", Err: errInterrupted, Code: ExitInterrupted}
	}
	return err
}
