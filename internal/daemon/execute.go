package daemon

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/lock"
	"github.com/lifeboat-backup/lifeboat/internal/report"
)

// result is what a run goroutine hands back to the loop.
type result struct {
	t        *task
	slot     time.Time
	extra    bool
	started  time.Time
	finished time.Time
	// skipped says why no run was made (lock held elsewhere, already
	// backed up); run is nil then.
	skipped string
	run     *report.Run
	// cancelled: the daemon cancelled the run (shutdown); its slot stays
	// open so that the next start catches it up.
	cancelled bool
	// madeUp: the daemon wrote run itself (the runner did not return one).
	madeUp bool
}

// startLocked starts a run of t in its own goroutine.
func (d *Daemon) startLocked(ctx context.Context, t *task) {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	t.running = true
	d.running[t] = &runHandle{cancel: cancel}
	d.busy[t.key.Source] = true
	slot, extra, svc, ttl := t.runSlot, t.extra, d.svc, d.set.lockTTL
	started := d.opts.Clock.Now()
	st := d.st.Tasks[t.key.String()]
	st.LastStarted = started
	d.st.Tasks[t.key.String()] = st
	d.dirty = true
	go func() {
		defer cancel()
		res := d.execute(runCtx, t, svc, ttl, slot, extra, started)
		res.cancelled = runCtx.Err() != nil
		if res.run != nil && svc.Notifier != nil && (res.madeUp || !d.runnerNotifies(t.key.Kind)) {
			d.goBG(func(ctx context.Context) { svc.Notifier.RunFinished(ctx, res.run) })
		}
		select {
		case d.donec <- res:
		case <-d.stopped: // gave up waiting for this run at shutdown
		}
	}()
}

// execute makes one run: lock, checks, the runner call (panics recovered),
// unlock.
func (d *Daemon) execute(ctx context.Context, t *task, svc Services, ttl time.Duration, slot time.Time, extra bool, started time.Time) result {
	kind, source := t.key.Kind, t.key.Source
	res := result{t: t, slot: slot, extra: extra, started: started}
	fail := func(msg string) result {
		res.finished = d.opts.Clock.Now()
		res.run = errorRun(kind, d.opts.Host, source, started, res.finished, msg, "")
		res.madeUp = true
		return res
	}
	held := ctx
	if svc.LockStorage != nil {
		st, err := svc.LockStorage(source)
		if err != nil {
			return fail(fmt.Sprintf("cannot lock %s: %v", source, err))
		}
		lk, err := lock.Acquire(ctx, st, source, lock.Options{Clock: d.opts.Clock, TTL: ttl,
			Host: d.opts.Host, PID: d.opts.PID, Purpose: string(kind), Logger: d.log, Dead: lock.DeadOnHost(d.opts.Host)})
		var he *lock.HeldError
		switch {
		case errors.As(err, &he):
			res.finished = d.opts.Clock.Now()
			res.skipped = fmt.Sprintf("locked by %s since %s", he.Owner, he.Owner.Acquired.UTC().Format(time.RFC3339))
			return res
		case err != nil:
			return fail(fmt.Sprintf("cannot lock %s in storage %s: %v", source, st.Name(), err))
		}
		var stop func()
		held, stop = lk.Keep(ctx)
		defer func() {
			stop()
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := lk.Release(rctx); err != nil {
				d.log.Warn("cannot release lock; it expires on its own", "source", source, "err", err)
			}
		}()
	}
	if kind == report.Backup && !res.extra {
		newest, ok, err := svc.Runner.Newest(held, source)
		if err == nil && ok && !newest.Before(slot) {
			res.finished = d.opts.Clock.Now()
			res.skipped = fmt.Sprintf("its newest backup started at %s, after the slot", newest.UTC().Format(time.RFC3339))
			return res
		}
	}
	if svc.Notifier != nil && !d.runnerNotifies(kind) {
		svc.Notifier.RunStarted(held, kind, source)
	}
	d.log.Info("run started", "job", string(kind), "source", source, "slot", slot.Format(time.RFC3339))
	res.run, res.madeUp = d.call(held, svc.Runner, kind, source, started)
	res.finished = d.opts.Clock.Now()
	if cause := context.Cause(held); errors.Is(cause, lock.ErrLost) {
		res.run.Warnings = append(res.run.Warnings, "the run was stopped: "+cause.Error())
	}
	return res
}

