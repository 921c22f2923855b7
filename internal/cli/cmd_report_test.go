package cli_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/testutil/smtptest"
)

func TestReport(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(baseConfig + `  old:
    type: files
    paths: [./uploads]
    rpo: 1h
summary:
  timezone: Europe/Berlin
`)
	e.mustRun("backup", "app-db", "uploads")

	text := e.mustRun("report")
	for _, want := range []string{"Lifeboat summary, testhost: the 24h up to", "3 sources: 2 ok, 1 overdue",
		"app-db", "uploads", "old", "OVERDUE", "never (RPO 1h)", "CET", "Storages:", "here", "2 backups"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}

	html := e.mustRun("report", "--html", "--since", "7d")
	if !strings.Contains(html, "<table") || !strings.Contains(html, "the 7d up to") {
		t.Errorf("report --html:\n%s", html)
	}

	var sum struct {
		Sources []struct {
			Name    string `json:"name"`
			Status  string `json:"status"`
			Backups int    `json:"backups"`
		} `json:"sources"`
	}
	if err := json.Unmarshal([]byte(e.mustRun("report", "--json")), &sum); err != nil {
		t.Fatal(err)
	}
	if len(sum.Sources) != 3 || sum.Sources[0].Name != "app-db" || sum.Sources[0].Backups != 1 || sum.Sources[2].Status != "overdue" {
		t.Errorf("report --json: %+v", sum)
	}

	// A day later nothing is new: sizes and counts go, the newest stays.
	e.now = func() time.Time { return time.Now().Add(25 * time.Hour) }
	later := e.mustRun("report")
	if !strings.Contains(later, "3 sources: 1 overdue, 2 idle") || !strings.Contains(later, "(1d1h ago)") {
		t.Errorf("a day later:\n%s", later)
	}
}

func TestReportUsage(t *testing.T) {
	e := newEnv(t)
	if r := e.run("report", "--since", "yesterday"); r.code != 2 || !strings.Contains(r.stderr, "--since") {
		t.Errorf("bad --since: exit %d\n%s", r.code, r.stderr)
	}
	if r := e.run("report", "--html", "--json"); r.code != 2 {
		t.Errorf("--html --json: exit %d", r.code)
	}
	if r := e.run("report", "--send"); r.code != 1 || !strings.Contains(r.stderr, "summary.to") {
		t.Errorf("--send with no summary notifier: exit %d\n%s", r.code, r.stderr)
	}
	e.writeConfig(baseConfig + "summary: {timezone: Mars/Olympus}\n")
	if r := e.run("report"); r.code != 2 || !strings.Contains(r.stderr, "Mars/Olympus") {
		t.Errorf("bad timezone: exit %d\n%s", r.code, r.stderr)
	}
}

func TestReportSend(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Username: "lb", Password: "smtp-secret-pw"})
	e := newEnv(t)
	e.vars["SMTP_PASSWORD"] = "smtp-secret-pw"
	e.writeConfig(baseConfig + fmt.Sprintf(`notifiers:
  ops:
    type: email
    host: %s
    port: %d
    username: lb
    password: ${env:SMTP_PASSWORD}
    from: lifeboat@example.org
    to: [ops@example.org]
    ca_file: %s
summary:
  to: [ops]
`, srv.Host, srv.Port, srv.CAFile))
	e.mustRun("backup")
	out := e.mustRun("report", "--send")
	if !strings.Contains(out, "Summary sent to ops.") {
		t.Errorf("stdout: %q", out)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	if !strings.HasPrefix(m.Subject(), "[lifeboat] daily summary from testhost: 2 sources: 2 ok") {
		t.Errorf("subject %q", m.Subject())
	}
	if !strings.Contains(m.Text(), "app-db") || !strings.Contains(m.HTML(), "<table") {
		t.Errorf("text:\n%s\nhtml:\n%s", m.Text(), m.HTML())
	}
	if strings.Contains(string(m.Data), "smtp-secret-pw") {
		t.Error("the SMTP password is in the mail")
	}
}
