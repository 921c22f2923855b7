package email_test

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/notify"
	"github.com/lifeboat-backup/lifeboat/internal/notify/email"
	"github.com/lifeboat-backup/lifeboat/internal/notify/notifytest"
	"github.com/lifeboat-backup/lifeboat/internal/testutil/smtptest"
)

// The golden files in testdata/ were produced with
//
//	go test ./internal/notify/email -run TestGolden -update
//
// from the notifytest fixtures, and reviewed by reading them (the .html
// ones also in a browser).
var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestGolden(t *testing.T) {
	for name, ev := range map[string]notify.Event{
		"failed":    notifytest.Event(t, notifytest.FailedRun(), "app-db"),
		"succeeded": notifytest.Event(t, notifytest.FailedRun(), "uploads"),
		"suspect":   notifytest.Event(t, notifytest.SuspectRun(), "app-db"),
		"drill":     notifytest.Event(t, notifytest.DrillRun(), "app-db"),
		"overdue":   notifytest.OverdueEvent(),
	} {
		t.Run(name, func(t *testing.T) {
			text, html, err := email.Render(ev)
			if err != nil {
				t.Fatal(err)
			}
			notifytest.Golden(t, "testdata/"+name+".txt.golden", []byte(email.Subject(ev)+"\n\n"+text), *update)
			notifytest.Golden(t, "testdata/"+name+".html.golden", []byte(html), *update)
			if strings.Contains(html, "<html> &") {
				t.Error("stderr must be escaped in HTML")
			}
		})
	}
}

const (
	smtpUser = "lifeboat@example.org"
	smtpPass = "smtp-pa55word-xyz"
	dbPass   = "S3cretDbPassw0rd"
)

func env() map[string]string {
	return map[string]string{"SMTP_PASSWORD": smtpPass, "DB_PASSWORD": dbPass}
}

// setup parses a config with one email notifier pointing at srv and builds
// a dispatcher with fast retries.
func setup(t *testing.T, srv *smtptest.Server, extra string) *notify.Dispatcher {
	t.Helper()
	yaml := fmt.Sprintf(`
storages:
  local: {type: local, path: ./backups}
defaults:
  storages: [local]
sources:
  app-db: {type: test, password: "${env:DB_PASSWORD}"}
  uploads: {type: test}
notifiers:
  ops:
    type: email
    host: %s
    port: %d
    username: %s
    password: ${env:SMTP_PASSWORD}
    from: Lifeboat <lifeboat@example.org>
    to: [ops@example.org, "Dev Team <dev@example.org>"]
    ca_file: %s
    on: [failure, suspect, overdue]
%s
summary:
  to: [ops]
`, srv.Host, srv.Port, smtpUser, srv.CAFile, extra)
	cfg := notifytest.Config(t, yaml, env(), map[string]func() config.Spec{
		"email": func() config.Spec { return email.DefaultConfig() },
	})
	ns, err := notify.Build(cfg, map[string]notify.Factory{"email": notify.Typed(email.New)},
		notify.Deps{Now: notifytest.T0})
	if err != nil {
		t.Fatal(err)
	}
	d, err := notify.NewDispatcher(cfg, ns, notify.Options{Backoff: time.Millisecond, Host: "web1", Now: notifytest.T0,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestFailureMail(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Username: smtpUser, Password: smtpPass})
	d := setup(t, srv, "")
	run := notifytest.FailedRun()
	// A tool that echoes its DSN must not leak the password into the mail.
	run.Items[0].StderrTail += "\nconnecting to postgres://backup:" + dbPass + "@db.internal/app"
	d.RunFinished(t.Context(), run)

	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d messages, want 1 (uploads succeeded, and ops is not told about success)", len(msgs))
	}
	m := msgs[0]
	if !m.TLS || m.User != smtpUser {
		t.Errorf("message sent with TLS=%v user=%q; want STARTTLS and AUTH", m.TLS, m.User)
	}
	if m.From != "lifeboat@example.org" || strings.Join(m.To, ",") != "ops@example.org,dev@example.org" {
		t.Errorf("envelope from %q to %v", m.From, m.To)
	}
	if got, want := m.Subject(), "[lifeboat] FAILED backup app-db on web1"; got != want {
		t.Errorf("subject %q, want %q", got, want)
	}
	if m.Header("Auto-Submitted") != "auto-generated" || m.Header("X-Lifeboat-Event") != "run_failed" {
		t.Errorf("headers: Auto-Submitted %q, X-Lifeboat-Event %q", m.Header("Auto-Submitted"), m.Header("X-Lifeboat-Event"))
	}
	text, html := m.Text(), m.HTML()
	for _, want := range []string{"app-db", "web1", "pg_dump exited with status 1", `role "backup" does not exist`, "r-7f3a9c"} {
		if !strings.Contains(text, want) {
			t.Errorf("text part lacks %q:\n%s", want, text)
		}
	}
	if !strings.Contains(html, "role &#34;backup&#34; does not exist") || !strings.Contains(html, "&lt;html&gt; &amp; &#39;quotes&#39;") {
		t.Errorf("HTML part lacks the escaped stderr:\n%s", html)
	}
	raw := string(m.Data)
	for _, secret := range []string{smtpPass, dbPass} {
		if strings.Contains(raw, secret) || strings.Contains(text, secret) || strings.Contains(html, secret) {
			t.Errorf("secret %q appears in the mail", secret)
		}
	}
	if !strings.Contains(text, "postgres://backup:") || !strings.Contains(text, "@db.internal/app") {
		t.Errorf("the redacted DSN should still be recognisable:\n%s", text)
	}
}

