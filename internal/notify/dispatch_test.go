package notify_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/notify"
	"github.com/lifeboat-backup/lifeboat/internal/notify/notifytest"
	"github.com/lifeboat-backup/lifeboat/internal/report"
)

// recorder is a notifier that keeps what it is given; it stands for the
// notifier types, which have their own tests against real servers.
type recorder struct {
	mu      sync.Mutex
	events  []notify.Event
	fail    int // fail this many calls first
	follows bool
	err     error
}

func (r *recorder) Notify(_ context.Context, ev notify.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		if r.err != nil {
			return r.err
		}
		return errors.New("endpoint down")
	}
	r.events = append(r.events, ev)
	return nil
}

func (r *recorder) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events {
		out = append(out, ev.Source+":"+ev.Kind.String())
	}
	slices.Sort(out)
	return out
}

type follower struct{ recorder }

func (*follower) FollowsRuns() bool { return true }

type spec struct {
	Token config.Secret `yaml:"token"`
}

func (*spec) Validate() error { return nil }

const routingYAML = `
storages:
  local: {type: local, path: ./b}
defaults: {storages: [local]}
sources:
  app-db: {type: test, password: "${env:DB_PASSWORD}"}
  uploads: {type: test, notify: [chat, pager]}
notifiers:
  mail:  {type: rec, on: [failure, overdue, summary, drill]}
  chat:  {type: rec, on: [success, failure]}
  pager: {type: rec}
  hc:    {type: rec, token: "${env:HC_TOKEN}"}
summary: {to: [chat]}
`

func routing(t *testing.T) (*notify.Dispatcher, map[string]*recorder, *bytes.Buffer) {
	t.Helper()
	cfg := notifytest.Config(t, routingYAML, map[string]string{"DB_PASSWORD": "db-pa55word-1", "HC_TOKEN": "hc-t0ken-2"},
		map[string]func() config.Spec{"rec": func() config.Spec { return &spec{} }})
	recs := map[string]*recorder{"mail": {}, "chat": {}, "pager": {}}
	hc := &follower{}
	ns := map[string]notify.Notifier{"mail": recs["mail"], "chat": recs["chat"], "pager": recs["pager"], "hc": hc}
	recs["hc"] = &hc.recorder
	var logs bytes.Buffer
	d, err := notify.NewDispatcher(cfg, ns, notify.Options{Backoff: time.Millisecond, Attempts: 3, Host: "web1",
		Now: func() time.Time { return notifytest.T0() }, Logger: notifytest.Logger(t, &logs)})
	if err != nil {
		t.Fatal(err)
	}
	return d, recs, &logs
}

func TestRouting(t *testing.T) {
	d, recs, _ := routing(t)
	ctx := t.Context()
	d.RunStarted(ctx, report.Backup, "app-db")
	d.RunStarted(ctx, report.Backup, "uploads")
	d.RunFinished(ctx, notifytest.FailedRun())  // app-db failed, uploads ok
	d.RunFinished(ctx, notifytest.SuspectRun()) // app-db suspect
	d.RunFinished(ctx, notifytest.DrillRun())   // app-db drill failed
	d.Overdue(ctx, "uploads", time.Time{}, 24*time.Hour)
	if err := d.Summary(ctx, notifytest.Summary()); err != nil {
		t.Fatal(err)
	}

	want := map[string][]string{
		// on: failure, overdue, summary, drill; all sources but uploads (notify: [chat, pager]).
		"mail": {":summary", "app-db:drill_failed", "app-db:run_failed"},
		// on: success, failure; summary.to; both sources.
		"chat": {":summary", "app-db:drill_failed", "app-db:run_failed", "uploads:run_succeeded"},
		// default on (failure, suspect, overdue); both sources.
		"pager": {"app-db:drill_failed", "app-db:run_failed", "app-db:run_suspect", "uploads:overdue"},
		// a follower: starts, and by default every outcome; app-db only.
		"hc": {"app-db:drill_failed", "app-db:run_failed", "app-db:run_started", "app-db:run_suspect"},
	}
	for name, w := range want {
		if got := recs[name].kinds(); !slices.Equal(got, w) {
			t.Errorf("%s got %v\n want %v", name, got, w)
		}
	}
}

