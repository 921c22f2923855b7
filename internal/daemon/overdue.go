package daemon

import (
	"context"
	"maps"
	"time"
)

// overdueResult is one source's answer to the overdue check.
type overdueResult struct {
	source string
	rpo    time.Duration
	newest time.Time
	ok     bool // newest is set: the source has a good backup
	err    error
}

// startCheckLocked asks the runner, in the background, for the newest good
// backup of every source that has an rpo.
func (d *Daemon) startCheckLocked() {
	runner, rpos, names := d.svc.Runner, maps.Clone(d.set.rpo), d.set.sources
	d.checking = d.goBG(func(ctx context.Context) {
		var rs []overdueResult
		for _, name := range names {
			rpo, ok := rpos[name]
			if !ok {
				continue
			}
			t, has, err := runner.Newest(ctx, name)
			rs = append(rs, overdueResult{source: name, rpo: rpo, newest: t, ok: has, err: err})
		}
		d.checkc <- rs // buffered; one check at a time
	})
}

// overdueResults decides, from a check's answers, which sources became
// overdue, tells the notifier once per overdue period, and plans the next
// check.
func (d *Daemon) overdueResults(rs []overdueResult) {
	now := d.opts.Clock.Now()
	d.mu.Lock()
	d.checking = false
	d.checks++
	d.nextCheck = now.Add(d.opts.OverdueEvery)
	dirty := false
	for _, r := range rs {
		if r.err != nil {
			d.log.Warn("cannot tell whether the source is overdue", "source", r.source, "err", r.err)
			continue
		}
		var newest time.Time
		ref := d.started // no backup at all: overdue once the daemon has waited an rpo
		if r.ok {
			newest, ref = r.newest, r.newest
		}
		overdue := now.Sub(ref) > r.rpo
		if d.opts.Metrics != nil {
			d.opts.Metrics.SetOverdue(r.source, overdue, newest)
		}
		notified, was := d.st.Overdue[r.source]
		if !overdue {
			if was {
				delete(d.st.Overdue, r.source)
				dirty = true
				d.log.Info("source is no longer overdue", "source", r.source)
			}
			continue
		}
		if was && notified.Equal(newest) {
			continue // already told for this overdue period
		}
		d.st.Overdue[r.source] = newest
		dirty = true
		d.log.Warn("source is overdue: its newest good backup is older than its rpo", "source", r.source,
			"rpo", r.rpo.String(), "newest", fmtTime(newest))
		if n := d.svc.Notifier; n != nil {
			src, rpo := r.source, r.rpo
			d.goBG(func(ctx context.Context) { n.Overdue(ctx, src, newest, rpo) })
		}
	}
	d.mu.Unlock()
	if dirty {
		d.saveState()
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return t.UTC().Format(time.RFC3339)
}
