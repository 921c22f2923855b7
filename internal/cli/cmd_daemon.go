package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/daemon"
	"github.com/lifeboat-backup/lifeboat/internal/metrics"
	"github.com/lifeboat-backup/lifeboat/internal/notify"
	"github.com/lifeboat-backup/lifeboat/internal/report"
	"github.com/lifeboat-backup/lifeboat/internal/retention"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

type daemonOptions struct {
	metricsListen string
}

func newDaemonCommand(app *App) *cobra.Command {
	var opts daemonOptions
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run backups, drills and prunes on their schedules",
		Long: `Daemon stays running and does everything the config schedules: each source's
backups (schedule:), drills (drill.schedule:) and prunes (prune.schedule:),
the overdue check against each source's rpo, and the daily summary.

A source never runs twice at once, even across hosts sharing a storage: each
run holds a lock object in the source's first storage. Runs missed while the
daemon was down run once when it starts (state in daemon.state_dir, by default
$STATE_DIRECTORY, $XDG_STATE_HOME/lifeboat or ~/.local/state/lifeboat).

SIGHUP reloads the config file; a config with errors is logged and the old
one kept. SIGTERM or Ctrl-C stops: runs in progress get daemon.shutdown_grace
(default 1m) to finish, then are cancelled, and nothing half-written is
committed. With --metrics-listen (or daemon.metrics_listen) Prometheus metrics
are served at /metrics.

For the system scheduler instead, see ` + "`lifeboat schedule --print`" + `.` + "\n" + exitStatusHelp,
		Example: `  lifeboat daemon
  lifeboat daemon --metrics-listen 127.0.0.1:9090
  kill -HUP $(pidof lifeboat)    # reload lifeboat.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("log-level") {
				app.LogLevel = "info" // a daemon's lifecycle lines are its output
			}
			return runDaemon(cmd.Context(), opts, app)
		},
	}
	cmd.Flags().StringVar(&opts.metricsListen, "metrics-listen", "", "serve Prometheus metrics on this address (HOST:PORT), overriding daemon.metrics_listen")
	return cmd
}

func runDaemon(ctx context.Context, opts daemonOptions, app *App) error {
	app.StderrTTY = false // no progress bars in a daemon's log
	log := app.Logger()
	s, err := app.loadDaemonSetup()
	if err != nil {
		return err
	}
	m := metrics.New()
	m.RegisterRuntime()
	addr := opts.metricsListen
	if addr == "" {
		addr = s.Cfg.Daemon.MetricsListen
	}
	if addr != "" {
		stopMetrics, err := serveMetrics(ctx, addr, m.Handler(), log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	d, err := daemon.New(s.Cfg, daemonServices(s), daemon.Options{
		Clock: daemon.SystemClock{}, Logger: log, Metrics: m,
		Host: app.Hostname, PID: os.Getpid(), Local: time.Local,
		StateDir:       defaultStateDir(app),
		RunnerNotifies: func(k report.Kind) bool { return k == report.Backup }, // BackupRun tells the notifiers itself
	})
	if err != nil {
		var ps config.Problems
		if errors.As(err, &ps) {
			return ps
		}
		return &UserError{Msg: "start the daemon", Err: err, Hint: "set daemon.state_dir to a writable folder", Code: ExitUsage}
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reloadDaemon(app, d, log)
			}
		}
	}()
	return d.Run(ctx)
}

// reloadDaemon loads and checks the config file again and hands it to the
// daemon; on any problem it logs why and the daemon keeps the old config.
func reloadDaemon(app *App, d *daemon.Daemon, log *slog.Logger) {
	log.Info("SIGHUP: reloading the configuration", "file", app.ConfigPath)
	s, err := app.loadDaemonSetup()
	if err == nil {
		err = d.Reload(s.Cfg, daemonServices(s))
	}
	if err != nil {
		log.Error("reload failed; keeping the previous configuration", "err", oneLine(err))
		return
	}
	log.Info("configuration reloaded", "file", app.ConfigPath)
}

// oneLine joins a multi-line error (config problems) for a log line.
func oneLine(err error) string {
	var ps config.Problems
	if errors.As(err, &ps) {
		var parts []string
		for _, p := range ps {
			parts = append(parts, p.Error())
		}
		return strings.Join(parts, "; ")
	}
	return err.Error()
}

// loadDaemonSetup loads the config and checks its schedule keys too.
func (a *App) loadDaemonSetup() (*Setup, error) {
	s, err := a.loadSetup()
	if err != nil {
		return nil, err
	}
	if ps := daemon.Check(s.Cfg, time.Local); len(ps) > 0 {
		return nil, ps
	}
	return s, nil
}

// defaultStateDir is where the daemon keeps its state when the config does
// not say: systemd's StateDirectory=, then the XDG state folder.
func defaultStateDir(app *App) string {
	if v, ok := app.Env("STATE_DIRECTORY"); ok && v != "" {
		return strings.Split(v, ":")[0]
	}
	if v, ok := app.Env("XDG_STATE_HOME"); ok && v != "" {
		return filepath.Join(v, "lifeboat")
	}
	if v, ok := app.Env("HOME"); ok && v != "" && v != "/" {
		return filepath.Join(v, ".local", "state", "lifeboat")
	}
	return "/var/lib/lifeboat"
}

// serveMetrics serves h at /metrics on addr until stop is called.
func serveMetrics(ctx context.Context, addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &UserError{Msg: "listen for metrics on " + addr, Err: err,
			Hint: "choose a free address with --metrics-listen or daemon.metrics_listen", Code: ExitUsage}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "lifeboat daemon: metrics are at /metrics\n")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String(), "path", "/metrics")
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}

// daemonServices adapts a Setup to what the daemon calls.
func daemonServices(s *Setup) daemon.Services {
	svc := daemon.Services{
		Runner: setupRunner{s},
		LockStorage: func(source string) (storage.Storage, error) {
			sc, err := s.SourceConfig(source)
			if err != nil {
				return nil, err
			}
			if len(sc.Storages) == 0 {
				return nil, fmt.Errorf("source %s has no storage", source)
			}
			return s.Storage(context.Background(), sc.Storages[0])
		},
	}
	if len(s.Cfg.NotifierNames) > 0 {
		disp, err := s.Dispatcher()
		if err != nil {
			s.App.Logger().Error("notifiers unavailable; overdue alarms and summaries will not be sent", "err", err)
		} else {
			svc.Notifier = setupNotifier{s: s, d: disp}
		}
	}
	return svc
}

// setupRunner runs one source's backup, drill or prune through the same
// code as the commands.
type setupRunner struct{ s *Setup }

func (r setupRunner) Backup(ctx context.Context, source string) *report.Run {
	return r.s.BackupRun(ctx, []string{source}, nil)
}

func (r setupRunner) Drill(ctx context.Context, source string) *report.Run {
	w := logWriter(r.s.App.Logger(), "drill", source)
	defer w.Close()
	run, err := r.s.DrillRun(ctx, []string{source}, "", false, w)
	if err != nil {
		return failedRun(r.s, report.Drill, source, err)
	}
	return run
}

func (r setupRunner) Prune(ctx context.Context, source string) *report.Run {
	w := logWriter(r.s.App.Logger(), "prune", source)
	defer w.Close()
	run, err := r.s.PruneRun(ctx, []string{source}, false, false, w)
	if err != nil {
		return failedRun(r.s, report.Prune, source, err)
	}
	return run
}

// Newest is the start of the source's newest good backup in its own
// storages (not suspect, not failed by its last drill).
func (r setupRunner) Newest(ctx context.Context, source string) (time.Time, bool, error) {
	sc, err := r.s.SourceConfig(source)
	if err != nil {
		return time.Time{}, false, err
	}
	es, warns, err := r.s.Entries(ctx, source, sc.Storages)
	if err != nil {
		return time.Time{}, false, err
	}
	var newest time.Time
	for _, e := range es {
		if retention.Good(e.Manifest, e.Drill) && e.Started.After(newest) {
			newest = e.Started
		}
	}
	if newest.IsZero() && len(warns) > 0 {
		return time.Time{}, false, errors.New(strings.Join(warns, "; "))
	}
	return newest, !newest.IsZero(), nil
}

func failedRun(s *Setup, kind report.Kind, source string, err error) *report.Run {
	now := s.App.Now()
	run := &report.Run{ID: "daemon-" + now.UTC().Format("20060102T150405Z"), Kind: kind, Host: s.App.Hostname, Started: now, Finished: now,
		Items: []report.Item{{Source: source, Status: report.Failed, Started: now, Finished: now, Error: err.Error()}}}
	run.Summarize()
	return run
}

// setupNotifier sends the daemon's events through the dispatcher.
type setupNotifier struct {
	s *Setup
	d *notify.Dispatcher
}

func (n setupNotifier) RunStarted(ctx context.Context, kind report.Kind, source string) {
	n.d.RunStarted(ctx, kind, source)
}

func (n setupNotifier) RunFinished(ctx context.Context, run *report.Run) { n.d.RunFinished(ctx, run) }

func (n setupNotifier) Overdue(ctx context.Context, source string, newest time.Time, rpo time.Duration) {
	n.d.Overdue(ctx, source, newest, rpo)
}

// Summary builds the last 24 hours' summary and sends it to summary.to.
func (n setupNotifier) Summary(ctx context.Context) {
	log := n.s.App.Logger()
	sum, err := n.s.Summary(ctx, n.s.App.Now(), 24*time.Hour)
	if err == nil {
		err = n.d.Summary(ctx, sum)
	}
	if err != nil {
		log.Error("daily summary not sent", "err", err)
	}
}

// logWriter turns the lines a command prints into Info log lines.
func logWriter(log *slog.Logger, job, source string) io.WriteCloser {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			log.Info(strings.TrimSpace(sc.Text()), "job", job, "source", source)
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	return pw
}
