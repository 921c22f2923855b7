package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/metrics"
	"github.com/lifeboat-backup/lifeboat/internal/report"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
	"github.com/lifeboat-backup/lifeboat/internal/storage/local"
)

// fakeClock is a manual clock: At fires when the clock is moved past its time.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(start time.Time) *fakeClock { return &fakeClock{now: start} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) At(t time.Time) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if !t.After(c.now) {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{t, ch})
	return ch
}

// Set moves the clock to t (never backwards) and fires due waiters.
func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}

func (c *fakeClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// waitFor polls cond; the watchdog only turns a hang into a failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

type call struct {
	kind   report.Kind
	source string
	at     time.Time
}

// fakeRunner records calls and can hold them until released. It also
// tracks how many runs of each source overlap.
type fakeRunner struct {
	clk *fakeClock

	mu        sync.Mutex
	calls     []call
	active    map[string]int
	maxActive map[string]int
	total     int
	maxTotal  int
	hold      bool          // calls wait for release (or ctx end)
	release   chan struct{} // one token per held call
	newest    map[string]time.Time
	newestErr error
	// do, if set, replaces the default body of a call (after bookkeeping).
	do func(ctx context.Context, kind report.Kind, source string) *report.Run
}

func newFakeRunner(clk *fakeClock) *fakeRunner {
	return &fakeRunner{clk: clk, active: map[string]int{}, maxActive: map[string]int{},
		release: make(chan struct{}, 100), newest: map[string]time.Time{}}
}

func (r *fakeRunner) run(ctx context.Context, kind report.Kind, source string) *report.Run {
	start := r.clk.Now()
	r.mu.Lock()
	r.calls = append(r.calls, call{kind, source, start})
	r.active[source]++
	r.maxActive[source] = max(r.maxActive[source], r.active[source])
	r.total++
	r.maxTotal = max(r.maxTotal, r.total)
	hold, do := r.hold, r.do
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.active[source]--
		r.total--
		r.mu.Unlock()
	}()
	status := report.OK
	if hold {
		select {
		case <-r.release:
		case <-ctx.Done():
			status = report.Failed
		}
	}
	if do != nil {
		return do(ctx, kind, source)
	}
	if status == report.OK && kind == report.Backup {
		r.mu.Lock()
		r.newest[source] = start
		r.mu.Unlock()
	}
	run := &report.Run{ID: fmt.Sprint(len(r.calls)), Kind: kind, Started: start, Finished: r.clk.Now(),
		Items: []report.Item{{Source: source, Status: status, Started: start, Finished: r.clk.Now()}}}
	if ctx.Err() != nil {
		run.Items[0].Error = "interrupted: " + ctx.Err().Error()
	}
	run.Summarize()
	return run
}

func (r *fakeRunner) Backup(ctx context.Context, s string) *report.Run {
	return r.run(ctx, report.Backup, s)
}
func (r *fakeRunner) Drill(ctx context.Context, s string) *report.Run {
	return r.run(ctx, report.Drill, s)
}
func (r *fakeRunner) Prune(ctx context.Context, s string) *report.Run {
	return r.run(ctx, report.Prune, s)
}
func (r *fakeRunner) Newest(ctx context.Context, s string) (time.Time, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.newest[s]
	return t, ok, r.newestErr
}

func (r *fakeRunner) setHold(h bool) {
	r.mu.Lock()
	r.hold = h
	r.mu.Unlock()
}

func (r *fakeRunner) Calls() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

func (r *fakeRunner) count(kind report.Kind, source string) int {
	n := 0
	for _, c := range r.Calls() {
		if c.kind == kind && c.source == source {
			n++
		}
	}
	return n
}

func (r *fakeRunner) running(source string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active[source]
}

// recorder is a Notifier that records what it was told.
type recorder struct {
	mu       sync.Mutex
	started  []string
	finished []*report.Run
	overdue  []string
	summary  int
}

func (n *recorder) RunStarted(_ context.Context, kind report.Kind, source string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.started = append(n.started, string(kind)+"/"+source)
}

func (n *recorder) RunFinished(_ context.Context, run *report.Run) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.finished = append(n.finished, run)
}

