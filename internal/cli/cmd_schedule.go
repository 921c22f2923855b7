package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/daemon"
)

type scheduleOptions struct {
	print  string
	binary string
	image  string
}

func newScheduleCommand(app *App) *cobra.Command {
	var opts scheduleOptions
	cmd := &cobra.Command{
		Use:   "schedule --print systemd|cron|kubernetes",
		Short: "Print the schedules as systemd timers, crontab lines or Kubernetes CronJobs",
		Long: `Schedule prints what ` + "`lifeboat daemon`" + ` would run (each source's backups, drills
and prunes, and the daily summary), for people who prefer the system's own
scheduler:

  systemd     a .service and a .timer per task (Persistent=true catches up a
              run missed while the machine was off, once)
  cron        crontab lines (cron does not catch up missed runs)
  kubernetes  CronJob manifests (concurrencyPolicy: Forbid; a missed run is
              started late, once, within one period)

The commands use this binary's path (--binary) and the config file's absolute
path. Jitter becomes RandomizedDelaySec= for systemd and a random sleep for
cron; catch_up_pass and the overdue alarm need the daemon (or ` + "`lifeboat status`" + `
from monitoring). Use either these or the daemon, not both.` + "\n" + exitStatusHelp,
		Example: `  lifeboat schedule --print systemd
  lifeboat schedule --print cron | crontab -
  lifeboat schedule --print kubernetes --image ghcr.io/lifeboat-backup/lifeboat:1.0 | kubectl apply -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSchedule(cmd.Context(), opts, app)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.print, "print", "", "format: systemd, cron or kubernetes")
	f.StringVar(&opts.binary, "binary", "", "path of lifeboat in the commands (default: this executable)")
	f.StringVar(&opts.image, "image", "", "container image for kubernetes (default ghcr.io/lifeboat-backup/lifeboat:VERSION)")
	return cmd
}

// scheduled is one task with the command that runs it.
type scheduled struct {
	daemon.Task
	name string   // lifeboat-backup-db, lifeboat-summary
	what string   // "backup of db"
	args []string // after the global flags
}

func runSchedule(ctx context.Context, opts scheduleOptions, app *App) error {
	switch opts.print {
	case "systemd", "cron", "kubernetes":
	case "":
		return usageErr("for example `lifeboat schedule --print systemd`", "--print is required: systemd, cron or kubernetes")
	default:
		return usageErr("use systemd, cron or kubernetes", "unknown format %q for --print", opts.print)
	}
	s, err := app.loadSetup()
	if err != nil {
		return err
	}
	tasks, ps := daemon.Tasks(s.Cfg, time.Local)
	if len(ps) > 0 {
		return ps
	}
	if len(tasks) == 0 {
		return &UserError{Msg: "nothing is scheduled in " + s.Cfg.File,
			Hint: "give sources a schedule: (for example `schedule: \"@daily\"`), and drill:/prune: their own", Code: ExitUsage}
	}
	var list []scheduled
	for _, t := range tasks {
		sc := scheduled{Task: t}
		switch t.Kind {
		case daemon.KindSummary:
			sc.name, sc.what, sc.args = "lifeboat-summary", "daily summary", []string{"report", "--send", "--since", "24h"}
		default:
			sc.name = "lifeboat-" + string(t.Kind) + "-" + t.Source
			sc.what = string(t.Kind) + " of " + t.Source
			sc.args = []string{string(t.Kind), t.Source}
		}
		list = append(list, sc)
	}
	cfgPath, err := filepath.Abs(app.ConfigPath)
	if err != nil {
		return err
	}
	bin := opts.binary
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return &UserError{Msg: "find this executable's path", Err: err, Hint: "name it with --binary"}
		}
		if p, err := filepath.EvalSymlinks(bin); err == nil {
			bin = p
		}
	}
	w := app.Stdout
	switch opts.print {
	case "systemd":
		return printSystemd(w, list, bin, cfgPath)
	case "cron":
		return printCron(w, list, bin, cfgPath, app)
	default:
		img := opts.image
		if img == "" {
			v := app.Version
			if v == "" || v == "dev" || v == "test" {
				v = "latest"
			}
			img = "ghcr.io/lifeboat-backup/lifeboat:" + v
		}
		return printKubernetes(w, list, img, cfgPath)
	}
}

