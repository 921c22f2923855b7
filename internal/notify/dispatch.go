package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/report"
	"github.com/lifeboat-backup/lifeboat/internal/summary"
)

// defaultOn is what an empty `on:` means.
var defaultOn = []string{"failure", "suspect", "overdue"}

// followerOn is what an empty `on:` means for a [RunFollower].
var followerOn = []string{"failure", "success", "suspect"}

// Options tune a [Dispatcher]. The zero value is usable.
type Options struct {
	// Logger receives one line per delivery problem; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Host names this machine in events that have no run report.
	Host string
	// Attempts is how many times a notifier is tried (default 4).
	Attempts int
	// Backoff is the wait before the first retry, doubled after each and
	// capped at 30s (default 2s).
	Backoff time.Duration
	// AttemptTimeout bounds one attempt (default 30s). Notifiers have their
	// own timeouts too; this one also covers SMTP dialogues.
	AttemptTimeout time.Duration
}

// Dispatcher routes events to the configured notifiers. It is safe for
// concurrent use.
type Dispatcher struct {
	cfg       *config.Config
	notifiers map[string]Notifier
	names     []string // delivery order: the config's
	opts      Options
	log       *slog.Logger
	redact    *Redactor
}

// NewDispatcher returns a dispatcher for cfg's notifiers, which must all be
// in notifiers (as made by [Build]).
func NewDispatcher(cfg *config.Config, notifiers map[string]Notifier, opts Options) (*Dispatcher, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 4
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 2 * time.Second
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 30 * time.Second
	}
	d := &Dispatcher{cfg: cfg, notifiers: notifiers, opts: opts, log: opts.Logger, redact: NewRedactor(cfg)}
	for _, name := range cfg.NotifierNames {
		if notifiers[name] == nil {
			return nil, fmt.Errorf("notifier %s is configured but was not constructed", name)
		}
		d.names = append(d.names, name)
	}
	return d, nil
}

// RunStarted tells the notifiers that follow runs ([RunFollower]) that a run
// of kind started for source. It waits for them and never fails.
func (d *Dispatcher) RunStarted(ctx context.Context, kind report.Kind, source string) {
	ev := Event{Kind: RunStarted, Source: source, RunKind: kind, Host: d.opts.Host, Started: d.opts.Now()}
	d.deliver(ctx, ev, d.Targets(ev))
}

// RunFinished sends one event per source in run (see the package doc for
// how the kind is chosen). It waits for the deliveries, retrying failing
// notifiers, and never fails: problems are logged.
func (d *Dispatcher) RunFinished(ctx context.Context, run *report.Run) {
	if run == nil {
		return
	}
	var wg sync.WaitGroup
	for _, ev := range Events(run, d.opts.Host) {
		wg.Go(func() { d.deliver(ctx, ev, d.Targets(ev)) })
	}
	wg.Wait()
}

// Overdue tells the notifiers of source that its newest good backup (zero
// time: none) is older than rpo. Deciding when to call it, once per overdue
// period, is the caller's job.
func (d *Dispatcher) Overdue(ctx context.Context, source string, newest time.Time, rpo time.Duration) {
	ev := Event{Kind: Overdue, Source: source, Host: d.opts.Host, Finished: d.opts.Now(), Newest: newest, RPO: rpo}
	d.deliver(ctx, ev, d.Targets(ev))
}

// Summary sends the daily summary to the notifiers of `summary.to:` and
// those whose `on:` includes summary. Unlike the run events, its error is
// returned (joined per notifier), for `lifeboat report --send`; it is also
// an error when nobody receives summaries.
func (d *Dispatcher) Summary(ctx context.Context, s *summary.Summary) error {
	ev := Event{Kind: Summary, Host: s.Host, Started: s.From, Finished: s.Until, Summary: s}
	targets := d.Targets(ev)
	if len(targets) == 0 {
		return errors.New("no notifier receives the summary: list notifiers under summary.to, or add summary to a notifier's on:")
	}
	return d.deliver(ctx, ev, targets)
}

// Notify delivers any event to the notifiers routing selects for it.
func (d *Dispatcher) Notify(ctx context.Context, ev Event) error {
	return d.deliver(ctx, ev, d.Targets(ev))
}

// Targets returns the names of the notifiers ev goes to, in config order.
func (d *Dispatcher) Targets(ev Event) []string {
	var out []string
	if ev.Kind == Summary {
		var to []string
		if d.cfg.Summary != nil {
			to = d.cfg.Summary.To
		}
		for _, name := range d.names {
			if slices.Contains(to, name) || slices.Contains(d.cfg.Notifiers[name].On, "summary") {
				out = append(out, name)
			}
		}
		return out
	}
	var sourceList []string
	if src := d.cfg.Sources[ev.Source]; src != nil {
		sourceList = src.Notify
	}
	for _, name := range d.names {
		if len(sourceList) > 0 && !slices.Contains(sourceList, name) {
			continue
		}
		on := d.cfg.Notifiers[name].On
		rf, follows := d.notifiers[name].(RunFollower)
		follows = follows && rf.FollowsRuns()
		if len(on) == 0 {
			on = defaultOn
			if follows {
				on = followerOn
			}
		}
		wanted := ev.Kind.events()
		if ev.Kind == RunStarted {
			if !follows {
				continue
			}
			wanted = []string{"success", "failure"}
		}
		for _, w := range wanted {
			if slices.Contains(on, w) {
				out = append(out, name)
				break
			}
		}
	}
	return out
}

