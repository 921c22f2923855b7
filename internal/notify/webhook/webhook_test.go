package webhook_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/notify"
	"github.com/lifeboat-backup/lifeboat/internal/notify/notifytest"
	"github.com/lifeboat-backup/lifeboat/internal/notify/webhook"
	"github.com/lifeboat-backup/lifeboat/internal/report"
)

// The golden files in testdata/ were produced with
//
//	go test ./internal/notify/webhook -run TestGolden -update
//
// from the notifytest fixtures, and reviewed by reading them.
var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	hmacKey   = "whsec-0123456789abcdef"
	urlToken  = "tok3n-in-the-query-8a7b"
	sentAtSec = 1795248000 // notifytest.T0 + 5h
)

func TestGolden(t *testing.T) {
	for name, ev := range map[string]notify.Event{
		"failed":  notifytest.Event(t, notifytest.FailedRun(), "app-db"),
		"drill":   notifytest.Event(t, notifytest.DrillRun(), "app-db"),
		"overdue": notifytest.OverdueEvent(),
		"summary": {Kind: notify.Summary, Host: "web1", Summary: notifytest.Summary()},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := webhook.Body(ev)
			if err != nil {
				t.Fatal(err)
			}
			notifytest.Golden(t, "testdata/"+name+".json.golden", b, *update)
		})
	}
}

// verify is the receiver's side, written from the package documentation
// and independent of webhook.Sign.
func verify(secret string, h http.Header, body []byte, now time.Time) bool {
	ts := h.Get("X-Lifeboat-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || now.Sub(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	return hmac.Equal([]byte(want), []byte(h.Get("X-Lifeboat-Signature")))
}

type request struct {
	header http.Header
	body   []byte
	query  string
}

// receiver answers with the statuses in order, then 200.
type receiver struct {
	mu       sync.Mutex
	statuses []int
	got      []request
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.got = append(rc.got, request{header: r.Header.Clone(), body: b, query: r.URL.RawQuery})
	status := http.StatusOK
	if len(rc.statuses) > 0 {
		status, rc.statuses = rc.statuses[0], rc.statuses[1:]
	}
	rc.mu.Unlock()
	w.WriteHeader(status)
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.got...)
}

