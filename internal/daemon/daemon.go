package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/metrics"
	"github.com/lifeboat-backup/lifeboat/internal/report"
	"github.com/lifeboat-backup/lifeboat/internal/schedule"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

// Runner does the work. Each method runs one source to completion and
// returns its report (never nil, failures included); it must stop promptly
// and commit nothing when ctx is cancelled. The daemon holds the source's
// lock around each call, so the runner must not take it again.
type Runner interface {
	Backup(ctx context.Context, source string) *report.Run
	Drill(ctx context.Context, source string) *report.Run
	Prune(ctx context.Context, source string) *report.Run
	// Newest returns when the newest good backup of source started; ok is
	// false when there is none.
	Newest(ctx context.Context, source string) (t time.Time, ok bool, err error)
}

// Notifier tells people. Its methods must not fail the run: they log and
// retry on their own, and return when done or when ctx ends.
type Notifier interface {
	RunStarted(ctx context.Context, kind report.Kind, source string)
	RunFinished(ctx context.Context, run *report.Run)
	// Overdue says source's newest good backup (zero time: none) is older
	// than its rpo.
	Overdue(ctx context.Context, source string, newest time.Time, rpo time.Duration)
	Summary(ctx context.Context)
}

// Services are the parts built from a config; [Daemon.Reload] replaces them
// together with the config.
type Services struct {
	Runner   Runner
	Notifier Notifier // nil: nobody is told
	// LockStorage returns the storage holding source's lock (its first
	// storage). Nil disables locking across processes; tests only.
	LockStorage func(source string) (storage.Storage, error)
}

// Clock is the daemon's time source (also passed to package lock).
// [SystemClock] is the real one.
type Clock interface {
	Now() time.Time
	// At returns a channel that receives once the clock reaches t (at once
	// if it has).
	At(t time.Time) <-chan time.Time
}

// SystemClock reads the system clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time                  { return time.Now() }
func (SystemClock) At(t time.Time) <-chan time.Time { return time.After(time.Until(t)) }

// Options are the daemon's fixed dependencies and tunables.
type Options struct {
	Clock   Clock        // required
	Logger  *slog.Logger // nil discards
	Metrics *metrics.Metrics
	// Rand draws jitter; nil seeds one at random.
	Rand *rand.Rand
	// Host and PID identify this daemon in locks.
	Host string
	PID  int
	// Local is the zone of schedules that name none (the host's zone).
	Local *time.Location
	// StateDir is used when the config has no daemon.state_dir.
	StateDir string
	// OverdueEvery is how often the overdue check runs (default 5m).
	OverdueEvery time.Duration
	// CatchUpPassAfter is how long a backup must take for catch_up_pass to
	// run it once more (default 5m).
	CatchUpPassAfter time.Duration
	// CancelWait bounds the wait for cancelled runs (and for notifications
	// still being sent) at shutdown (default 30s).
	CancelWait time.Duration
	// RunnerNotifies reports whether the runner itself tells the notifier
	// when runs of kind start and finish. The daemon then does so only for
	// the runs it had to make up (a panic, a lock it could not take).
	RunnerNotifies func(kind report.Kind) bool
}

// Daemon runs scheduled tasks. Create it with [New] and call [Daemon.Run]
// once.
type Daemon struct {
	opts Options
	log  *slog.Logger

	reloadc chan reloadReq
	donec   chan result
	checkc  chan []overdueResult
	stopped chan struct{}

	randMu sync.Mutex

	// Below: owned by the Run loop; mu guards them for Status.
	mu          sync.Mutex
	cfg         *config.Config
	set         *settings
	svc         Services
	st          *state
	stateDir    string
	tasks       map[taskKey]*task
	queue       []*task
	running     map[*task]*runHandle
	busy        map[string]bool // source -> a run is in progress
	started     time.Time
	checking    bool
	checks      int // overdue checks completed
	nextCheck   time.Time
	shuttingOff bool
	dirty       bool // st changed since it was saved

	bgMu     sync.Mutex
	bgClosed bool
	bg       sync.WaitGroup // notifications and checks in flight
	bgCtx    context.Context
	stopBG   context.CancelFunc
}

// task is a scheduled action and its runtime state.
type task struct {
	taskSpec
	slot   time.Time // next slot
	next   time.Time // when that slot fires: slot + jitter
	queued bool
	// for the queued run:
	runSlot time.Time
	extra   bool // the catch_up_pass run
	running bool
}

