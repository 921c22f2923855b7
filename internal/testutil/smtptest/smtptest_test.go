package smtptest_test

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/lifeboat-backup/lifeboat/internal/testutil/smtptest"
)

const raw = "From: a@example.org\r\nTo: b@example.org\r\nSubject: =?UTF-8?q?caf=C3=A9?=\r\n" +
	"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=XX\r\n\r\n" +
	"--XX\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nh=C3=A9llo\r\n" +
	"--XX\r\nContent-Type: text/html; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+aGk8L2I+\r\n--XX--\r\n"

func send(t *testing.T, s *smtptest.Server, user, pass string) error {
	t.Helper()
	c, err := smtp.DialStartTLS(s.Addr, &tls.Config{RootCAs: s.CertPool, ServerName: s.Host})
	if err != nil {
		t.Fatalf("dial with starttls: %v", err)
	}
	defer c.Close()
	if user != "" {
		if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
			return err
		}
	}
	return c.SendMail("a@example.org", []string{"b@example.org"}, strings.NewReader(raw))
}

func TestReceive(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Username: "u", Password: "p", FailFirst: 1})
	if err := send(t, s, "u", "wrong"); err == nil {
		t.Fatal("a wrong password must be refused")
	}
	if err := send(t, s, "", ""); err == nil {
		t.Fatal("sending without AUTH must be refused when a user is set")
	}
	if err := send(t, s, "u", "p"); err == nil || !strings.Contains(err.Error(), "451") {
		t.Fatalf("the first message must be answered 451, got %v", err)
	}
	if err := send(t, s, "u", "p"); err != nil {
		t.Fatal(err)
	}
	msgs := s.Messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d messages", len(msgs))
	}
	m := msgs[0]
	if m.From != "a@example.org" || len(m.To) != 1 || m.User != "u" || !m.TLS {
		t.Errorf("envelope: %+v", m)
	}
	if m.Subject() != "café" || m.Text() != "héllo" || m.HTML() != "<b>hi</b>" {
		t.Errorf("subject %q text %q html %q", m.Subject(), m.Text(), m.HTML())
	}
	if s.Failed() != 1 {
		t.Errorf("failed = %d", s.Failed())
	}
}
