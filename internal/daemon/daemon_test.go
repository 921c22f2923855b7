package daemon

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/lock"
	"github.com/lifeboat-backup/lifeboat/internal/metrics"
	"github.com/lifeboat-backup/lifeboat/internal/report"
	"github.com/lifeboat-backup/lifeboat/internal/storage/local"
)

// T is a Monday noon.
var T = time.Date(2027, 5, 10, 12, 0, 0, 0, time.UTC)

func day(d, h int) time.Time { return time.Date(2027, 5, d, h, 0, 0, 0, time.UTC) }

func lookup(d *Daemon, kind report.Kind, source string) (TaskStatus, bool) {
	for _, s := range d.Status() {
		if s.Kind == kind && s.Source == source {
			return s, true
		}
	}
	return TaskStatus{}, false
}

func idleAt(t *testing.T, d *Daemon, kind report.Kind, source string, next time.Time) {
	t.Helper()
	waitFor(t, string(kind)+"/"+source+" idle until "+next.Format(time.RFC3339), func() bool {
		s, ok := lookup(d, kind, source)
		return ok && !s.Queued && !s.Running && s.Next.Equal(next)
	})
}

func waitCalls(t *testing.T, r *fakeRunner, kind report.Kind, source string, n int) {
	t.Helper()
	waitFor(t, "runner calls", func() bool { return r.count(kind, source) >= n })
	if got := r.count(kind, source); got != n {
		t.Fatalf("%d %s runs of %s, want %d", got, kind, source, n)
	}
}

// TestCatchUpOnce: five daily slots were missed while the daemon was down;
// on start it runs once, not five times, and a restart does not run again.
func TestCatchUpOnce(t *testing.T) {
	e := newEnv(t, T)
	cfg := parseConfig(t, e.dir, "  db: {type: fake, storages: [shared], schedule: '0 3 * * *'}", "")
	st := newState()
	st.Tasks["backup/db"] = taskState{Slot: day(5, 3)}
	if err := st.save(filepath.Join(e.dir, "state")); err != nil {
		t.Fatal(err)
	}

	d := start(t, cfg, e.services(t), e.options(nil))
	idleAt(t, d.Daemon, report.Backup, "db", day(11, 3))
	waitCalls(t, e.runner, report.Backup, "db", 1)
	if s, _ := lookup(d.Daemon, report.Backup, "db"); !s.LastSlot.Equal(day(10, 3)) || s.LastStatus != report.OK {
		t.Fatalf("after catch-up: %+v", s)
	}
	if !strings.Contains(e.logs(), "catching up a run missed") {
		t.Fatalf("catch-up not logged:\n%s", e.logs())
	}
	d.stop(t)

	d = start(t, cfg, e.services(t), e.options(nil))
	idleAt(t, d.Daemon, report.Backup, "db", day(11, 3))
	if n := e.runner.count(report.Backup, "db"); n != 1 {
		t.Fatalf("restart ran the backup again: %d runs", n)
	}
	e.clk.Set(day(11, 3))
	idleAt(t, d.Daemon, report.Backup, "db", day(12, 3))
	waitCalls(t, e.runner, report.Backup, "db", 2)
}

// TestFirstStartAndDowntimeBeforeFirstSlot: a task the daemon has never seen
// waits for its slot; if the daemon is down across that first slot, the
// restart catches it up.
func TestFirstStartAndDowntimeBeforeFirstSlot(t *testing.T) {
	e := newEnv(t, T)
	cfg := parseConfig(t, e.dir, "  db: {type: fake, storages: [shared], schedule: '0 3 * * *'}", "")
	d := start(t, cfg, e.services(t), e.options(nil))
	idleAt(t, d.Daemon, report.Backup, "db", day(11, 3))
	d.stop(t)
	if n := e.runner.count(report.Backup, "db"); n != 0 {
		t.Fatalf("first start ran at once: %d", n)
	}
	e.clk.Set(day(11, 9)) // down across 03:00
	d = start(t, cfg, e.services(t), e.options(nil))
	idleAt(t, d.Daemon, report.Backup, "db", day(12, 3))
	waitCalls(t, e.runner, report.Backup, "db", 1)
}