type runHandle struct {
	cancel context.CancelFunc
}

type reloadReq struct {
	cfg  *config.Config
	set  *settings
	svc  Services
	done chan struct{}
}

// New checks cfg and returns a daemon for it. It reads nothing yet; Run
// loads the state.
func New(cfg *config.Config, svc Services, opts Options) (*Daemon, error) {
	if opts.Clock == nil {
		return nil, errors.New("daemon: no clock")
	}
	if svc.Runner == nil {
		return nil, errors.New("daemon: no runner")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Rand == nil {
		opts.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if opts.OverdueEvery <= 0 {
		opts.OverdueEvery = 5 * time.Minute
	}
	if opts.CatchUpPassAfter <= 0 {
		opts.CatchUpPassAfter = 5 * time.Minute
	}
	if opts.CancelWait <= 0 {
		opts.CancelWait = 30 * time.Second
	}
	set, ps := compile(cfg, opts.Local)
	if len(ps) > 0 {
		return nil, ps
	}
	dir := set.stateDir
	if dir == "" {
		dir = opts.StateDir
	}
	if dir == "" {
		return nil, errors.New("daemon: no state folder: set daemon.state_dir in the config")
	}
	return &Daemon{
		opts: opts, log: opts.Logger,
		reloadc: make(chan reloadReq), donec: make(chan result), checkc: make(chan []overdueResult, 1),
		stopped: make(chan struct{}),
		cfg:     cfg, set: set, svc: svc, stateDir: dir,
		tasks: map[taskKey]*task{}, running: map[*task]*runHandle{}, busy: map[string]bool{},
	}, nil
}

// Reload replaces the config and services. It fails, keeping the current
// ones, when cfg's schedule-related keys are invalid (see [Check]). The
// state folder does not change until restart.
func (d *Daemon) Reload(cfg *config.Config, svc Services) error {
	if svc.Runner == nil {
		return errors.New("reload: no runner")
	}
	set, ps := compile(cfg, d.opts.Local)
	if len(ps) > 0 {
		return ps
	}
	req := reloadReq{cfg: cfg, set: set, svc: svc, done: make(chan struct{})}
	select {
	case d.reloadc <- req:
		<-req.done
		return nil
	case <-d.stopped:
		return errors.New("reload: the daemon has stopped")
	}
}

// Run runs the schedule until ctx ends, then shuts down (see the package
// documentation). It returns an error only if it could not start.
func (d *Daemon) Run(ctx context.Context) error {
	defer close(d.stopped)
	st, err := loadState(d.stateDir)
	if err != nil {
		return err
	}
	d.bgCtx, d.stopBG = context.WithCancel(context.WithoutCancel(ctx))
	defer d.stopBG()

	now := d.opts.Clock.Now()
	d.mu.Lock()
	d.st, d.started, d.nextCheck = st, now, now
	d.applyLocked(d.cfg, d.set, d.svc, now)
	d.mu.Unlock()
	d.saveState()
	d.log.Info("daemon started", "tasks", len(d.tasks), "max_parallel", d.set.maxParallel, "state", d.stateDir)

	for {
		d.mu.Lock()
		d.fireLocked(ctx)
		wake := d.wakeLocked()
		dirty := d.dirty
		d.dirty = false
		d.mu.Unlock()
		if dirty {
			d.saveState()
		}

		var timer <-chan time.Time
		if !wake.IsZero() {
			timer = d.opts.Clock.At(wake)
		}
		select {
		case <-ctx.Done():
			d.shutdown()
			return nil
		case <-timer:
		case req := <-d.reloadc:
			d.mu.Lock()
			d.applyLocked(req.cfg, req.set, req.svc, d.opts.Clock.Now())
			d.mu.Unlock()
			d.saveState()
			d.log.Info("configuration reloaded", "tasks", len(d.tasks))
			close(req.done)
		case res := <-d.donec:
			d.finish(res)
		case rs := <-d.checkc:
			d.overdueResults(rs)
		}
	}
}

// applyLocked installs a config: keeps the runtime state of unchanged
// tasks, plans new ones (with catch-up), and drops removed ones (a running
// one finishes).
func (d *Daemon) applyLocked(cfg *config.Config, set *settings, svc Services, now time.Time) {
	old := d.tasks
	d.cfg, d.set, d.svc = cfg, set, svc
	d.tasks = map[taskKey]*task{}
	var queue []*task
	for _, spec := range set.tasks {
		if t, ok := old[spec.key]; ok && sameSpec(t.taskSpec, spec) {
			d.tasks[spec.key] = t
			continue
		}
		t := &task{taskSpec: spec}
		if o, ok := old[spec.key]; ok && o.running {
			t.running = true // the old one is still running; its finish frees this key
		}
		d.tasks[spec.key] = t
		ts, known := d.st.Tasks[spec.key.String()]
		prev := spec.sched.Prev(now)
		switch {
		case !known:
			d.st.Tasks[spec.key.String()] = taskState{Slot: now}
		case !prev.IsZero() && prev.After(ts.Slot):
			d.log.Info("catching up a run missed while the daemon was not running", "task", spec.key.String(),
				"missed", prev.Format(time.RFC3339), "last", ts.Slot.Format(time.RFC3339))
			if !t.running {
				t.queued, t.runSlot = true, prev
				queue = append(queue, t)
			}
		}
		d.plan(t, now)
	}
	for _, t := range d.queue {
		if d.tasks[t.key] == t {
			queue = append(queue, t)
		}
	}
	d.queue = queue
	if d.opts.Metrics != nil {
		for k := range old {
			if _, ok := d.tasks[k]; !ok {
				d.opts.Metrics.SetNextRun(k.Kind, k.Source, time.Time{})
			}
		}
		for _, name := range d.removedSources(old) {
			d.opts.Metrics.Forget(name)
		}
	}
}

func (d *Daemon) removedSources(old map[taskKey]*task) []string {
	var out []string
	for k := range old {
		if k.Source != "" && !slices.Contains(d.set.sources, k.Source) && !slices.Contains(out, k.Source) {
			out = append(out, k.Source)
		}
	}
	return out
}

func sameSpec(a, b taskSpec) bool {
	return a.sched.String() == b.sched.String() && a.sched.Location().String() == b.sched.Location().String() &&
		a.jitter == b.jitter && a.catchUpPass == b.catchUpPass
}

// plan sets t's next slot after now, with a fresh jitter.
func (d *Daemon) plan(t *task, now time.Time) {
	t.slot = t.sched.Next(now)
	t.next = t.slot
	if !t.slot.IsZero() {
		d.randMu.Lock()
		t.next = t.slot.Add(schedule.Jitter(t.jitter, d.opts.Rand))
		d.randMu.Unlock()
	}
	if d.opts.Metrics != nil {
		d.opts.Metrics.SetNextRun(t.key.Kind, t.key.Source, t.next)
	}
}

// fireLocked queues tasks whose time has come and starts what the limits
// allow.
func (d *Daemon) fireLocked(ctx context.Context) {
	now := d.opts.Clock.Now()
	for _, t := range d.sortedTasks() {
		if t.next.IsZero() || now.Before(t.next) {
			continue
		}
		slot := t.slot
		if t.queued || t.running {
			d.log.Info("skipping slot: the previous run is still in progress", "task", t.key.String(), "slot", slot.Format(time.RFC3339))
		} else {
			t.queued, t.runSlot, t.extra = true, slot, false
			d.queue = append(d.queue, t)
		}
		d.plan(t, now)
	}
	if !d.nextCheck.After(now) && !d.checking && len(d.set.rpo) > 0 {
		d.startCheckLocked()
	}
	d.dispatchLocked(ctx)
}

// dispatchLocked starts queued runs, oldest first, within max_parallel and
// one run per source.
func (d *Daemon) dispatchLocked(ctx context.Context) {
	var keep []*task
	for _, t := range d.queue {
		switch {
		case t.key.Kind == KindSummary:
			t.queued = false
			d.startSummaryLocked(t)
		case d.busy[t.key.Source] || len(d.running) >= d.set.maxParallel:
			keep = append(keep, t)
		default:
			t.queued = false
			d.startLocked(ctx, t)
		}
	}
	d.queue = keep
}

// wakeLocked is when the loop must look again: the earliest planned run or
// overdue check. Zero means never (until a run ends or a reload).
func (d *Daemon) wakeLocked() time.Time {
	var w time.Time
	for _, t := range d.tasks {
		if !t.next.IsZero() && (w.IsZero() || t.next.Before(w)) {
			w = t.next
		}
	}
	if len(d.set.rpo) > 0 && !d.checking && (w.IsZero() || d.nextCheck.Before(w)) {
		w = d.nextCheck
	}
	return w
}

func (d *Daemon) sortedTasks() []*task {
	ts := make([]*task, 0, len(d.tasks))
	for _, t := range d.tasks {
		ts = append(ts, t)
	}
	slices.SortFunc(ts, func(a, b *task) int {
		if c := a.next.Compare(b.next); c != 0 {
			return c
		}
		return compareKeys(a.key, b.key)
	})
	return ts
}

func compareKeys(a, b taskKey) int {
	switch {
	case a.String() < b.String():
		return -1
	case a.String() > b.String():
		return 1
	}
	return 0
}

func (d *Daemon) saveState() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.st.save(d.stateDir); err != nil {
		d.log.Warn("cannot save daemon state; runs missed during a restart may not be caught up", "err", err)
	}
}

// TaskStatus describes one scheduled task, for `lifeboat daemon` status
// output and the dashboard.
type TaskStatus struct {
	Kind     report.Kind
	Source   string // empty for the summary
	Schedule string
	// Next is when the next slot fires (jitter included).
	Next    time.Time
	Queued  bool
	Running bool
	// LastSlot is the latest slot accounted for; LastStarted, LastFinished
	// and LastStatus describe the last run this daemon made.
	LastSlot     time.Time
	LastStarted  time.Time
	LastFinished time.Time
	LastStatus   report.Status
}

// Status returns every task's state, ordered by kind and source. It is safe
// to call while Run runs.
func (d *Daemon) Status() []TaskStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []TaskStatus
	for _, t := range d.tasks {
		s := TaskStatus{Kind: t.key.Kind, Source: t.key.Source, Schedule: t.sched.String(), Next: t.next,
			Queued: t.queued, Running: t.running}
		if d.st != nil {
			ts := d.st.Tasks[t.key.String()]
			s.LastSlot, s.LastStarted, s.LastFinished, s.LastStatus = ts.Slot, ts.LastStarted, ts.LastFinished, ts.LastStatus
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b TaskStatus) int {
		return compareKeys(taskKey{a.Kind, a.Source}, taskKey{b.Kind, b.Source})
	})
	return out
}

