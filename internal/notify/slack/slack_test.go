package slack_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/notify"
	"github.com/lifeboat-backup/lifeboat/internal/notify/notifytest"
	"github.com/lifeboat-backup/lifeboat/internal/notify/slack"
)

// The golden files in testdata/ were produced with
//
//	go test ./internal/notify/slack -run TestGolden -update
//
// from the notifytest fixtures, and checked in Slack's Block Kit Builder.
var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const secretPath = "/services/T0001/B0002/s3cr3tW3bh00kT0k3n"

func TestGolden(t *testing.T) {
	for name, ev := range map[string]notify.Event{
		"failed":    notifytest.Event(t, notifytest.FailedRun(), "app-db"),
		"succeeded": notifytest.Event(t, notifytest.FailedRun(), "uploads"),
		"suspect":   notifytest.Event(t, notifytest.SuspectRun(), "app-db"),
		"overdue":   notifytest.OverdueEvent(),
		"summary":   {Kind: notify.Summary, Summary: notifytest.Summary()},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := slack.Payload(ev, "#ops")
			if err != nil {
				t.Fatal(err)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, b, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteString("\n")
			notifytest.Golden(t, "testdata/"+name+".json.golden", pretty.Bytes(), *update)
			if strings.Contains(string(b), "<html>") {
				t.Error("< and > must be escaped for mrkdwn")
			}
		})
	}
}

// hook is a loopback HTTP server standing in for Slack.
type hook struct {
	mu     sync.Mutex
	bodies [][]byte
	paths  []string
	status int
	answer string
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.bodies = append(h.bodies, b)
	h.paths = append(h.paths, r.URL.Path)
	status, answer := h.status, h.answer
	h.mu.Unlock()
	if r.Header.Get("Content-Type") != "application/json" {
		status, answer = http.StatusBadRequest, "invalid_payload"
	}
	w.WriteHeader(status)
	io.WriteString(w, answer)
}

func dispatcher(t *testing.T, url string) *notify.Dispatcher {
	t.Helper()
	cfg := notifytest.Config(t, `
storages:
  local: {type: local, path: ./b}
defaults: {storages: [local]}
sources:
  app-db: {type: test}
notifiers:
  chat:
    type: slack
    url: ${env:SLACK_URL}
    channel: "#ops"
    on: [failure, success]
`, map[string]string{"SLACK_URL": url}, map[string]func() config.Spec{"slack": func() config.Spec { return slack.DefaultConfig() }})
	ns, err := notify.Build(cfg, map[string]notify.Factory{"slack": notify.Typed(slack.New)}, notify.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	t.Cleanup(func() {
		if strings.Contains(logs.String(), "s3cr3tW3bh00kT0k3n") {
			t.Errorf("the webhook URL appears in the logs:\n%s", logs.String())
		}
	})
	d, err := notify.NewDispatcher(cfg, ns, notify.Options{Backoff: time.Millisecond, Attempts: 3,
		Logger: notifytest.Logger(t, &logs)})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPost(t *testing.T) {
	h := &hook{status: 200, answer: "ok"}
	srv := httptest.NewServer(h)
	defer srv.Close()
	d := dispatcher(t, srv.URL+secretPath)
	d.RunFinished(t.Context(), notifytest.FailedRun())

	if len(h.bodies) != 2 || h.paths[0] != secretPath {
		t.Fatalf("got %d posts to %v; want two (app-db failed, uploads succeeded)", len(h.bodies), h.paths)
	}
	var m slack.Message
	var body []byte
	for _, b := range h.bodies {
		if bytes.Contains(b, []byte("app-db")) {
			body = b
		}
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if m.Channel != "#ops" || m.Text != "FAILED backup app-db on web1" || m.Blocks[0].Type != "header" {
		t.Errorf("message: %+v", m)
	}
	if !strings.Contains(string(body), "role \\\"backup\\\" does not exist") {
		t.Errorf("the stderr tail is missing:\n%s", body)
	}
}

func TestRejected(t *testing.T) {
	h := &hook{status: http.StatusNotFound, answer: "no_service"}
	srv := httptest.NewServer(h)
	defer srv.Close()
	d := dispatcher(t, srv.URL+secretPath)
	ev := notifytest.Event(t, notifytest.FailedRun(), "app-db")
	err := d.Notify(t.Context(), ev)
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "no_service") {
		t.Fatalf("error %v, want the 404 and Slack's reason", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "/services/") {
		t.Errorf("the error leaks the webhook path: %v", err)
	}
	if len(h.bodies) != 1 {
		t.Errorf("a 404 is not retried; got %d attempts", len(h.bodies))
	}
}

func TestNewRejectsNonHTTP(t *testing.T) {
	_, err := slack.New(&slack.Config{URL: config.NewSecret("ftp://hooks.example/x/secret")}, notify.Deps{})
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("error %v", err)
	}
	if err := (&slack.Config{}).Validate(); err == nil {
		t.Error("a missing url must be a config error")
	}
}
