package cli_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/lifeboat-backup/lifeboat/internal/testutil/smtptest"
)

// A failed `lifeboat backup` (run from cron, no daemon) mails the failure
// through a real SMTP server, with the cause, and without secrets.
func TestBackupFailureIsMailed(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{TLS: smtptest.StartTLS, Username: "ops", Password: "smtp-secret-pw"})
	e := newEnv(t)
	e.vars["SMTP_PASSWORD"] = "smtp-secret-pw"
	e.writeConfig(baseConfig + fmt.Sprintf(`notifiers:
  ops-mail:
    type: email
    host: %s
    port: %d
    username: ops
    password: ${env:SMTP_PASSWORD}
    ca_file: %s
    from: lifeboat@example.com
    to: [ops@example.com]
    on: [failure, success]
`, srv.Host, srv.Port, srv.CAFile))
	os.Remove(e.path("app.db"))
	if r := e.run("backup"); r.code != 1 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	msgs := srv.Messages()
	if len(msgs) != 2 {
		t.Fatalf("%d mails, want 2 (one failure, one success)", len(msgs))
	}
	var failure *smtptest.Message
	for i := range msgs {
		if strings.Contains(msgs[i].Subject(), "FAILED") {
			failure = &msgs[i]
		}
		if strings.Contains(string(msgs[i].Data), "smtp-secret-pw") {
			t.Fatal("the SMTP password is in a mail")
		}
	}
	if failure == nil {
		t.Fatalf("no failure mail among: %q, %q", msgs[0].Subject(), msgs[1].Subject())
	}
	if !strings.Contains(failure.Subject(), "app-db") || !strings.Contains(failure.Text(), "app.db") {
		t.Fatalf("failure mail lacks the source or the cause:\nsubject %s\n%s", failure.Subject(), failure.Text())
	}
}