// TestNoOverlap: an hourly backup that takes three hours is not started
// again meanwhile, and the slots it overran are not piled up.
func TestNoOverlap(t *testing.T) {
	e := newEnv(t, T)
	e.runner.setHold(true)
	cfg := parseConfig(t, e.dir, "  db: {type: fake, storages: [shared], schedule: every 1h}", "")
	d := start(t, cfg, e.services(t), e.options(nil))
	idleAt(t, d.Daemon, report.Backup, "db", T.Add(time.Hour))

	e.clk.Set(T.Add(time.Hour))
	waitFor(t, "backup running", func() bool { return e.runner.running("db") == 1 })
	for h := 2; h <= 3; h++ {
		e.clk.Set(T.Add(time.Duration(h) * time.Hour))
		waitFor(t, "slot skipped", func() bool {
			s, _ := lookup(d.Daemon, report.Backup, "db")
			return s.Next.Equal(T.Add(time.Duration(h+1)*time.Hour)) && s.Running && !s.Queued
		})
	}
	e.runner.release <- struct{}{}
	idleAt(t, d.Daemon, report.Backup, "db", T.Add(4*time.Hour))
	if n := e.runner.count(report.Backup, "db"); n != 1 {
		t.Fatalf("%d runs, want 1", n)
	}
	e.clk.Set(T.Add(4 * time.Hour))
	waitCalls(t, e.runner, report.Backup, "db", 2)
	e.runner.release <- struct{}{}
	idleAt(t, d.Daemon, report.Backup, "db", T.Add(5*time.Hour))
	if m := e.runner.maxActive["db"]; m != 1 {
		t.Fatalf("up to %d runs of db at once", m)
	}
	if !strings.Contains(e.logs(), "skipping slot") {
		t.Fatalf("skipped slots not logged:\n%s", e.logs())
	}
}

// TestMaxParallel: four runs come due at once with max_parallel 2; a source
// never runs twice at once, even for different kinds.
func TestMaxParallel(t *testing.T) {
	e := newEnv(t, T)
	e.runner.setHold(true)
	cfg := parseConfig(t, e.dir, `  a: {type: fake, storages: [shared], schedule: every 1h, drill: {schedule: every 1h}}
  b: {type: fake, storages: [shared], schedule: every 1h}
  c: {type: fake, storages: [shared], schedule: every 1h}`, "daemon: {state_dir: ./state, max_parallel: 2}")
	d := start(t, cfg, e.services(t), e.options(nil))
	idleAt(t, d.Daemon, report.Drill, "a", T.Add(time.Hour))
	e.clk.Set(T.Add(time.Hour))
	total := func() int { return len(e.runner.Calls()) }
	waitFor(t, "two runs", func() bool { return total() == 2 })
	for want := 3; want <= 4; want++ {
		e.runner.release <- struct{}{}
		waitFor(t, "next queued run", func() bool { return total() == want })
	}
	e.runner.release <- struct{}{}
	e.runner.release <- struct{}{}
	for _, k := range []taskKey{{report.Backup, "a"}, {report.Backup, "b"}, {report.Backup, "c"}, {report.Drill, "a"}} {
		idleAt(t, d.Daemon, k.Kind, k.Source, T.Add(2*time.Hour))
	}
	if e.runner.maxTotal != 2 || e.runner.maxActive["a"] != 1 || total() != 4 {
		t.Fatalf("max at once %d (want 2), of source a %d (want 1), runs %d (want 4)", e.runner.maxTotal, e.runner.maxActive["a"], total())
	}
}