// shutdown waits for runs in progress: shutdown_grace to finish, then they
// are cancelled and get CancelWait to stop.
func (d *Daemon) shutdown() {
	d.mu.Lock()
	d.shuttingOff = true
	d.queue = nil
	n := len(d.running)
	grace := d.set.grace
	d.mu.Unlock()
	if n > 0 {
		d.log.Info("shutting down: waiting for runs in progress", "runs", n, "grace", grace.String())
		if !d.waitRuns(grace) {
			d.mu.Lock()
			d.log.Warn("shutdown grace over: cancelling runs in progress; nothing half-written is committed", "runs", len(d.running))
			for _, h := range d.running {
				h.cancel()
			}
			d.mu.Unlock()
			if !d.waitRuns(d.opts.CancelWait) {
				d.log.Error("runs did not stop after cancellation; exiting anyway", "runs", len(d.running))
			}
		}
	}
	d.bgMu.Lock()
	d.bgClosed = true
	d.bgMu.Unlock()
	done := make(chan struct{})
	go func() { d.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-d.opts.Clock.At(d.opts.Clock.Now().Add(d.opts.CancelWait)):
		d.stopBG()
		<-done
	}
	d.log.Info("daemon stopped")
}

// waitRuns handles finishing runs until none is left (true) or timeout
// passes (false).
func (d *Daemon) waitRuns(timeout time.Duration) bool {
	deadline := d.opts.Clock.At(d.opts.Clock.Now().Add(timeout))
	for {
		d.mu.Lock()
		n := len(d.running)
		d.mu.Unlock()
		if n == 0 {
			return true
		}
		select {
		case res := <-d.donec:
			d.finish(res)
		case rs := <-d.checkc:
			d.overdueResults(rs)
		case <-deadline:
			return false
		}
	}
}

// errorRun is the report of a run the daemon could not even start.
func errorRun(kind report.Kind, host, source string, started, finished time.Time, msg, tail string) *report.Run {
	r := &report.Run{ID: fmt.Sprintf("daemon-%d", started.UnixNano()), Kind: kind, Host: host, Started: started, Finished: finished,
		Items: []report.Item{{Source: source, Status: report.Failed, Started: started, Finished: finished, Error: msg, StderrTail: tail}}}
	r.Summarize()
	return r
}