func TestEvents(t *testing.T) {
	evs := notify.Events(notifytest.FailedRun(), "other")
	if len(evs) != 2 {
		t.Fatalf("%d events", len(evs))
	}
	db, up := evs[0], evs[1]
	if db.Kind != notify.RunFailed || db.Source != "app-db" || db.Host != "web1" || db.Err == nil || len(db.Report.Items) != 1 ||
		db.Report.Status != report.Failed || db.Location != "" {
		t.Errorf("app-db event: %+v", db)
	}
	if up.Kind != notify.RunSucceeded || up.Err != nil || up.Bytes != 1_800_000_000 || up.Report.Status != report.OK ||
		!strings.HasPrefix(up.Location, "local:uploads/web1.") || !strings.Contains(up.Location, ", offsite:") {
		t.Errorf("uploads event: %+v", up)
	}
	if got := up.Title(); got != "OK backup uploads on web1" {
		t.Errorf("title %q", got)
	}
	s := notify.Events(notifytest.SuspectRun(), "")[0]
	if msg, _ := notify.ErrorText(s.Err); s.Kind != notify.RunSuspect || msg != "check max_shrink: shrank 61.1% (limit 20%)" {
		t.Errorf("suspect: %v %q", s.Kind, msg)
	}
	partial := &report.Run{Kind: report.Backup, Items: []report.Item{{Source: "x", Status: report.Partial,
		Storages: []report.StorageResult{{Storage: "a", OK: true, Key: "k"}, {Storage: "b", Error: "timeout"}}}}}
	p := notify.Events(partial, "h")[0]
	if msg, _ := notify.ErrorText(p.Err); p.Kind != notify.RunPartial || msg != "storage b: timeout" || p.Location != "a:k" {
		t.Errorf("partial: %v %q %q", p.Kind, msg, p.Location)
	}
	empty := notify.Events(&report.Run{Kind: report.Prune, Status: report.Failed, Warnings: []string{"config broken"}}, "h")
	if len(empty) != 1 || empty[0].Kind != notify.RunFailed || empty[0].Source != "" {
		t.Errorf("a run without items: %+v", empty)
	}
	if d := notify.Events(notifytest.DrillRun(), "")[0]; d.Kind != notify.DrillFailed || d.Title() != "FAILED drill app-db on web1" {
		t.Errorf("drill: %v %q", d.Kind, d.Title())
	}
}