// TestCatchUpPass: a long backup of a source with catch_up_pass runs once
// more at once; a short one does not; the extra run does not chain.
func TestCatchUpPass(t *testing.T) {
	e := newEnv(t, T)
	e.runner.do = func(ctx context.Context, kind report.Kind, source string) *report.Run {
		start := e.clk.Now()
		if source == "bucket" && e.runner.count(kind, source) == 1 {
			e.clk.Advance(6 * time.Hour) // the first pass is long
		}
		r := &report.Run{Kind: kind, Started: start, Finished: e.clk.Now(),
			Items: []report.Item{{Source: source, Status: report.OK, Started: start, Finished: e.clk.Now()}}}
		r.Summarize()
		return r
	}
	cfg := parseConfig(t, e.dir, `  bucket: {type: fake, storages: [shared], schedule: '0 0 * * *', catch_up_pass: true}
  small: {type: fake, storages: [shared], schedule: '0 0 * * *', catch_up_pass: true}`, "")
	d := start(t, cfg, e.services(t), e.options(nil))
	idleAt(t, d.Daemon, report.Backup, "bucket", day(11, 0))
	e.clk.Set(day(11, 0))
	waitCalls(t, e.runner, report.Backup, "small", 1)
	idleAt(t, d.Daemon, report.Backup, "bucket", day(12, 0))
	waitCalls(t, e.runner, report.Backup, "bucket", 2)
	idleAt(t, d.Daemon, report.Backup, "small", day(12, 0))
	if n := e.runner.count(report.Backup, "small"); n != 1 {
		t.Fatalf("short backup ran %d times", n)
	}
	var at []time.Time
	for _, c := range e.runner.Calls() {
		if c.source == "bucket" {
			at = append(at, c.at)
		}
	}
	if !at[0].Equal(day(11, 0)) || !at[1].Equal(day(11, 6)) {
		t.Fatalf("bucket ran at %v, want 00:00 and, right after the first pass, 06:00", at)
	}
}

// TestJitter: each run starts within [slot, slot+jitter), at different
// offsets.
func TestJitter(t *testing.T) {
	e := newEnv(t, T)
	cfg := parseConfig(t, e.dir, "  db: {type: fake, storages: [shared], schedule: every 1h, jitter: 20m}", "")
	d := start(t, cfg, e.services(t), e.options(nil))
	offsets := map[time.Duration]bool{}
	for h := 1; h <= 6; h++ {
		slot := T.Add(time.Duration(h) * time.Hour)
		var next time.Time
		waitFor(t, "planned", func() bool {
			s, ok := lookup(d.Daemon, report.Backup, "db")
			next = s.Next
			return ok && !s.Running && !s.Queued && !next.Before(slot) && next.Before(slot.Add(time.Hour))
		})
		if off := next.Sub(slot); off < 0 || off >= 20*time.Minute {
			t.Fatalf("slot %s planned at %s: jitter %s outside [0, 20m)", slot, next, off)
		}
		e.clk.Set(next.Add(-time.Second))
		if n := len(e.runner.Calls()); n != h-1 {
			t.Fatalf("ran before its jittered time")
		}
		e.clk.Set(next)
		waitCalls(t, e.runner, report.Backup, "db", h)
		at := e.runner.Calls()[h-1].at
		if !at.Equal(next) {
			t.Fatalf("ran at %s, planned %s", at, next)
		}
		offsets[at.Sub(slot)] = true
	}
	if len(offsets) < 3 {
		t.Fatalf("jitter offsets %v: not random", offsets)
	}
}