func TestSummaryMail(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Username: smtpUser, Password: smtpPass})
	d := setup(t, srv, "")
	if err := d.Summary(t.Context(), notifytest.Summary()); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d messages", len(msgs))
	}
	m := msgs[0]
	if got := m.Subject(); got != "[lifeboat] daily summary from web1: 4 sources: 1 ok, 1 failed, 1 overdue, 1 idle" {
		t.Errorf("subject %q", got)
	}
	parts, err := m.Parts()
	if err != nil {
		t.Fatal(err)
	}
	text, html := parts["text/plain"], parts["text/html"]
	for _, want := range []string{"app-db", "uploads", "OVERDUE", "maildir /srv/mail: permission denied", "120 GB free", "restored in 1m3s"} {
		if !strings.Contains(text, want) {
			t.Errorf("text part lacks %q:\n%s", want, text)
		}
		if !strings.Contains(html, want) {
			t.Errorf("HTML part lacks %q", want)
		}
	}
	if !strings.Contains(html, "<table") || !strings.Contains(html, "&lt;more&gt;") || strings.Contains(html, "<more>") {
		t.Errorf("HTML part is not an escaped HTML table:\n%s", html)
	}
}

func TestRetryThenDeliver(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Username: smtpUser, Password: smtpPass, FailFirst: 2})
	d := setup(t, srv, "")
	d.Overdue(t.Context(), "uploads", notifytest.T0().Add(-30*time.Hour), 24*time.Hour)
	if srv.Failed() != 2 || len(srv.Messages()) != 1 {
		t.Fatalf("failed %d times, delivered %d; want 2 temporary failures then the message", srv.Failed(), len(srv.Messages()))
	}
	if got := srv.Messages()[0].Subject(); got != "[lifeboat] OVERDUE uploads on web1: newest backup 1d6h old (RPO 1d)" {
		t.Errorf("subject %q", got)
	}
}

func TestTLSIsMandatory(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{TLS: smtptest.NoTLS})
	yaml := fmt.Sprintf(`
notifiers:
  ops: {type: email, host: %s, port: %d, from: a@example.org, to: [b@example.org], auth: none}
summary: {to: [ops]}
`, srv.Host, srv.Port)
	cfg := notifytest.Config(t, yaml, nil, map[string]func() config.Spec{"email": func() config.Spec { return email.DefaultConfig() }})
	ns, err := notify.Build(cfg, map[string]notify.Factory{"email": notify.Typed(email.New)}, notify.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := notify.NewDispatcher(cfg, ns, notify.Options{Backoff: time.Millisecond, Attempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	err = d.Summary(t.Context(), notifytest.Summary())
	if err == nil || len(srv.Messages()) != 0 {
		t.Fatalf("a server without STARTTLS must not get the mail by default: err %v, %d messages", err, len(srv.Messages()))
	}
	if !strings.Contains(err.Error(), "ops") {
		t.Errorf("the error should name the notifier: %v", err)
	}
}

func TestImplicitTLSAndLogin(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{TLS: smtptest.Implicit, Username: smtpUser, Password: smtpPass})
	n, err := email.New(&email.Config{Host: srv.Host, Port: srv.Port, TLS: "tls", Auth: "login", Username: smtpUser,
		Password: config.NewSecret(smtpPass), From: "a@example.org", To: []string{"b@example.org"}, CAFile: srv.CAFile},
		notify.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(t.Context(), notifytest.Event(t, notifytest.DrillRun(), "app-db")); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 || !msgs[0].TLS || msgs[0].Subject() != "[lifeboat] FAILED drill app-db on web1" {
		t.Fatalf("messages: %+v", msgs)
	}
}

func TestWrongPassword(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Username: smtpUser, Password: smtpPass})
	n, err := email.New(&email.Config{Host: srv.Host, Port: srv.Port, TLS: "starttls", Username: smtpUser,
		Password: config.NewSecret("not-the-password"), From: "a@example.org", To: []string{"b@example.org"}, CAFile: srv.CAFile},
		notify.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	err = n.Notify(t.Context(), notifytest.OverdueEvent())
	if err == nil {
		t.Fatal("a wrong password must fail")
	}
	if strings.Contains(err.Error(), "not-the-password") {
		t.Errorf("the error contains the password: %v", err)
	}
}

func TestValidate(t *testing.T) {
	ok := func() *email.Config {
		c := email.DefaultConfig()
		c.Host, c.From, c.To = "smtp.example.org", "a@example.org", []string{"b@example.org"}
		return c
	}
	for name, tc := range map[string]struct {
		mod   func(*email.Config)
		field string
	}{
		"ok":                {func(*email.Config) {}, ""},
		"no host":           {func(c *email.Config) { c.Host = "" }, "host"},
		"bad from":          {func(c *email.Config) { c.From = "not an address" }, "from"},
		"no to":             {func(c *email.Config) { c.To = nil }, "to"},
		"bad to":            {func(c *email.Config) { c.To = []string{"x"} }, "to[0]"},
		"bad tls":           {func(c *email.Config) { c.TLS = "ssl" }, "tls"},
		"bad auth":          {func(c *email.Config) { c.Auth = "xoauth" }, "auth"},
		"user, no password": {func(c *email.Config) { c.Username = "u" }, "password"},
		"auth without user": {func(c *email.Config) { c.Auth = "login" }, "username"},
		"password in clear": {func(c *email.Config) { c.Username, c.Password, c.TLS = "u", config.NewSecret("p"), "none" }, "tls"},
		"bad port":          {func(c *email.Config) { c.Port = 70000 }, "port"},
	} {
		t.Run(name, func(t *testing.T) {
			c := ok()
			tc.mod(c)
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var fe *config.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("error %v, want one on field %s", err, tc.field)
			}
		})
	}
}