// deliver sends ev to each target concurrently, with retries, and returns
// the joined final errors (already logged).
func (d *Dispatcher) deliver(ctx context.Context, ev Event, targets []string) error {
	if len(targets) == 0 {
		return nil
	}
	ev = d.redact.Event(ev)
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, name := range targets {
		wg.Go(func() { errs[i] = d.send(ctx, name, ev) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// send tries one notifier until it succeeds, fails permanently, runs out of
// attempts, or ctx ends. Each attempt runs on a context detached from ctx
// (bounded by AttemptTimeout): the notice that a run was cancelled must
// still go out while the daemon shuts down. Only retries stop with ctx.
func (d *Dispatcher) send(ctx context.Context, name string, ev Event) error {
	log := d.log.With("notifier", name, "event", ev.Kind.String(), "source", ev.Source)
	if ev.RunID != "" {
		log = log.With("run_id", ev.RunID)
	}
	wait := d.opts.Backoff
	var err error
	attempt := 1
	for ; ; attempt++ {
		err = d.attempt(ctx, name, ev)
		if err == nil {
			if attempt > 1 {
				log.Info("notification delivered after retry", "attempt", attempt)
			}
			return nil
		}
		permanent := IsPermanent(err)
		err = errors.New(d.redact.String(err.Error()))
		if permanent {
			log.Error("notification rejected, not retrying", "attempt", attempt, "error", err)
			return fmt.Errorf("notifier %s: %w", name, err)
		}
		if attempt >= d.opts.Attempts || ctx.Err() != nil {
			break
		}
		log.Warn("notification failed, retrying", "attempt", attempt, "retry_in", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			log.Error("notification given up: cancelled", "attempt", attempt, "error", err)
			return fmt.Errorf("notifier %s: %w", name, err)
		case <-t.C:
		}
		wait = min(wait*2, 30*time.Second)
	}
	log.Error("notification given up", "attempts", attempt, "error", err)
	return fmt.Errorf("notifier %s: %w", name, err)
}

func (d *Dispatcher) attempt(ctx context.Context, name string, ev Event) (err error) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.opts.AttemptTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			err = Permanent(fmt.Errorf("notifier panicked: %v", p))
		}
	}()
	return d.notifiers[name].Notify(actx, ev)
}

// Events turns a run report into one event per source, in the order the
// sources appear in the report. host is used when the report has none.
func Events(run *report.Run, host string) []Event {
	if run.Host != "" {
		host = run.Host
	}
	var order []string
	items := map[string][]report.Item{}
	for _, it := range run.Items {
		if _, ok := items[it.Source]; !ok {
			order = append(order, it.Source)
		}
		items[it.Source] = append(items[it.Source], it)
	}
	if len(order) == 0 {
		order = []string{""}
	}
	out := make([]Event, 0, len(order))
	for _, src := range order {
		sub := *run
		sub.Items = items[src]
		if len(sub.Items) > 0 {
			sub.Summarize()
		}
		ev := Event{
			Kind: kindOf(run.Kind, sub.Status), Source: src, RunKind: run.Kind, Host: host, RunID: run.ID,
			Started: run.Started, Finished: run.Finished, Report: &sub,
		}
		if len(sub.Items) > 0 {
			ev.Started, ev.Finished = sub.Items[0].Started, sub.Items[0].Finished
		}
		var locs, errs []string
		for _, it := range sub.Items {
			if it.Started.Before(ev.Started) && !it.Started.IsZero() {
				ev.Started = it.Started
			}
			if it.Finished.After(ev.Finished) {
				ev.Finished = it.Finished
			}
			ev.Bytes += it.StoredSize
			for _, st := range it.Storages {
				if st.OK && st.Key != "" {
					locs = append(locs, st.Storage+":"+st.Key)
				}
			}
			if e := itemError(it); e != "" {
				if it.Part != "" {
					e = it.Part + ": " + e
				}
				errs = append(errs, e)
			}
		}
		if len(sub.Items) == 0 && sub.Status != report.OK && len(run.Warnings) > 0 {
			errs = append(errs, run.Warnings...)
		}
		ev.Location = strings.Join(locs, ", ")
		if len(errs) > 0 && ev.Kind != RunSucceeded && ev.Kind != DrillSucceeded {
			ev.Err = &hintError{msg: strings.Join(errs, "; ")}
		}
		out = append(out, ev)
	}
	return out
}

// itemError says what went wrong with one item, from its error, its
// failed storages, or its failed checks.
func itemError(it report.Item) string {
	if it.Error != "" {
		return it.Error
	}
	var parts []string
	for _, st := range it.Storages {
		if !st.OK {
			msg := st.Error
			if msg == "" {
				msg = "failed"
			}
			parts = append(parts, "storage "+st.Storage+": "+msg)
		}
	}
	for _, c := range it.Checks {
		if !c.OK {
			parts = append(parts, checkText(c))
		}
	}
	return strings.Join(parts, "; ")
}

func checkText(c catalog.Check) string {
	if c.Detail == "" {
		return "check " + c.Name + " failed"
	}
	return "check " + c.Name + ": " + c.Detail
}

func kindOf(k report.Kind, st report.Status) Kind {
	if k == report.Drill {
		if st == report.OK || st == report.Skipped {
			return DrillSucceeded
		}
		return DrillFailed
	}
	switch st {
	case report.Failed:
		return RunFailed
	case report.Partial:
		return RunPartial
	case report.Suspect:
		return RunSuspect
	}
	return RunSucceeded
}