// TestOverdue: told once per overdue period, not on every check; a restart
// does not re-alert; a new backup ends the period.
func TestOverdue(t *testing.T) {
	e := newEnv(t, T)
	m := metrics.New()
	e.runner.newest["db"] = T.Add(-3 * time.Hour)
	cfg := parseConfig(t, e.dir, `  db: {type: fake, storages: [shared], rpo: 2h}
  fresh: {type: fake, storages: [shared], rpo: 1h}`, "")
	opts := e.options(m)
	opts.OverdueEvery = 5 * time.Minute
	d := start(t, cfg, e.services(t), opts)
	checks := func(d *Daemon) int {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.checks
	}
	check := func(d *Daemon, n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for checks(d) < n {
			if time.Now().After(deadline) {
				d.mu.Lock()
				e.clk.mu.Lock()
				t.Fatalf("DEBUG checks=%d checking=%v nextCheck=%s now=%s waiters=%v", d.checks, d.checking, d.nextCheck, e.clk.now, e.clk.waiters)
			}
			time.Sleep(time.Millisecond)
		}
	}
	check(d.Daemon, 1)
	waitFor(t, "overdue notice", func() bool { return len(e.note.Overdues()) == 1 })
	for i := 2; i <= 4; i++ {
		e.clk.Advance(5 * time.Minute)
		check(d.Daemon, i)
	}
	if got := e.note.Overdues(); len(got) != 1 || got[0] != "db newest="+T.Add(-3*time.Hour).Format(time.RFC3339)+" rpo=2h0m0s" {
		t.Fatalf("overdue notices %q, want one for db", got)
	}
	if v := gauge(t, m, "lifeboat_overdue", "db"); v != 1 {
		t.Fatalf("lifeboat_overdue{db} = %v", v)
	}

	d.stop(t)
	d = start(t, cfg, e.services(t), opts)
	check(d.Daemon, 1)
	if n := len(e.note.Overdues()); n != 1 {
		t.Fatalf("restart re-alerted: %q", e.note.Overdues())
	}

	// A backup arrives: the period ends.
	e.runner.mu.Lock()
	e.runner.newest["db"] = e.clk.Now()
	e.runner.newest["fresh"] = e.clk.Now()
	e.runner.mu.Unlock()
	e.clk.Advance(5 * time.Minute)
	check(d.Daemon, 2)
	if v := gauge(t, m, "lifeboat_overdue", "db"); v != 0 {
		t.Fatalf("lifeboat_overdue{db} = %v after a new backup", v)
	}
	// Backups stop again: a new period, a new notice (once).
	e.clk.Advance(2*time.Hour + time.Minute)
	check(d.Daemon, 3)
	e.clk.Advance(5 * time.Minute)
	check(d.Daemon, 4)
	waitFor(t, "second notices", func() bool { return len(e.note.Overdues()) == 3 })
	got := strings.Join(e.note.Overdues(), "\n")
	if strings.Count(got, "db newest=") != 2 || strings.Count(got, "fresh newest=") != 1 {
		t.Fatalf("notices:\n%s", got)
	}
}

// TestOverdueNoBackupYet: a source without any backup becomes overdue once
// the daemon has waited its rpo.
func TestOverdueNoBackupYet(t *testing.T) {
	e := newEnv(t, T)
	cfg := parseConfig(t, e.dir, "  db: {type: fake, storages: [shared], rpo: 1h}", "")
	opts := e.options(nil)
	opts.OverdueEvery = 30 * time.Minute
	d := start(t, cfg, e.services(t), opts)
	for i := 1; i <= 3; i++ {
		waitFor(t, "check", func() bool { d.mu.Lock(); defer d.mu.Unlock(); return d.checks >= i })
		if i < 3 {
			if n := len(e.note.Overdues()); n != 0 {
				t.Fatalf("overdue after %d checks: %q", i, e.note.Overdues())
			}
		}
		e.clk.Advance(31 * time.Minute)
	}
	waitFor(t, "notice", func() bool { return len(e.note.Overdues()) == 1 })
	if got := e.note.Overdues()[0]; got != "db newest=none rpo=1h0m0s" {
		t.Fatalf("notice %q", got)
	}
}

// TestPanicIsAFailedRun: a panic in a run is recorded as a failed run with
// the stack, and the daemon goes on.
func TestPanicIsAFailedRun(t *testing.T) {
	e := newEnv(t, T)
	e.runner.do = func(ctx context.Context, kind report.Kind, source string) *report.Run {
		if e.runner.count(kind, source) == 1 {
			var m map[string]int
			m["boom"]++ // nil map: panics
		}
		r := &report.Run{Kind: kind, Items: []report.Item{{Source: source, Status: report.OK}}}
		r.Summarize()
		return r
	}
	cfg := parseConfig(t, e.dir, "  db: {type: fake, storages: [shared], schedule: every 1h}", "")
	d := start(t, cfg, e.services(t), e.options(nil))
	idleAt(t, d.Daemon, report.Backup, "db", T.Add(time.Hour))
	e.clk.Set(T.Add(time.Hour))
	waitFor(t, "failed run reported", func() bool { return len(e.note.Finished()) == 1 })
	run := e.note.Finished()[0]
	it := run.Items[0]
	if run.Status != report.Failed || !strings.Contains(it.Error, "assignment to entry in nil map") ||
		!strings.Contains(it.StderrTail, "TestPanicIsAFailedRun") {
		t.Fatalf("panic recorded as %+v", run)
	}
	idleAt(t, d.Daemon, report.Backup, "db", T.Add(2*time.Hour))
	e.clk.Set(T.Add(2 * time.Hour))
	waitFor(t, "next run", func() bool { return len(e.note.Finished()) == 2 })
	if st := e.note.Finished()[1].Status; st != report.OK {
		t.Fatalf("run after the panic: %s", st)
	}
}