func printSystemd(w io.Writer, list []scheduled, bin, cfgPath string) error {
	var timers []string
	for _, t := range list {
		timers = append(timers, t.name+".timer")
	}
	fmt.Fprintf(w, `# systemd units for the schedules in %s,
# printed by `+"`lifeboat schedule --print systemd`"+`. Save each file below (after its
# "==> NAME <==" line) in /etc/systemd/system/, then run:
#   systemctl daemon-reload
#   systemctl enable --now %s
# Use either these timers or `+"`lifeboat daemon`"+`, not both.
`, cfgPath, strings.Join(timers, " "))
	for _, t := range list {
		cmd := append([]string{bin, "--config", cfgPath, "--log-level", "info"}, t.args...)
		fmt.Fprintf(w, `
# ==> %[1]s.service <==
[Unit]
Description=Lifeboat %[2]s
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=%[3]s
# SIGTERM cancels the run; nothing half-written is committed.
TimeoutStopSec=2min
Nice=10
IOSchedulingClass=best-effort
IOSchedulingPriority=7
`, t.name, t.what, systemdQuote(cmd))
		fmt.Fprintf(w, "\n# ==> %s.timer <==\n[Unit]\nDescription=Lifeboat %s: %s (%s)\n\n[Timer]\n", t.name, t.what, t.Schedule, zoneName(t.Schedule.Location()))
		if cal, err := t.Schedule.OnCalendar(); err == nil {
			for _, c := range cal {
				fmt.Fprintf(w, "OnCalendar=%s\n", c)
			}
			fmt.Fprintf(w, "# After downtime, run once at start if a run was missed.\nPersistent=true\n")
		} else {
			fmt.Fprintf(w, "OnActiveSec=0\nOnUnitActiveSec=%s\n", systemdSpan(t.Schedule.Every()))
		}
		if t.Jitter > 0 {
			fmt.Fprintf(w, "RandomizedDelaySec=%s\n", systemdSpan(t.Jitter))
		}
		fmt.Fprintf(w, "AccuracySec=1s\n")
		if t.CatchUpPass {
			fmt.Fprintf(w, "# catch_up_pass needs `lifeboat daemon`; a timer runs one pass.\n")
		}
		fmt.Fprintf(w, "\n[Install]\nWantedBy=timers.target\n")
	}
	return nil
}

func printCron(w io.Writer, list []scheduled, bin, cfgPath string, app *App) error {
	fmt.Fprintf(w, `# crontab lines for the schedules in %s,
# printed by `+"`lifeboat schedule --print cron`"+`. Install with `+"`crontab -e`"+` (or
# `+"`... | crontab -`"+`, which replaces the whole crontab). cron does not catch up runs
# missed while the machine was off; `+"`lifeboat daemon`"+` or systemd timers do.
# Output on stdout is discarded; errors (stderr) are mailed by cron.
SHELL=/bin/sh
`, cfgPath)
	// Tasks in the host's zone first: a CRON_TZ= line applies to every line
	// after it, and the host's zone has no name to go back to.
	slices.SortStableFunc(list, func(a, b scheduled) int {
		return strings.Compare(cronZone(a.Schedule.Location()), cronZone(b.Schedule.Location()))
	})
	zone := ""
	for _, t := range list {
		expr, err := t.Schedule.Crontab()
		if err != nil {
			fmt.Fprintf(w, "\n# SKIPPED %s: %v\n", t.what, err)
			app.Logger().Warn("not expressible in cron; skipped", "task", t.name, "err", err)
			continue
		}
		if z := cronZone(t.Schedule.Location()); z != zone {
			fmt.Fprintf(w, "\nCRON_TZ=%s\n", z)
			zone = z
		}
		cmd := shellQuote(append([]string{bin, "--config", cfgPath}, t.args...)) + " >/dev/null"
		if t.Jitter > 0 {
			// A random delay below the jitter; % must be escaped in crontab.
			secs := int64(t.Jitter / time.Second)
			cmd = fmt.Sprintf(`sleep $(( $(od -An -N4 -tu4 /dev/urandom) \%% %d )) && %s`, max(secs, 1), cmd)
		}
		fmt.Fprintf(w, "# %s\n%s %s\n", t.what, expr, cmd)
	}
	return nil
}

