package healthchecks_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/notify"
	"github.com/lifeboat-backup/lifeboat/internal/notify/healthchecks"
	"github.com/lifeboat-backup/lifeboat/internal/notify/notifytest"
	"github.com/lifeboat-backup/lifeboat/internal/report"
)

const checkUUID = "5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278"

type ping struct{ method, path, body string }

// hc stands in for hc-ping.com on loopback.
type hc struct {
	mu     sync.Mutex
	pings  []ping
	status int
}

func (h *hc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.pings = append(h.pings, ping{r.Method, r.URL.Path, string(b)})
	status := h.status
	h.mu.Unlock()
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	io.WriteString(w, "OK")
}

func (h *hc) take() []ping {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.pings
	h.pings = nil
	return p
}

func paths(ps []ping) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.method+" "+p.path)
	}
	return out
}

func setup(t *testing.T, h *hc, key string, extra string, logs io.Writer) *notify.Dispatcher {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg := notifytest.Config(t, `
storages:
  local: {type: local, path: ./b}
defaults: {storages: [local]}
sources:
  app-db: {type: test}
  uploads: {type: test}
notifiers:
  hc:
    type: healthchecks
    url: ${env:HC_URL}
`+extra, map[string]string{"HC_URL": srv.URL + "/ping/" + key},
		map[string]func() config.Spec{"healthchecks": func() config.Spec { return healthchecks.DefaultConfig() }})
	ns, err := notify.Build(cfg, map[string]notify.Factory{"healthchecks": notify.Typed(healthchecks.New)}, notify.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := notify.NewDispatcher(cfg, ns, notify.Options{Backoff: time.Millisecond, Attempts: 2, Host: "web1",
		Logger: notifytest.Logger(t, logs)})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPerSource(t *testing.T) {
	h := &hc{}
	d := setup(t, h, "project-ping-key", "    per_source: true\n", nil)
	ctx := t.Context()

	d.RunStarted(ctx, report.Backup, "app-db")
	if got := paths(h.take()); strings.Join(got, ",") != "POST /ping/project-ping-key/app-db/start" {
		t.Errorf("start pinged %v", got)
	}

	d.RunFinished(ctx, notifytest.FailedRun())
	got := map[string]ping{}
	for _, p := range h.take() {
		got[p.path] = p
	}
	fail, ok := got["/ping/project-ping-key/app-db/fail"]
	if !ok || len(got) != 2 {
		t.Fatalf("pings %v; want app-db/fail and uploads", got)
	}
	if !strings.Contains(fail.body, "pg_dump exited with status 1") || !strings.Contains(fail.body, `role "backup" does not exist`) {
		t.Errorf("fail body lacks the error:\n%s", fail.body)
	}
	ok2, found := got["/ping/project-ping-key/uploads"]
	if !found || !strings.HasPrefix(ok2.body, "OK backup uploads on web1: 1.8 GB stored in 1m23s") {
		t.Errorf("success ping: %+v", ok2)
	}

	// Drills, overdue alarms and summaries never ping: they would make a
	// stale backup check look alive.
	d.RunStarted(ctx, report.Drill, "app-db")
	d.RunFinished(ctx, notifytest.DrillRun())
	d.Overdue(ctx, "uploads", time.Time{}, time.Hour)
	if p := h.take(); len(p) != 0 {
		t.Errorf("non-backup events pinged: %v", paths(p))
	}

	d.RunFinished(ctx, notifytest.SuspectRun())
	if p := paths(h.take()); strings.Join(p, ",") != "POST /ping/project-ping-key/app-db/fail" {
		t.Errorf("a suspect backup must ping fail, got %v", p)
	}
}

func TestOneCheck(t *testing.T) {
	h := &hc{}
	var logs bytes.Buffer
	d := setup(t, h, checkUUID, "    on: [failure]\n", &logs)
	ctx := t.Context()
	d.RunStarted(ctx, report.Backup, "app-db")
	d.RunFinished(ctx, notifytest.FailedRun())
	got := paths(h.take())
	if strings.Join(got, ",") != "POST /ping/"+checkUUID+"/start,POST /ping/"+checkUUID+"/fail" {
		t.Errorf("pings %v; with on: [failure] the success is not pinged", got)
	}

	h.mu.Lock()
	h.status = http.StatusNotFound
	h.mu.Unlock()
	err := d.Notify(ctx, notifytest.Event(t, notifytest.FailedRun(), "app-db"))
	if err == nil || strings.Contains(err.Error(), checkUUID) || strings.Contains(logs.String(), checkUUID) {
		t.Errorf("a 404 must fail without naming the check's UUID: %v\n%s", err, logs.String())
	}
	if n := len(h.take()); n != 1 {
		t.Errorf("a 404 is not retried: %d attempts", n)
	}
}

func TestBadURL(t *testing.T) {
	for _, u := range []string{"hc-ping.com/x", "https://hc-ping.com/x?create=1"} {
		if _, err := healthchecks.New(&healthchecks.Config{URL: config.NewSecret(u)}, notify.Deps{}); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
}

func TestBodyBounded(t *testing.T) {
	ev := notifytest.Event(t, notifytest.FailedRun(), "app-db")
	ev.Report.Items[0].StderrTail = strings.Repeat("é", 20000)
	if b := healthchecks.PingBody(ev); len(b) > 10<<10 || !strings.HasSuffix(b, "[truncated]\n") {
		t.Errorf("body of %d bytes", len(b))
	}
}
