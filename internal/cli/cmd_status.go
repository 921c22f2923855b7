package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lifeboat-backup/lifeboat/internal/status"
)

type statusOptions struct {
	json bool
}

func newStatusCommand(app *App) *cobra.Command {
	var opts statusOptions
	cmd := &cobra.Command{
		Use:   "status [SOURCE...]",
		Short: "Show whether every source has a recent good backup",
		Long: `Status shows, per source (and part): the newest good backup (not suspect,
and not failed by its last drill), its age against the source's rpo, its size
and change from the previous backup, the last drill and the RTO it measured,
and each storage's used and free space.

The exit status is 1 when any source is overdue (no good backup within its
rpo), its newest backup is suspect, its last drill failed, or a storage could
not be read, so status can be run from monitoring; --json prints the same as
JSON (and exits the same way).` + "\n" + exitStatusHelp,
		Example: `  lifeboat status
  lifeboat status --json | jq '.sources[] | select(.overdue)'
  lifeboat status app-db || notify-team "backups need attention"`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStatus(cmd.Context(), opts, args, app)
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print the status as JSON")
	return cmd
}

func runStatus(ctx context.Context, opts statusOptions, names []string, app *App) error {
	s, err := app.loadSetup()
	if err != nil {
		return err
	}
	if len(names) == 0 {
		names = s.Cfg.SourceNames
	}
	var srcs []status.Source
	for _, n := range names {
		sc, err := s.SourceConfig(n)
		if err != nil {
			return err
		}
		sts, err := s.SourceStorages(ctx, sc)
		if err != nil {
			return err
		}
		srcs = append(srcs, status.Source{Name: n, RPO: sc.RPO.D(), RTO: sc.RTO.D(), Storages: sts})
	}
	rep, err := status.Collect(ctx, srcs, status.Options{Now: app.Now, LastVerify: s.lastVerify()})
	if err != nil {
		return err
	}
	if opts.json {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		app.Printf("%s\n", b)
	} else if err := rep.WriteTable(app.Stdout); err != nil {
		return err
	}
	if ps := rep.Problems(); len(ps) > 0 {
		names := map[string]bool{}
		var order []string
		for _, src := range rep.Sources {
			if len(src.Problems) > 0 && !names[src.Name()] {
				names[src.Name()] = true
				order = append(order, src.Name())
			}
		}
		return &UserError{Msg: fmt.Sprintf("%d source(s) need attention: %s", len(order), strings.Join(order, ", ")),
			Hint: "run `lifeboat backup` for overdue sources; look at suspect backups and failed drills before trusting them"}
	}
	return nil
}