func setup(t *testing.T, rc *receiver, extra string, logs io.Writer) *notify.Dispatcher {
	t.Helper()
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	cfg := notifytest.Config(t, `
storages:
  local: {type: local, path: ./b}
defaults: {storages: [local]}
sources:
  app-db: {type: test}
notifiers:
  hook:
    type: webhook
    url: ${env:HOOK_URL}
    secret: ${env:HOOK_SECRET}
`+extra, map[string]string{"HOOK_URL": srv.URL + "/lifeboat?token=" + urlToken, "HOOK_SECRET": hmacKey},
		map[string]func() config.Spec{"webhook": func() config.Spec { return webhook.DefaultConfig() }})
	now := func() time.Time { return time.Unix(sentAtSec, 0) }
	ns, err := notify.Build(cfg, map[string]notify.Factory{"webhook": notify.Typed(webhook.New)}, notify.Deps{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	d, err := notify.NewDispatcher(cfg, ns, notify.Options{Backoff: time.Millisecond, Attempts: 3, Now: now, Host: "web1",
		Logger: notifytest.Logger(t, logs)})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestSigned(t *testing.T) {
	rc := &receiver{}
	var logs bytes.Buffer
	d := setup(t, rc, "", &logs)
	d.RunFinished(t.Context(), notifytest.FailedRun())

	got := rc.requests()
	if len(got) != 1 {
		t.Fatalf("got %d requests, want 1: app-db failed; uploads' success is not in the default on:", len(got))
	}
	r := got[0]
	if r.query != "token="+urlToken {
		t.Errorf("query %q: the URL must be used as configured", r.query)
	}
	now := time.Unix(sentAtSec, 0)
	if !verify(hmacKey, r.header, r.body, now) {
		t.Fatalf("signature does not verify: %v", r.header)
	}
	if r.header.Get("X-Lifeboat-Timestamp") != strconv.Itoa(sentAtSec) || r.header.Get("X-Lifeboat-Event") != "run_failed" {
		t.Errorf("headers: %v", r.header)
	}

	tampered := bytes.Replace(r.body, []byte(`"run_failed"`), []byte(`"run_succeeded"`), 1)
	if bytes.Equal(tampered, r.body) {
		t.Fatal("test is broken: nothing tampered")
	}
	if verify(hmacKey, r.header, tampered, now) {
		t.Error("a tampered body must fail verification")
	}
	if verify("another-secret", r.header, r.body, now) {
		t.Error("another key must fail verification")
	}
	if verify(hmacKey, r.header, r.body, now.Add(time.Hour)) {
		t.Error("a replay an hour later must fail verification")
	}
	late := r.header.Clone()
	late.Set("X-Lifeboat-Timestamp", strconv.Itoa(sentAtSec+3600))
	if verify(hmacKey, late, r.body, now.Add(time.Hour)) {
		t.Error("a replay with a fresh timestamp must fail verification")
	}

	var p webhook.Payload
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Event != notify.RunFailed || p.Source != "app-db" || p.Report == nil || p.Report.Items[0].Status != report.Failed ||
		!strings.Contains(p.Error, "pg_dump exited with status 1") {
		t.Errorf("payload: %+v", p)
	}
	for _, secret := range []string{hmacKey, urlToken} {
		if bytes.Contains(r.body, []byte(secret)) || strings.Contains(logs.String(), secret) {
			t.Errorf("%q leaked into the body or the logs", secret)
		}
	}
}

func TestRetriedThenGivenUp(t *testing.T) {
	rc := &receiver{statuses: []int{500, 503}}
	var logs bytes.Buffer
	d := setup(t, rc, "    on: [failure, success]\n", &logs)
	d.RunFinished(t.Context(), notifytest.SuspectRun()) // not routed: suspect is not in on:
	if n := len(rc.requests()); n != 0 {
		t.Fatalf("suspect went to a notifier without suspect in on: (%d requests)", n)
	}

	ev := notifytest.Event(t, notifytest.FailedRun(), "app-db")
	if err := d.Notify(t.Context(), ev); err != nil {
		t.Fatalf("two 5xx then 200 must be delivered: %v", err)
	}
	got := rc.requests()
	if len(got) != 3 {
		t.Fatalf("got %d attempts, want 3", len(got))
	}
	id := got[0].header.Get("X-Lifeboat-Delivery")
	for _, r := range got {
		if r.header.Get("X-Lifeboat-Delivery") != id || id == "" {
			t.Errorf("retries must carry the same delivery id: %q vs %q", r.header.Get("X-Lifeboat-Delivery"), id)
		}
	}

	// Now the endpoint is down for good: the run still completes.
	rc.mu.Lock()
	rc.statuses = []int{500, 500, 500, 500, 500, 500}
	rc.mu.Unlock()
	logs.Reset()
	d.RunFinished(t.Context(), notifytest.FailedRun())
	if n := len(rc.requests()) - 3; n != 6 {
		t.Errorf("got %d attempts for two events, want 3 each", n)
	}
	if !strings.Contains(logs.String(), "notification given up") || !strings.Contains(logs.String(), "500 Internal Server Error") {
		t.Errorf("giving up must be logged with the reason:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), urlToken) {
		t.Error("the URL token leaked into the logs")
	}
}

func TestStarts(t *testing.T) {
	rc := &receiver{}
	d := setup(t, rc, "    starts: true\n", nil)
	d.RunStarted(t.Context(), report.Backup, "app-db")
	d.RunFinished(t.Context(), notifytest.FailedRun())
	var events []string
	for _, r := range rc.requests() {
		events = append(events, r.header.Get("X-Lifeboat-Event"))
	}
	if strings.Join(events, " ") != "run_started run_failed run_succeeded" && strings.Join(events, " ") != "run_started run_succeeded run_failed" {
		t.Errorf("events %v; want a start, then with the follower default on: both outcomes", events)
	}
}

func TestUnsigned(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	n, err := webhook.New(&webhook.Config{URL: config.NewSecret(srv.URL)}, notify.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(t.Context(), notifytest.OverdueEvent()); err != nil {
		t.Fatal(err)
	}
	if h := rc.requests()[0].header; h.Get("X-Lifeboat-Signature") != "" || h.Get("X-Lifeboat-Timestamp") == "" {
		t.Errorf("without a secret there is no signature, but a timestamp: %v", h)
	}
	if _, err := webhook.New(&webhook.Config{URL: config.NewSecret("mailto:x@example.org")}, notify.Deps{}); err == nil {
		t.Error("a non-HTTP URL must be refused")
	}
}
