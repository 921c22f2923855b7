package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/notify"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
	"github.com/lifeboat-backup/lifeboat/internal/summary"
)

type reportOptions struct {
	since string
	html  bool
	json  bool
	send  bool
}

func newReportCommand(app *App) *cobra.Command {
	var opts reportOptions
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Print (or send) the summary of the last day's backups",
		Long: `Report prints the daily summary: every source with what was backed up in the
period (count, size, change against the day before), sources whose newest
good backup is older than their rpo, the last drill of each source, and the
space used and left on each storage. It reads the manifests in the storages,
so it shows the same on any machine that can read them.

Times are printed in summary.timezone (UTC when unset). With --send the
summary goes to the notifiers named in summary.to (and those with summary in
their on: list) instead of being printed; the daemon does the same on
summary.schedule.` + "\n" + exitStatusHelp,
		Example: `  lifeboat report
  lifeboat report --since 7d
  lifeboat report --html > summary.html
  lifeboat report --send          # mail it to summary.to now`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runReport(cmd.Context(), opts, app)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.since, "since", "24h", "period to summarize, ending now (90m, 24h, 7d)")
	f.BoolVar(&opts.html, "html", false, "print HTML (as mailed) instead of text")
	f.BoolVar(&opts.json, "json", false, "print JSON")
	f.BoolVar(&opts.send, "send", false, "send to the summary notifiers instead of printing")
	return cmd
}

func runReport(ctx context.Context, opts reportOptions, app *App) error {
	window, err := config.ParseDuration(opts.since)
	if err != nil || window <= 0 {
		return usageErr("for example --since 24h or --since 7d", "--since %q is not a positive duration", opts.since)
	}
	if opts.html && opts.json {
		return usageErr("choose one", "--html and --json exclude each other")
	}
	s, err := app.loadSetup()
	if err != nil {
		return err
	}
	sum, err := s.Summary(ctx, app.Now(), window)
	if err != nil {
		return err
	}
	if opts.send {
		d, err := s.Dispatcher()
		if err != nil {
			return err
		}
		if err := d.Summary(ctx, sum); err != nil {
			return &UserError{Msg: "the summary was not sent to every notifier", Err: err,
				Hint: "check the notifier settings (`lifeboat validate`), and the log above for each attempt"}
		}
		app.Printf("Summary sent to %s.\n", strings.Join(d.Targets(notify.Event{Kind: notify.Summary}), ", "))
		return nil
	}
	switch {
	case opts.json:
		b, err := json.MarshalIndent(sum, "", "  ")
		if err != nil {
			return err
		}
		app.Printf("%s\n", b)
	case opts.html:
		h, err := sum.HTML()
		if err != nil {
			return err
		}
		app.Printf("%s", h)
	default:
		app.Printf("%s", sum.Text())
	}
	return nil
}

// Summary builds the summary of the window ending at now from every
// configured storage. A storage that cannot be opened is shown as unreadable
// rather than failing the summary.
func (s *Setup) Summary(ctx context.Context, now time.Time, window time.Duration) (*summary.Summary, error) {
	loc := time.UTC
	if s.Cfg.Summary != nil && s.Cfg.Summary.Timezone != "" {
		l, err := time.LoadLocation(s.Cfg.Summary.Timezone)
		if err != nil {
			return nil, &UserError{Msg: fmt.Sprintf("summary.timezone %q is not a time zone", s.Cfg.Summary.Timezone),
				Hint: "use an IANA name such as Europe/Berlin or America/New_York", Code: ExitUsage}
		}
		loc = l
	}
	var sts []storage.Storage
	var broken []summary.Storage
	for _, n := range s.Cfg.StorageNames {
		st, err := s.Storage(ctx, n)
		if err != nil {
			broken = append(broken, summary.Storage{Name: n, Used: -1, Free: -1, Error: err.Error()})
			continue
		}
		sts = append(sts, st)
	}
	sum, err := summary.Build(ctx, summary.Input{
		Config: s.Cfg, Storages: sts, Now: now, Window: window, Host: s.App.Hostname, Location: loc,
		Logger: s.App.Logger(),
	})
	if err != nil {
		return nil, err
	}
	for _, b := range broken {
		sum.Storages = append(sum.Storages, b)
		sum.Problems = append(sum.Problems, "storage "+b.Name+" could not be opened: "+b.Error)
	}
	return sum, nil
}

// Dispatcher builds the configured notifiers and a dispatcher for them.
func (s *Setup) Dispatcher() (*notify.Dispatcher, error) {
	log := s.App.Logger()
	ns, err := notify.Build(s.Cfg, notifierFactories(), notify.Deps{Logger: log, Now: s.App.Now, Dir: s.Cfg.Dir})
	if err != nil {
		return nil, &UserError{Msg: "set up notifiers", Err: err, Hint: "check the notifiers: section of " + s.Cfg.File}
	}
	d, err := notify.NewDispatcher(s.Cfg, ns, notify.Options{Logger: log, Now: s.App.Now, Host: s.App.Hostname})
	if err != nil {
		return nil, err
	}
	return d, nil
}