func TestRetryAndGiveUp(t *testing.T) {
	d, recs, logs := routing(t)
	recs["chat"].fail = 2
	recs["pager"].fail = 100
	recs["mail"].fail, recs["mail"].err = 100, notify.Permanent(errors.New("rejected"))
	d.RunFinished(t.Context(), notifytest.FailedRun()) // returns: a run never fails because of notifiers

	if got := recs["chat"].kinds(); len(got) != 2 {
		t.Errorf("chat recovered after two failures: %v", got)
	}
	if recs["pager"].fail != 100-3 {
		t.Errorf("pager tried %d times, want 3", 100-recs["pager"].fail)
	}
	if recs["mail"].fail != 99 {
		t.Errorf("a permanent error is not retried: %d tries", 100-recs["mail"].fail)
	}
	for _, want := range []string{"notification given up", "notification rejected, not retrying", "notifier=pager", "endpoint down"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	err := d.Summary(t.Context(), notifytest.Summary())
	if err == nil || !strings.Contains(err.Error(), "notifier mail: rejected") || strings.Contains(err.Error(), "chat") {
		t.Errorf("summary: the error names the failing notifier only: %v", err)
	}
	if got := recs["chat"].kinds(); !slices.Contains(got, ":summary") {
		t.Errorf("chat did not get the summary: %v", got)
	}
}

func TestCancelStopsRetries(t *testing.T) {
	d, recs, _ := routing(t)
	recs["pager"].fail = 100
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	d.Overdue(ctx, "uploads", time.Time{}, time.Hour)
	if tries := 100 - recs["pager"].fail; tries != 1 {
		t.Errorf("after cancellation one attempt is made and none retried; got %d", tries)
	}
	if got := recs["chat"].kinds(); len(got) != 0 {
		t.Errorf("chat is not told about overdue: %v", got)
	}
}

type panicky struct{}

func (panicky) Notify(context.Context, notify.Event) error { panic("boom") }

func TestPanicIsContained(t *testing.T) {
	cfg := notifytest.Config(t, "notifiers:\n  p: {type: rec}\nsummary: {to: [p]}\n", nil,
		map[string]func() config.Spec{"rec": func() config.Spec { return &spec{} }})
	d, err := notify.NewDispatcher(cfg, map[string]notify.Notifier{"p": panicky{}}, notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Summary(t.Context(), notifytest.Summary()); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("err = %v", err)
	}
	if _, err := notify.NewDispatcher(cfg, map[string]notify.Notifier{}, notify.Options{}); err == nil {
		t.Error("a configured notifier that was not built must be an error")
	}
}

func TestNoSummaryTarget(t *testing.T) {
	cfg := notifytest.Config(t, "notifiers:\n  p: {type: rec}\n", nil,
		map[string]func() config.Spec{"rec": func() config.Spec { return &spec{} }})
	d, err := notify.NewDispatcher(cfg, map[string]notify.Notifier{"p": &recorder{}}, notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Summary(t.Context(), notifytest.Summary()); err == nil || !strings.Contains(err.Error(), "summary.to") {
		t.Errorf("err = %v", err)
	}
}

func TestRedaction(t *testing.T) {
	d, recs, logs := routing(t)
	run := notifytest.FailedRun()
	it := &run.Items[0]
	it.Error = "connect postgres://app:db-pa55word-1@db/app: refused"
	it.StderrTail = "using token hc-t0ken-2\nDSN host=db password=hunter2 user=app\nhttps://u:p%40ss@example.org/x"
	it.Hooks = []report.HookResult{{Phase: "before", Command: "notify --token=db-pa55word-1", Output: "db-pa55word-1"}}
	recs["pager"].fail = 1 // the retry warning logs the error text too
	d.RunFinished(t.Context(), run)

	if run.Items[0].Error != "connect postgres://app:db-pa55word-1@db/app: refused" {
		t.Error("the caller's report must not be modified")
	}
	var ev notify.Event
	for _, e := range recs["pager"].events {
		if e.Source == "app-db" {
			ev = e
		}
	}
	if ev.Report == nil {
		t.Fatal("pager got no app-db event")
	}
	msg, _ := notify.ErrorText(ev.Err)
	all := msg + ev.Report.Items[0].Error + ev.Report.Items[0].StderrTail + ev.Report.Items[0].Hooks[0].Command +
		ev.Report.Items[0].Hooks[0].Output + logs.String()
	for _, secret := range []string{"db-pa55word-1", "hc-t0ken-2", "hunter2", "p%40ss"} {
		if strings.Contains(all, secret) {
			t.Errorf("%q survived redaction:\n%s", secret, all)
		}
	}
	if !strings.Contains(ev.Report.Items[0].StderrTail, "password=xxxxx") || !strings.Contains(msg, "postgres://app:") {
		t.Errorf("redaction should keep the shape of the text: %q / %q", msg, ev.Report.Items[0].StderrTail)
	}
}

func TestBuild(t *testing.T) {
	cfg := notifytest.Config(t, "notifiers:\n  a: {type: rec}\n  b: {type: other}\n", nil,
		map[string]func() config.Spec{"rec": func() config.Spec { return &spec{} }, "other": func() config.Spec { return &spec{} }})
	mk := func(*spec, notify.Deps) (*recorder, error) { return &recorder{}, nil }
	ns, err := notify.Build(cfg, map[string]notify.Factory{"rec": notify.Typed(mk), "other": notify.Typed(mk)}, notify.Deps{})
	if err != nil || len(ns) != 2 {
		t.Fatalf("%v %v", ns, err)
	}
	if _, err := notify.Build(cfg, map[string]notify.Factory{"rec": notify.Typed(mk)}, notify.Deps{}); err == nil ||
		!strings.Contains(err.Error(), `type "other"`) {
		t.Errorf("a type without factory: %v", err)
	}
	type otherSpec struct{ spec }
	wrong := func(*otherSpec, notify.Deps) (*recorder, error) { return &recorder{}, nil }
	if _, err := notify.Build(cfg, map[string]notify.Factory{"rec": notify.Typed(wrong), "other": notify.Typed(mk)}, notify.Deps{}); err == nil {
		t.Error("a factory for the wrong config type must fail")
	}
}

func TestKindNames(t *testing.T) {
	for k := notify.RunStarted; k <= notify.Summary; k++ {
		b, _ := k.MarshalText()
		var back notify.Kind
		if err := back.UnmarshalText(b); err != nil || back != k || strings.HasPrefix(k.String(), "kind(") {
			t.Errorf("%d: %q -> %v %v", k, b, back, err)
		}
	}
}
