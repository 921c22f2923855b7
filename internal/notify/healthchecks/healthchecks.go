// Package healthchecks pings a check in the healthchecks.io convention
// (https://healthchecks.io/docs/http_api/), which self-hosted Healthchecks
// and compatible services (Uptime Kuma's push monitors, Cronitor's
// healthchecks-style URLs) also follow:
//
//	{url}/start   when a backup run of the source starts
//	{url}         when it succeeded (body: what was stored)
//	{url}/fail    when it failed, was partial, or is suspect (body: why)
//
// The service then alarms on its own when a ping is missing, which is the
// one alarm lifeboat itself cannot raise when the whole host is down.
//
// Only backup runs ping: a drill or prune succeeding must not make an
// overdue backup look fine. Overdue and summary events are ignored (the
// service has its own schedule).
//
// # Secrets
//
// The ping URL contains the check's UUID (or the project's ping key), and
// anyone who knows it can make the check look healthy. It is a
// config.Secret, and errors name only its host.
package healthchecks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/notify"
	"github.com/lifeboat-backup/lifeboat/internal/report"
	"github.com/lifeboat-backup/lifeboat/internal/summary"
)

// maxBody bounds a ping body (healthchecks.io keeps the first 100 kB).
const maxBody = 10 << 10

// Config is a `type: healthchecks` notifier.
//
//	notifiers:
//	  hc:
//	    type: healthchecks
//	    url: ${env:HC_PING_URL}   # https://hc-ping.com/<uuid>, or https://hc-ping.com/<ping-key>
//	    per_source: true          # ping {url}/{source}: one check per source, by slug
//
// `on:` may be left out: healthchecks follows runs, so an empty list means
// success, failure and suspect.
type Config struct {
	URL config.Secret `yaml:"url"`
	// PerSource appends "/{source}" to the URL, healthchecks.io's
	// "ping key + slug" form, so that one notifier serves a check per
	// source. Without it every source pings the same check; give each
	// source its own notifier (`notify:` per source) to keep them apart.
	PerSource bool `yaml:"per_source"`
}

// DefaultConfig returns the defaults the file's keys are decoded over.
func DefaultConfig() *Config { return &Config{} }

// Validate implements config.Spec.
func (c *Config) Validate() error {
	if !c.URL.IsSet() {
		return config.Errorf("url", "for example `url: ${env:HC_PING_URL}` (the check's ping URL)", "url is required")
	}
	return nil
}

// Notifier pings one check (or one per source).
type Notifier struct {
	base      string
	perSource bool
	client    *http.Client
}

var _ notify.RunFollower = (*Notifier)(nil)

// New returns a notifier for cfg (whose URL must be resolved).
func New(cfg *Config, deps notify.Deps) (*Notifier, error) {
	deps = deps.WithDefaults()
	raw := strings.TrimRight(cfg.URL.Reveal(), "/")
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("healthchecks url is not an http(s) URL: expected https://hc-ping.com/<uuid>")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("healthchecks url must not have a query or fragment: give the plain ping URL")
	}
	return &Notifier{base: raw, perSource: cfg.PerSource, client: deps.HTTP}, nil
}

// FollowsRuns implements notify.RunFollower: pings start with the run.
func (n *Notifier) FollowsRuns() bool { return true }

// Notify pings for backup runs and ignores everything else.
func (n *Notifier) Notify(ctx context.Context, ev notify.Event) error {
	if ev.RunKind != report.Backup {
		return nil
	}
	var suffix, body string
	switch ev.Kind {
	case notify.RunStarted:
		suffix = "/start"
	case notify.RunSucceeded:
		body = successBody(ev)
	case notify.RunFailed, notify.RunPartial, notify.RunSuspect:
		suffix, body = "/fail", failBody(ev)
	default:
		return nil
	}
	u := n.base
	if n.perSource && ev.Source != "" {
		u += "/" + url.PathEscape(ev.Source)
	}
	u += suffix
	h := http.Header{"Content-Type": {"text/plain; charset=utf-8"}, "User-Agent": {"lifeboat"}}
	if err := notify.Post(ctx, n.client, u, h, []byte(body)); err != nil {
		return fmt.Errorf("ping healthchecks%s: %w", suffix, err)
	}
	return nil
}

// PingBody returns the body sent for ev (empty for start pings).
func PingBody(ev notify.Event) string {
	switch ev.Kind {
	case notify.RunSucceeded:
		return successBody(ev)
	case notify.RunFailed, notify.RunPartial, notify.RunSuspect:
		return failBody(ev)
	}
	return ""
}

func successBody(ev notify.Event) string {
	s := fmt.Sprintf("%s: %s stored in %s", ev.Title(), summary.Bytes(ev.Bytes), ev.Duration().Round(time.Second))
	if ev.Location != "" {
		s += "\n" + ev.Location
	}
	return s + "\n"
}

func failBody(ev notify.Event) string {
	var b strings.Builder
	b.WriteString(ev.Title() + "\n")
	if msg, hint := notify.ErrorText(ev.Err); msg != "" {
		b.WriteString(msg + "\n")
		if hint != "" {
			b.WriteString("hint: " + hint + "\n")
		}
	}
	if ev.Report != nil {
		for _, it := range ev.Report.Items {
			if it.StderrTail != "" {
				b.WriteString("\nstderr (last lines):\n" + it.StderrTail + "\n")
			}
		}
	}
	s := b.String()
	if len(s) > maxBody {
		s = strings.ToValidUTF8(s[:maxBody-len("\n[truncated]\n")], "") + "\n[truncated]\n"
	}
	return s
}