func (n *recorder) Overdue(_ context.Context, source string, newest time.Time, rpo time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.overdue = append(n.overdue, fmt.Sprintf("%s newest=%s rpo=%s", source, fmtTime(newest), rpo))
}

func (n *recorder) Summary(context.Context) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.summary++
}

func (n *recorder) Finished() []*report.Run {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*report.Run(nil), n.finished...)
}

func (n *recorder) Overdues() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.overdue...)
}

func (n *recorder) Summaries() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.summary
}

type fakeSpec struct {
	Path string `yaml:"path"`
}

func (*fakeSpec) Validate() error { return nil }

var testRegistry = config.Registry{
	Sources:  map[string]func() config.Spec{"fake": func() config.Spec { return &fakeSpec{} }},
	Storages: map[string]func() config.Spec{"local": func() config.Spec { return &local.Config{} }},
}

// parseConfig parses a config whose sources are given as YAML (indented
// below `sources:`), with one local storage "shared" at dir/store and the
// state in dir/state unless extra says otherwise.
func parseConfig(t *testing.T, dir, sources, extra string) *config.Config {
	t.Helper()
	y := "encryption:\n  recipients: [age1qqq]\nstorages:\n  shared: {type: local, path: ./store}\nsources:\n" + sources + "\n" + extra
	if !strings.Contains(extra, "state_dir") {
		y += "\ndaemon:\n  state_dir: ./state\n"
	}
	cfg, err := config.Parse("lifeboat.yaml", dir, []byte(y), testRegistry, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v\n%s", err, y)
	}
	return cfg
}

// testDaemon is a daemon running in the background on a fake clock.
type testDaemon struct {
	*Daemon
	cancel context.CancelFunc
	errc   chan error
}

type testEnv struct {
	dir    string
	clk    *fakeClock
	runner *fakeRunner
	note   *recorder
	log    *strings.Builder
	logMu  *sync.Mutex
}

func newEnv(t *testing.T, start time.Time) *testEnv {
	clk := newFakeClock(start)
	e := &testEnv{dir: t.TempDir(), clk: clk, runner: newFakeRunner(clk), note: &recorder{}, log: &strings.Builder{}, logMu: &sync.Mutex{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", e.logs())
		}
	})
	return e
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (e *testEnv) logs() string {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	return e.log.String()
}

func (e *testEnv) services(t *testing.T) Services {
	return Services{Runner: e.runner, Notifier: e.note, LockStorage: func(string) (storage.Storage, error) {
		return local.New("shared", filepath.Join(e.dir, "store"))
	}}
}

func (e *testEnv) options(m *metrics.Metrics) Options {
	return Options{
		Clock: e.clk, Logger: slog.New(slog.NewTextHandler(lockedWriter{e.logMu, e.log}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics: m, Rand: rand.New(rand.NewPCG(1, 2)), Host: "test-host", PID: os.Getpid(), Local: time.UTC,
	}
}

func start(t *testing.T, cfg *config.Config, svc Services, opts Options) *testDaemon {
	t.Helper()
	d, err := New(cfg, svc, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	td := &testDaemon{Daemon: d, cancel: cancel, errc: make(chan error, 1)}
	go func() { td.errc <- d.Run(ctx) }()
	t.Cleanup(func() { td.stop(t) })
	return td
}

// stop cancels the daemon and waits for Run to return (once).
func (td *testDaemon) stop(t *testing.T) {
	t.Helper()
	if td.cancel == nil {
		return
	}
	td.cancel()
	td.cancel = nil
	select {
	case err := <-td.errc:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not stop")
	}
}

func (td *testDaemon) task(t *testing.T, kind report.Kind, source string) TaskStatus {
	t.Helper()
	for _, s := range td.Status() {
		if s.Kind == kind && s.Source == source {
			return s
		}
	}
	t.Fatalf("no task %s/%s in %+v", kind, source, td.Status())
	return TaskStatus{}
}

// idle waits until the task is neither queued nor running and its next slot
// is next.
func (td *testDaemon) idle(t *testing.T, kind report.Kind, source string, next time.Time) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s/%s idle with next run at %s", kind, source, next), func() bool {
		s := td.task(t, kind, source)
		return !s.Queued && !s.Running && s.Next.Equal(next)
	})
}
