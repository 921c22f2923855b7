// Package email sends notifications by SMTP, as plain text with an HTML
// alternative, through github.com/wneessen/go-mail.
//
// TLS is mandatory by default: with `tls: starttls` (the default) the
// connection is upgraded with STARTTLS and the message is not sent when the
// server does not offer it; `tls: tls` speaks TLS from the start (port 465);
// `tls: none` sends in clear and then refuses to authenticate, because that
// would send the password in clear.
package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"slices"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/notify"
)

// Config is a `type: email` notifier.
//
//	notifiers:
//	  ops-mail:
//	    type: email
//	    host: smtp.example.com
//	    port: 587              # default: 587 for starttls, 465 for tls, 25 for none
//	    username: lifeboat@example.com
//	    password: ${env:SMTP_PASSWORD}
//	    from: lifeboat@example.com
//	    to: [ops@example.com]
//	    tls: starttls          # starttls (default, mandatory), tls, none
//	    auth: plain            # plain (default with a username), login, cram-md5, none
//	    on: [failure, overdue, summary]
type Config struct {
	Host     string        `yaml:"host"`
	Port     int           `yaml:"port"`
	Username string        `yaml:"username"`
	Password config.Secret `yaml:"password"`
	From     string        `yaml:"from"`
	To       []string      `yaml:"to"`
	TLS      string        `yaml:"tls"`
	Auth     string        `yaml:"auth"`
	// CAFile is a PEM bundle trusted in addition to the system's, for a
	// server with a private CA.
	CAFile string `yaml:"ca_file"`
	// Timeout bounds connecting and each SMTP command (default 30s).
	Timeout config.Duration `yaml:"timeout"`
}

// DefaultConfig returns the defaults the file's keys are decoded over.
func DefaultConfig() *Config { return &Config{TLS: "starttls"} }

// Validate implements config.Spec.
func (c *Config) Validate() error {
	var errs []error
	if c.Host == "" {
		errs = append(errs, config.Errorf("host", "the SMTP server, for example `host: smtp.example.com`", "host is required"))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, config.Errorf("port", "leave it out for the default of the tls mode", "port %d is not a TCP port", c.Port))
	}
	if c.From == "" {
		errs = append(errs, config.Errorf("from", "for example `from: lifeboat@example.com`", "from is required"))
	} else if _, err := mail.ParseAddress(c.From); err != nil {
		errs = append(errs, config.Errorf("from", "", "from %q is not an email address", c.From))
	}
	if len(c.To) == 0 {
		errs = append(errs, config.Errorf("to", "for example `to: [ops@example.com]`", "to needs at least one address"))
	}
	for i, a := range c.To {
		if _, err := mail.ParseAddress(a); err != nil {
			errs = append(errs, config.Errorf(fmt.Sprintf("to[%d]", i), "", "%q is not an email address", a))
		}
	}
	if !slices.Contains([]string{"starttls", "tls", "none"}, c.TLS) {
		errs = append(errs, config.Errorf("tls", "use starttls (port 587), tls (port 465) or none", "unknown tls mode %q", c.TLS))
	}
	if !slices.Contains([]string{"", "plain", "login", "cram-md5", "none"}, c.Auth) {
		errs = append(errs, config.Errorf("auth", "use plain, login, cram-md5 or none", "unknown auth %q", c.Auth))
	}
	switch {
	case c.Auth != "none" && c.Auth != "" && c.Username == "":
		errs = append(errs, config.Errorf("username", "add username and password, or set auth: none", "auth %s needs a username", c.Auth))
	case c.Username != "" && c.Auth != "none" && !c.Password.IsSet():
		errs = append(errs, config.Errorf("password", "for example `password: ${env:SMTP_PASSWORD}`", "username is set but password is not"))
	}
	if c.TLS == "none" && c.Username != "" && c.Auth != "none" {
		errs = append(errs, config.Errorf("tls", "use tls: starttls or tls: tls", "authenticating without TLS would send the password in clear"))
	}
	return errors.Join(errs...)
}

func (c *Config) port() int {
	switch {
	case c.Port != 0:
		return c.Port
	case c.TLS == "tls":
		return 465
	case c.TLS == "none":
		return 25
	}
	return 587
}

// Notifier sends mail.
type Notifier struct {
	cfg  *Config
	opts []gomail.Option
	now  func() time.Time
}

var _ notify.Notifier = (*Notifier)(nil)

// New returns a notifier for cfg. It reads CAFile but does not connect.
func New(cfg *Config, deps notify.Deps) (*Notifier, error) {
	deps = deps.WithDefaults()
	timeout := cfg.Timeout.D()
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	tlsConf := &tls.Config{ServerName: cfg.Host, MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(config.Abs(deps.Dir, cfg.CAFile))
		if err != nil {
			return nil, fmt.Errorf("read ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", cfg.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	opts := []gomail.Option{
		gomail.WithPort(cfg.port()),
		gomail.WithTimeout(timeout),
		gomail.WithTLSConfig(tlsConf),
	}
	switch cfg.TLS {
	case "tls":
		opts = append(opts, gomail.WithSSL())
	case "none":
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if cfg.Username != "" && cfg.Auth != "none" {
		auth := map[string]gomail.SMTPAuthType{
			"": gomail.SMTPAuthPlain, "plain": gomail.SMTPAuthPlain,
			"login": gomail.SMTPAuthLogin, "cram-md5": gomail.SMTPAuthCramMD5,
		}[cfg.Auth]
		opts = append(opts, gomail.WithSMTPAuth(auth), gomail.WithUsername(cfg.Username),
			gomail.WithPassword(cfg.Password.Reveal()))
	}
	return &Notifier{cfg: cfg, opts: opts, now: deps.Now}, nil
}

// Notify sends one message for ev. Run events of kind RunStarted are not
// mailed (nobody wants a mail per start).
func (n *Notifier) Notify(ctx context.Context, ev notify.Event) error {
	if ev.Kind == notify.RunStarted {
		return nil
	}
	text, html, err := Render(ev)
	if err != nil {
		return notify.Permanent(err)
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(n.cfg.From); err != nil {
		return notify.Permanent(fmt.Errorf("set from address: %w", err))
	}
	if err := msg.To(n.cfg.To...); err != nil {
		return notify.Permanent(fmt.Errorf("set to addresses: %w", err))
	}
	msg.Subject(Subject(ev))
	msg.SetDateWithValue(n.now())
	msg.SetMessageID()
	msg.SetUserAgent("lifeboat")
	// RFC 3834: machines should not answer this (no vacation replies).
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetGenHeader("X-Lifeboat-Event", ev.Kind.String())
	msg.SetBodyString(gomail.TypeTextPlain, text)
	msg.AddAlternativeString(gomail.TypeTextHTML, html)

	client, err := gomail.NewClient(n.cfg.Host, n.opts...)
	if err != nil {
		return notify.Permanent(fmt.Errorf("set up smtp client for %s: %w", n.cfg.Host, err))
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		err = fmt.Errorf("send mail through %s:%d: %w", n.cfg.Host, n.cfg.port(), err)
		var se *gomail.SendError
		if errors.As(err, &se) && !se.IsTemp() && se.ErrorCode() >= 500 {
			return notify.Permanent(err)
		}
		return err
	}
	return nil
}

// Subject is the mail subject for ev: "[lifeboat] FAILED backup app-db on web1".
func Subject(ev notify.Event) string { return "[lifeboat] " + ev.Title() }