// call invokes the runner, turning a panic or a nil report into a failed
// run (madeUp).
func (d *Daemon) call(ctx context.Context, r Runner, kind report.Kind, source string, started time.Time) (run *report.Run, madeUp bool) {
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("run panicked", "job", string(kind), "source", source, "panic", fmt.Sprint(p))
			run = errorRun(kind, d.opts.Host, source, started, d.opts.Clock.Now(),
				fmt.Sprintf("internal error: %v (a bug in lifeboat: please report it with the stack trace)", p), string(debug.Stack()))
			madeUp = true
		}
	}()
	switch kind {
	case report.Backup:
		run = r.Backup(ctx, source)
	case report.Drill:
		run = r.Drill(ctx, source)
	case report.Prune:
		run = r.Prune(ctx, source)
	default:
		return errorRun(kind, d.opts.Host, source, started, d.opts.Clock.Now(), "unknown kind of run "+string(kind), ""), true
	}
	if run == nil {
		return errorRun(kind, d.opts.Host, source, started, d.opts.Clock.Now(), "the runner returned no report", ""), true
	}
	return run, false
}

func (d *Daemon) runnerNotifies(kind report.Kind) bool {
	return d.opts.RunnerNotifies != nil && d.opts.RunnerNotifies(kind)
}

// finish records a run's end: frees its source, saves the state, feeds the
// metrics, and queues the catch-up pass.
func (d *Daemon) finish(res result) {
	d.mu.Lock()
	t := res.t
	delete(d.running, t)
	delete(d.busy, t.key.Source)
	t.running = false
	if cur := d.tasks[t.key]; cur != nil && cur != t {
		cur.running = false // t was replaced by a reload while it ran
	}
	key := t.key.String()
	ts := d.st.Tasks[key]
	if res.slot.After(ts.Slot) && !res.cancelled {
		ts.Slot = res.slot
	}
	ts.LastFinished = res.finished
	if res.run != nil {
		ts.LastStatus = res.run.Status
	} else {
		ts.LastStatus = report.Skipped
	}
	d.st.Tasks[key] = ts
	if res.run == nil {
		d.log.Info("run skipped", "job", string(t.key.Kind), "source", t.key.Source, "why", res.skipped)
	} else {
		lvl := "run finished"
		attrs := []any{"job", string(t.key.Kind), "source", t.key.Source, "run_id", res.run.ID,
			"status", string(res.run.Status), "duration", res.finished.Sub(res.started).Round(time.Millisecond).String()}
		if res.run.Status == report.Failed {
			d.log.Error(lvl, attrs...)
		} else {
			d.log.Info(lvl, attrs...)
		}
		if d.opts.Metrics != nil {
			d.opts.Metrics.Observe(res.run)
		}
		committed := res.run.Status == report.OK || res.run.Status == report.Suspect || res.run.Status == report.Partial
		if t.key.Kind == report.Backup && t.catchUpPass && !res.extra && committed && !d.shuttingOff &&
			res.finished.Sub(res.started) >= d.opts.CatchUpPassAfter && d.tasks[t.key] == t && !t.queued {
			d.log.Info("long backup: running once more to catch what changed meanwhile (catch_up_pass)",
				"source", t.key.Source, "duration", res.finished.Sub(res.started).String())
			t.queued, t.runSlot, t.extra = true, res.finished, true
			d.queue = append([]*task{t}, d.queue...)
		}
	}
	d.mu.Unlock()
	d.saveState()
}

// startSummaryLocked sends the summary in the background.
func (d *Daemon) startSummaryLocked(t *task) {
	key := t.key.String()
	ts := d.st.Tasks[key]
	if t.runSlot.After(ts.Slot) {
		ts.Slot = t.runSlot
	}
	ts.LastStarted = d.opts.Clock.Now()
	ts.LastStatus = report.OK
	d.st.Tasks[key] = ts
	d.dirty = true
	if n := d.svc.Notifier; n != nil {
		d.goBG(n.Summary)
	}
}

// goBG runs fn in the background with the daemon's background context
// (notifications, checks), unless shutdown has stopped taking new work.
func (d *Daemon) goBG(fn func(ctx context.Context)) bool {
	d.bgMu.Lock()
	defer d.bgMu.Unlock()
	if d.bgClosed {
		return false
	}
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		fn(d.bgCtx)
	}()
	return true
}