// TestReload: a broken config is refused and the old schedule stays; a good
// one replaces it.
func TestReload(t *testing.T) {
	e := newEnv(t, T)
	cfg := parseConfig(t, e.dir, `  db: {type: fake, storages: [shared], schedule: "@daily"}
  files: {type: fake, storages: [shared], schedule: "@hourly"}`, "")
	d := start(t, cfg, e.services(t), e.options(nil))
	idleAt(t, d.Daemon, report.Backup, "db", day(11, 0))

	bad := parseConfig(t, e.dir, `  db: {type: fake, storages: [shared], schedule: "61 * * * *"}`, "")
	err := d.Reload(bad, e.services(t))
	var ps config.Problems
	if !errors.As(err, &ps) || len(ps) != 1 || !strings.Contains(ps[0].Error(), "lifeboat.yaml:6:") ||
		!strings.Contains(ps[0].Msg, "above maximum (59)") {
		t.Fatalf("Reload(bad) = %v", err)
	}
	if s, ok := lookup(d.Daemon, report.Backup, "files"); !ok || s.Schedule != "@hourly" {
		t.Fatalf("old config not kept: %+v", d.Status())
	}

	good := parseConfig(t, e.dir, `  db: {type: fake, storages: [shared], schedule: every 6h}`, "")
	if err := d.Reload(good, e.services(t)); err != nil {
		t.Fatal(err)
	}
	st := d.Status()
	if len(st) != 1 || st[0].Schedule != "every 6h" || !st[0].Next.Equal(day(10, 18)) {
		t.Fatalf("after reload: %+v", st)
	}
	e.clk.Set(day(10, 18))
	waitCalls(t, e.runner, report.Backup, "db", 1)
}

// TestShutdown: a run gets shutdown_grace to finish; past it, it is
// cancelled, reported failed, and its slot is caught up after restart.
func TestShutdown(t *testing.T) {
	e := newEnv(t, T)
	e.runner.setHold(true)
	cfg := parseConfig(t, e.dir, "  db: {type: fake, storages: [shared], schedule: every 1h}",
		"daemon: {state_dir: ./state, shutdown_grace: 10m}")
	inShutdown := func(d *Daemon) bool { d.mu.Lock(); defer d.mu.Unlock(); return d.shuttingOff }

	// Finishes within the grace.
	d := start(t, cfg, e.services(t), e.options(nil))
	idleAt(t, d.Daemon, report.Backup, "db", T.Add(time.Hour))
	e.clk.Set(T.Add(time.Hour))
	waitFor(t, "running", func() bool { return e.runner.running("db") == 1 })
	d.cancel()
	waitFor(t, "shutdown", func() bool { return inShutdown(d.Daemon) })
	e.runner.release <- struct{}{}
	if err := <-d.errc; err != nil {
		t.Fatal(err)
	}
	d.cancel = nil
	if fin := e.note.Finished(); len(fin) != 1 || fin[0].Status != report.OK {
		t.Fatalf("run within grace: %+v", fin)
	}

	// Overruns the grace.
	d = start(t, cfg, e.services(t), e.options(nil))
	idleAt(t, d.Daemon, report.Backup, "db", T.Add(2*time.Hour))
	e.clk.Set(T.Add(2 * time.Hour))
	waitFor(t, "running", func() bool { return e.runner.running("db") == 1 })
	d.cancel()
	waitFor(t, "grace timer", func() bool { return e.clk.hasWaiter(T.Add(2*time.Hour + 10*time.Minute)) })
	e.clk.Advance(10 * time.Minute)
	if err := <-d.errc; err != nil {
		t.Fatal(err)
	}
	d.cancel = nil
	fin := e.note.Finished()
	if len(fin) != 2 || fin[1].Status != report.Failed || !strings.Contains(fin[1].Items[0].Error, "canceled") {
		t.Fatalf("cancelled run: %+v", fin[len(fin)-1])
	}
	if !strings.Contains(e.logs(), "shutdown grace over") {
		t.Fatalf("logs:\n%s", e.logs())
	}
	// The cancelled slot (14:00) is caught up on the next start.
	e.runner.setHold(false)
	d = start(t, cfg, e.services(t), e.options(nil))
	waitCalls(t, e.runner, report.Backup, "db", 3)
	idleAt(t, d.Daemon, report.Backup, "db", T.Add(3*time.Hour))
}

