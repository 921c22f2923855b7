package daemon

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/report"
	"github.com/lifeboat-backup/lifeboat/internal/schedule"
)

// KindSummary is the task kind of the daily summary.
const KindSummary report.Kind = "summary"

// DefaultSummarySchedule is used when `summary:` has no schedule.
const DefaultSummarySchedule = "0 8 * * *"

// Defaults of the daemon: section.
const (
	DefaultMaxParallel   = 1
	DefaultShutdownGrace = time.Minute
)

// taskKey names a task: a kind of run for a source, or the summary.
type taskKey struct {
	Kind   report.Kind
	Source string
}

func (k taskKey) String() string {
	if k.Source == "" {
		return string(k.Kind)
	}
	return string(k.Kind) + "/" + k.Source
}

// taskSpec is a task as configured.
type taskSpec struct {
	key         taskKey
	sched       *schedule.Schedule
	jitter      time.Duration
	catchUpPass bool
}

// settings is what the daemon takes from a config.
type settings struct {
	tasks       []taskSpec
	sources     []string
	rpo         map[string]time.Duration
	maxParallel int
	lockTTL     time.Duration
	grace       time.Duration
	stateDir    string // resolved; may be empty (then Options.StateDir)
}

// Task is a scheduled action as configured: `lifeboat schedule --print`
// turns them into systemd timers, crontab lines or CronJobs.
type Task struct {
	Kind        report.Kind // backup, drill, prune, or KindSummary
	Source      string      // empty for the summary
	Schedule    *schedule.Schedule
	Jitter      time.Duration
	CatchUpPass bool
}

// Tasks returns cfg's scheduled tasks in config order (per source: backup,
// drill, prune; then the summary), or the problems found (see [Check]).
func Tasks(cfg *config.Config, local *time.Location) ([]Task, config.Problems) {
	set, ps := compile(cfg, local)
	if len(ps) > 0 {
		return nil, ps
	}
	out := make([]Task, len(set.tasks))
	for i, t := range set.tasks {
		out[i] = Task{Kind: t.key.Kind, Source: t.key.Source, Schedule: t.sched, Jitter: t.jitter, CatchUpPass: t.catchUpPass}
	}
	return out, nil
}

// Check reports every problem with the schedule-related and daemon keys of
// cfg, with positions: schedules, time zones and jitters of sources, drills,
// prunes and the summary, and the daemon: section. local is the zone of
// schedules without one. `lifeboat validate` and the daemon's reload call it.
func Check(cfg *config.Config, local *time.Location) config.Problems {
	_, ps := compile(cfg, local)
	return ps
}

func compile(cfg *config.Config, local *time.Location) (*settings, config.Problems) {
	var ps config.Problems
	at := func(paths []string, hint, format string, args ...any) {
		pos := cfg.Pos(paths[0])
		for _, p := range paths {
			if q := cfg.Pos(p); q.Line > 0 {
				pos = q
				break
			}
		}
		ps = append(ps, config.Problem{Pos: pos, Msg: fmt.Sprintf(format, args...), Hint: hint})
	}
	s := &settings{rpo: map[string]time.Duration{}}

	// add parses one schedule. bases are the YAML paths the keys may come
	// from, most specific first (the source's own, then defaults).
	add := func(key taskKey, what string, bases []string, expr, tz string, jitter time.Duration, catchUp bool) {
		if expr == "" {
			return
		}
		sch, err := schedule.Parse(expr, tz, local)
		if err != nil {
			var fe *config.FieldError
			if errors.As(err, &fe) {
				at(withField(bases, fe.Field), fe.Hint, "%s: %s", what, fe.Msg)
			} else {
				at(withField(bases, "schedule"), "", "%s: %v", what, err)
			}
			return
		}
		if jitter < 0 {
			at(withField(bases, "jitter"), "use a positive duration such as 10m, or leave it out", "%s: jitter %s is negative", what, jitter)
			return
		}
		s.tasks = append(s.tasks, taskSpec{key: key, sched: sch, jitter: jitter, catchUpPass: catchUp})
	}

	for _, name := range cfg.SourceNames {
		src := cfg.Sources[name]
		base := "sources." + name
		s.sources = append(s.sources, name)
		add(taskKey{report.Backup, name}, "source "+name, []string{base, "defaults"},
			src.Schedule, src.Timezone, src.Jitter.D(), src.CatchUpPass)
		// A drill or prune without its own zone takes the source's (a bad
		// one is reported once, for the source).
		_, srcZoneErr := time.LoadLocation(src.Timezone)
		zone := func(tz string) string {
			if tz == "" && srcZoneErr == nil {
				return src.Timezone
			}
			return tz
		}
		if d := src.Drill; d != nil {
			add(taskKey{report.Drill, name}, "drill of "+name, []string{base + ".drill", "defaults.drill"},
				d.Schedule, zone(d.Timezone), d.Jitter.D(), false)
		}
		if p := src.Prune; p != nil {
			add(taskKey{report.Prune, name}, "prune of "+name, []string{base + ".prune", "defaults.prune"},
				p.Schedule, zone(p.Timezone), p.Jitter.D(), false)
		}
		switch rpo := src.RPO.D(); {
		case rpo < 0:
			at([]string{base + ".rpo", "defaults.rpo"}, "use a duration such as 26h or 2d", "source %s: rpo %s is negative", name, rpo)
		case rpo > 0:
			s.rpo[name] = rpo
		}
	}
	if sum := cfg.Summary; sum != nil {
		expr := sum.Schedule
		if expr == "" {
			expr = DefaultSummarySchedule
		}
		add(taskKey{Kind: KindSummary}, "summary", []string{"summary"}, expr, sum.Timezone, 0, false)
	}

	d := cfg.Daemon
	s.maxParallel = d.MaxParallel
	switch {
	case d.MaxParallel < 0:
		at([]string{"daemon.max_parallel"}, "use 1 or more", "daemon.max_parallel must not be negative")
	case d.MaxParallel == 0:
		s.maxParallel = DefaultMaxParallel
	}
	s.lockTTL = d.LockTTL.D()
	switch {
	case s.lockTTL == 0:
	case s.lockTTL < 10*time.Second:
		at([]string{"daemon.lock_ttl"}, "use at least 10s; the default is 5m", "daemon.lock_ttl %s is too short to renew a lock over a network", s.lockTTL)
	}
	s.grace = d.ShutdownGrace.D()
	switch {
	case s.grace < 0:
		at([]string{"daemon.shutdown_grace"}, "use a duration such as 1m, or 0s to cancel at once", "daemon.shutdown_grace must not be negative")
	case s.grace == 0 && cfg.Pos("daemon.shutdown_grace").Line == 0:
		s.grace = DefaultShutdownGrace
	}
	if d.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(d.MetricsListen); err != nil {
			at([]string{"daemon.metrics_listen"}, "use HOST:PORT such as 127.0.0.1:9090 (or :9090 for every interface)",
				"daemon.metrics_listen %q is not an address: %v", d.MetricsListen, err)
		}
	}
	if d.StateDir != "" {
		s.stateDir = cfg.Path(d.StateDir)
	}
	return s, ps
}

func withField(bases []string, field string) []string {
	out := make([]string, len(bases))
	for i, b := range bases {
		out[i] = b + "." + field
	}
	return out
}