func printKubernetes(w io.Writer, list []scheduled, image, cfgPath string) error {
	base := filepath.Base(cfgPath)
	fmt.Fprintf(w, `# Kubernetes CronJobs for the schedules in %s,
# printed by `+"`lifeboat schedule --print kubernetes`"+`. They expect:
#   a ConfigMap "lifeboat-config" holding %s
#     (kubectl create configmap lifeboat-config --from-file=%s), and
#   a Secret "lifeboat-env" with the variables its ${env:...} references read
#     (kubectl create secret generic lifeboat-env --from-env-file=lifeboat.env).
# Local storages need a volume mounted at their path; add it to each job.
`, cfgPath, base, cfgPath)
	for _, t := range list {
		args := append([]string{"--config", "/etc/lifeboat/" + base, "--log-level", "info"}, t.args...)
		quoted := make([]string, len(args))
		for i, a := range args {
			quoted[i] = strconv.Quote(a)
		}
		expr, err := t.Schedule.Crontab()
		if err != nil {
			fmt.Fprintf(w, "\n# SKIPPED %s: %v\n", t.what, err)
			continue
		}
		name := k8sName(t.name)
		fmt.Fprintf(w, "---\n# %s\napiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: %s\n  labels:\n    app.kubernetes.io/name: lifeboat\n    app.kubernetes.io/component: %s\n",
			t.what, name, k8sName(string(t.Kind)))
		if t.Source != "" {
			fmt.Fprintf(w, "    lifeboat.dev/source: %s\n", k8sName(t.Source))
		}
		fmt.Fprintf(w, "spec:\n  schedule: %s\n", strconv.Quote(expr))
		if z := cronZone(t.Schedule.Location()); z != "" {
			fmt.Fprintf(w, "  timeZone: %s\n", strconv.Quote(z))
		} else {
			fmt.Fprintf(w, "  # No timezone configured: the cluster's (kube-controller-manager's) zone applies.\n")
		}
		if t.Jitter > 0 {
			fmt.Fprintf(w, "  # jitter %s: CronJobs have no random delay\n", config.FormatDuration(t.Jitter))
		}
		fmt.Fprintf(w, `  # A run missed while the cluster was down starts late, once, within one period.
  startingDeadlineSeconds: %d
  concurrencyPolicy: Forbid
  successfulJobsHistoryLimit: 3
  failedJobsHistoryLimit: 3
  jobTemplate:
    spec:
      backoffLimit: 0
      template:
        metadata:
          labels:
            app.kubernetes.io/name: lifeboat
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 120
          containers:
            - name: lifeboat
              image: %s
              args: [%s]
              envFrom:
                - secretRef:
                    name: lifeboat-env
              volumeMounts:
                - name: config
                  mountPath: /etc/lifeboat
                  readOnly: true
          volumes:
            - name: config
              configMap:
                name: lifeboat-config
`, startingDeadline(t), strconv.Quote(image), strings.Join(quoted, ", "))
	}
	return nil
}

// startingDeadline is one period of the schedule, between 1 minute and a day.
func startingDeadline(t scheduled) int64 {
	ref := time.Date(2030, 1, 7, 0, 0, 0, 0, time.UTC)
	n1 := t.Schedule.Next(ref)
	p := t.Schedule.Next(n1).Sub(n1)
	return int64(min(max(p, time.Minute), 24*time.Hour) / time.Second)
}

// cronZone is the zone name for CRON_TZ= or timeZone:, empty for the host's.
func cronZone(loc *time.Location) string {
	if loc == nil || loc.String() == "Local" {
		return ""
	}
	return loc.String()
}

func zoneName(loc *time.Location) string {
	if z := cronZone(loc); z != "" {
		return z
	}
	return "local time"
}

// systemdSpan writes d as a systemd.time(7) span ("6h", "90s").
func systemdSpan(d time.Duration) string {
	if d%time.Second != 0 {
		return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
	}
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}

// systemdQuote writes argv for ExecStart=, quoting words that need it.
func systemdQuote(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && !strings.ContainsAny(a, " \t\"'\\;$%") {
			out[i] = a
			continue
		}
		r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `$$`, `%`, `%%`)
		out[i] = `"` + r.Replace(a) + `"`
	}
	return strings.Join(out, " ")
}

// shellQuote writes argv for sh, in a crontab line (% escaped).
func shellQuote(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		q := a
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\$`;&|<>()*?[]#~=%!{}") {
			q = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = strings.ReplaceAll(q, "%", `\%`)
	}
	return strings.Join(out, " ")
}

// k8sName makes s a valid object name part: lowercase, [a-z0-9-], at most
// 52 characters (a CronJob's jobs add 11).
func k8sName(s string) string {
	s = strings.ToLower(strings.ReplaceAll(s, "_", "-"))
	if len(s) > 52 {
		s = strings.TrimRight(s[:52], "-")
	}
	return s
}