func (c *fakeClock) hasWaiter(at time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.waiters {
		if w.at.Equal(at) {
			return true
		}
	}
	return false
}

// TestTwoDaemonsOneStorage: two daemons (two hosts) with the same schedule
// share a storage; each slot is backed up by exactly one, never both at
// once.
func TestTwoDaemonsOneStorage(t *testing.T) {
	e := newEnv(t, T)
	e.runner.setHold(true)
	src := "  db: {type: fake, storages: [shared], schedule: every 1h}"
	cfgA := parseConfig(t, e.dir, src, "daemon: {state_dir: ./state-a}")
	cfgB := parseConfig(t, e.dir, src, "daemon: {state_dir: ./state-b}")
	optsB := e.options(nil)
	optsB.Host = "host-b"
	a := start(t, cfgA, e.services(t), e.options(nil))
	b := start(t, cfgB, e.services(t), optsB)
	for h := 1; h <= 4; h++ {
		next := T.Add(time.Duration(h) * time.Hour)
		idleAt(t, a.Daemon, report.Backup, "db", next)
		idleAt(t, b.Daemon, report.Backup, "db", next)
		e.clk.Set(next)
		waitFor(t, "one run, one skip", func() bool {
			sa, _ := lookup(a.Daemon, report.Backup, "db")
			sb, _ := lookup(b.Daemon, report.Backup, "db")
			return e.runner.running("db") == 1 &&
				(sa.Running && sb.LastStatus == report.Skipped && !sb.Running ||
					sb.Running && sa.LastStatus == report.Skipped && !sa.Running)
		})
		e.runner.release <- struct{}{}
	}
	idleAt(t, a.Daemon, report.Backup, "db", T.Add(5*time.Hour))
	idleAt(t, b.Daemon, report.Backup, "db", T.Add(5*time.Hour))
	if n, m := e.runner.count(report.Backup, "db"), e.runner.maxActive["db"]; n != 4 || m != 1 {
		t.Fatalf("%d runs for 4 slots, up to %d at once", n, m)
	}
	if !strings.Contains(e.logs(), "locked by test-host") && !strings.Contains(e.logs(), "locked by host-b") {
		t.Fatalf("skip not logged:\n%s", e.logs())
	}
}

// TestStaleLockTakenOver: a lock left by a crashed process makes the daemon
// skip while it is valid, and is taken over once it expires.
func TestStaleLockTakenOver(t *testing.T) {
	e := newEnv(t, T)
	cfg := parseConfig(t, e.dir, "  db: {type: fake, storages: [shared], schedule: every 1h}",
		"daemon: {state_dir: ./state, lock_ttl: 1m}")
	d := start(t, cfg, e.services(t), e.options(nil))
	idleAt(t, d.Daemon, report.Backup, "db", T.Add(time.Hour))
	e.clk.Set(T.Add(time.Hour - 30*time.Second))
	st, err := local.New("shared", filepath.Join(e.dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Acquire(t.Context(), st, "db", lock.Options{Clock: e.clk, TTL: time.Minute, Host: "crashed-host", PID: 1}); err != nil {
		t.Fatal(err)
	} // never renewed nor released

	e.clk.Set(T.Add(time.Hour))
	waitFor(t, "skip", func() bool {
		s, _ := lookup(d.Daemon, report.Backup, "db")
		return s.LastStatus == report.Skipped && s.Next.Equal(T.Add(2*time.Hour))
	})
	if n := e.runner.count(report.Backup, "db"); n != 0 {
		t.Fatal("ran while another process held the lock")
	}
	e.clk.Set(T.Add(2 * time.Hour))
	waitCalls(t, e.runner, report.Backup, "db", 1)
	idleAt(t, d.Daemon, report.Backup, "db", T.Add(3*time.Hour))
	if !strings.Contains(e.logs(), "taking over expired lock") || !strings.Contains(e.logs(), "crashed-host") {
		t.Fatalf("takeover not logged:\n%s", e.logs())
	}
}

// TestSkipWhenAlreadyBackedUp: a backup whose slot another process already
// covered (newest backup at or after the slot) is skipped.
func TestSkipWhenAlreadyBackedUp(t *testing.T) {
	e := newEnv(t, T)
	cfg := parseConfig(t, e.dir, "  db: {type: fake, storages: [shared], schedule: every 1h}", "")
	d := start(t, cfg, e.services(t), e.options(nil))
	idleAt(t, d.Daemon, report.Backup, "db", T.Add(time.Hour))
	e.runner.mu.Lock()
	e.runner.newest["db"] = T.Add(time.Hour + time.Second) // as if another host just did it
	e.runner.mu.Unlock()
	e.clk.Set(T.Add(time.Hour + 2*time.Second))
	idleAt(t, d.Daemon, report.Backup, "db", T.Add(2*time.Hour))
	if s, _ := lookup(d.Daemon, report.Backup, "db"); s.LastStatus != report.Skipped || e.runner.count(report.Backup, "db") != 0 {
		t.Fatalf("not skipped: %+v", s)
	}
}

func TestSummary(t *testing.T) {
	e := newEnv(t, T)
	cfg := parseConfig(t, e.dir, "  db: {type: fake, storages: [shared]}", "summary: {schedule: '0 8 * * *'}")
	d := start(t, cfg, e.services(t), e.options(nil))
	idleAt(t, d.Daemon, KindSummary, "", day(11, 8))
	e.clk.Set(day(11, 8))
	waitFor(t, "summary", func() bool { return e.note.Summaries() == 1 })
	idleAt(t, d.Daemon, KindSummary, "", day(12, 8))
	if n := e.note.Summaries(); n != 1 {
		t.Fatalf("%d summaries", n)
	}
}

// gauge reads a lifeboat gauge for one source from the registry.
func gauge(t *testing.T, m *metrics.Metrics, name, source string) float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "source" && l.GetValue() == source {
					return mt.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("%s{source=%s} not found", name, source)
	return 0
}

// TestRunnerNotifies: when the runner tells the notifier itself, the daemon
// only reports runs it had to make up.
func TestRunnerNotifies(t *testing.T) {
	e := newEnv(t, T)
	e.runner.do = func(ctx context.Context, kind report.Kind, source string) *report.Run {
		if kind == report.Backup && e.runner.count(kind, source) == 2 {
			panic("second backup breaks")
		}
		r := &report.Run{Kind: kind, Items: []report.Item{{Source: source, Status: report.OK}}}
		r.Summarize()
		return r
	}
	opts := e.options(nil)
	opts.RunnerNotifies = func(k report.Kind) bool { return k == report.Backup }
	cfg := parseConfig(t, e.dir, "  db: {type: fake, storages: [shared], schedule: every 1h, drill: {schedule: every 1h}}",
		"daemon: {state_dir: ./state, max_parallel: 2}")
	d := start(t, cfg, e.services(t), opts)
	idleAt(t, d.Daemon, report.Backup, "db", T.Add(time.Hour))
	for h := 1; h <= 2; h++ {
		e.clk.Set(T.Add(time.Duration(h) * time.Hour))
		idleAt(t, d.Daemon, report.Backup, "db", T.Add(time.Duration(h+1)*time.Hour))
		idleAt(t, d.Daemon, report.Drill, "db", T.Add(time.Duration(h+1)*time.Hour))
	}
	waitFor(t, "reports", func() bool { return len(e.note.Finished()) == 3 })
	var kinds []string
	for _, r := range e.note.Finished() {
		kinds = append(kinds, string(r.Kind)+":"+string(r.Status))
	}
	e.note.mu.Lock()
	started := strings.Join(e.note.started, ",")
	e.note.mu.Unlock()
	// Two drills (the daemon tells), one made-up backup failure (the panic).
	if got := strings.Join(kinds, ","); strings.Count(got, "drill:ok") != 2 || strings.Count(got, "backup:failed") != 1 || started != "drill/db,drill/db" {
		t.Fatalf("finished %s; started %s", got, started)
	}
}
