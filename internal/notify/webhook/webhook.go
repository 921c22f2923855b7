// Package webhook POSTs every event as JSON to a URL of the user's choice,
// signed with HMAC-SHA256 so that the receiver can trust it.
//
// # Request
//
// The body is a [Payload] as JSON (Content-Type: application/json). The
// headers are:
//
//	X-Lifeboat-Event:     the event kind, e.g. run_failed
//	X-Lifeboat-Delivery:  an id that is the same for every retry of one event
//	X-Lifeboat-Timestamp: when this attempt was sent, in Unix seconds
//	X-Lifeboat-Signature: sha256=HEX (only when `secret:` is configured)
//
// HEX is the lowercase hex HMAC-SHA256, keyed with the secret, of the
// timestamp, a full stop, and the exact body bytes:
//
//	HMAC-SHA256(secret, X-Lifeboat-Timestamp + "." + body)
//
// The timestamp is inside the signature so that a captured request cannot
// be replayed later with a fresh timestamp.
//
// # Verifying a request
//
//  1. Read the raw body. Do not parse and re-encode the JSON first: the
//     signature is over the bytes as sent.
//  2. Read X-Lifeboat-Timestamp and reject the request if it is more than
//     five minutes away from your clock (replay protection).
//  3. Compute "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body))
//     and compare it with X-Lifeboat-Signature in constant time (Go:
//     hmac.Equal). Reject on mismatch.
//  4. Optionally remember X-Lifeboat-Delivery for the five minutes and drop
//     repeats: a retried delivery has the same id.
//
// In Go:
//
//	ts := r.Header.Get("X-Lifeboat-Timestamp")
//	sec, err := strconv.ParseInt(ts, 10, 64)
//	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
//		http.Error(w, "stale", http.StatusUnauthorized)
//		return
//	}
//	mac := hmac.New(sha256.New, []byte(secret))
//	mac.Write([]byte(ts + "."))
//	mac.Write(body)
//	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
//	if !hmac.Equal([]byte(want), []byte(r.Header.Get("X-Lifeboat-Signature"))) {
//		http.Error(w, "bad signature", http.StatusUnauthorized)
//		return
//	}
//
// In a shell, with the body saved to a file:
//
//	printf '%s.' "$ts" | cat - body.json | openssl dgst -sha256 -hmac "$secret"
//
// # Secrets
//
// Both `url` and `secret` are config.Secret values. The URL is a secret
// because receivers commonly authenticate callers by a token in the path or
// query (chat and automation services do); treating every webhook URL as a
// credential is safer than guessing which ones are. Errors name only the
// URL's scheme and host.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/notify"
	"github.com/lifeboat-backup/lifeboat/internal/report"
	"github.com/lifeboat-backup/lifeboat/internal/summary"
)

// Header names.
const (
	HeaderEvent     = "X-Lifeboat-Event"
	HeaderDelivery  = "X-Lifeboat-Delivery"
	HeaderTimestamp = "X-Lifeboat-Timestamp"
	HeaderSignature = "X-Lifeboat-Signature"
)

// PayloadVersion is the version of the JSON format; it changes only when a
// field changes meaning or disappears.
const PayloadVersion = 1

// Config is a `type: webhook` notifier.
//
//	notifiers:
//	  ops-hook:
//	    type: webhook
//	    url: ${env:LIFEBOAT_WEBHOOK_URL}
//	    secret: ${env:LIFEBOAT_WEBHOOK_SECRET}   # HMAC key; strongly recommended
//	    on: [failure, success, suspect, overdue, drill, summary]
type Config struct {
	URL    config.Secret `yaml:"url"`
	Secret config.Secret `yaml:"secret"`
	// Starts also posts run_started events when a run begins (the
	// notifier then follows runs: an empty `on:` means success, failure
	// and suspect).
	Starts bool `yaml:"starts"`
}

// DefaultConfig returns the defaults the file's keys are decoded over.
func DefaultConfig() *Config { return &Config{} }

// Validate implements config.Spec.
func (c *Config) Validate() error {
	if !c.URL.IsSet() {
		return config.Errorf("url", "for example `url: ${env:LIFEBOAT_WEBHOOK_URL}`", "url is required")
	}
	return nil
}

// Notifier posts to one URL.
type Notifier struct {
	starts bool
	url    string
	secret []byte
	client *http.Client
	now    func() time.Time
}

var _ notify.RunFollower = (*Notifier)(nil)

// FollowsRuns reports whether run_started events are wanted (`starts:`).
func (n *Notifier) FollowsRuns() bool { return n.starts }

// New returns a notifier for cfg (whose secrets must be resolved).
func New(cfg *Config, deps notify.Deps) (*Notifier, error) {
	deps = deps.WithDefaults()
	raw := cfg.URL.Reveal()
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("webhook url is not an http(s) URL")
	}
	n := &Notifier{url: raw, client: deps.HTTP, now: deps.Now, starts: cfg.Starts}
	if cfg.Secret.IsSet() {
		if cfg.Secret.Reveal() == "" {
			return nil, errors.New("webhook secret is empty")
		}
		n.secret = []byte(cfg.Secret.Reveal())
	}
	return n, nil
}

// Payload is the JSON body.
type Payload struct {
	Version  int         `json:"version"`
	Event    notify.Kind `json:"event"`
	Title    string      `json:"title"`
	Severity string      `json:"severity"` // ok, warning, failure
	Source   string      `json:"source,omitempty"`
	Host     string      `json:"host,omitempty"`
	RunID    string      `json:"run_id,omitempty"`
	RunKind  report.Kind `json:"run_kind,omitempty"`
	Started  *time.Time  `json:"started,omitempty"`
	Finished *time.Time  `json:"finished,omitempty"`
	// Bytes is the stored size of what the run committed.
	Bytes    int64  `json:"bytes,omitempty"`
	Location string `json:"location,omitempty"`
	Error    string `json:"error,omitempty"`
	Hint     string `json:"hint,omitempty"`
	// Overdue is set for overdue events.
	Overdue *Overdue `json:"overdue,omitempty"`
	// Report is the run's report for this source.
	Report *report.Run `json:"report,omitempty"`
	// Summary is set for summary events.
	Summary *summary.Summary `json:"summary,omitempty"`
}

// Overdue describes an overdue source.
type Overdue struct {
	// Newest is the newest good backup's time, absent when there is none.
	Newest     *time.Time `json:"newest,omitempty"`
	RPOSeconds float64    `json:"rpo_seconds"`
}

// NewPayload makes the payload for ev.
func NewPayload(ev notify.Event) Payload {
	p := Payload{
		Version: PayloadVersion, Event: ev.Kind, Title: ev.Title(), Severity: ev.Kind.Severity(),
		Source: ev.Source, Host: ev.Host, RunID: ev.RunID, RunKind: ev.RunKind,
		Started: timePtr(ev.Started), Finished: timePtr(ev.Finished),
		Bytes: ev.Bytes, Location: ev.Location, Report: ev.Report, Summary: ev.Summary,
	}
	p.Error, p.Hint = notify.ErrorText(ev.Err)
	if ev.Kind == notify.Overdue {
		p.Overdue = &Overdue{Newest: timePtr(ev.Newest), RPOSeconds: ev.RPO.Seconds()}
	}
	return p
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// Body encodes the payload for ev.
func Body(ev notify.Event) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(NewPayload(ev)); err != nil {
		return nil, fmt.Errorf("encode webhook payload: %w", err)
	}
	return b.Bytes(), nil
}

// Sign returns the X-Lifeboat-Signature value for body sent at timestamp ts.
func Sign(secret []byte, ts string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// DeliveryID is the same for every attempt to deliver one event.
func DeliveryID(ev notify.Event) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%d\x00%d", ev.Kind, ev.Source, ev.Host, ev.RunID,
		ev.Started.UnixNano(), ev.Finished.UnixNano())
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// Notify posts ev, whatever its kind.
func (n *Notifier) Notify(ctx context.Context, ev notify.Event) error {
	body, err := Body(ev)
	if err != nil {
		return notify.Permanent(err)
	}
	ts := strconv.FormatInt(n.now().Unix(), 10)
	h := http.Header{
		"Content-Type":  {"application/json"},
		"User-Agent":    {"lifeboat"},
		HeaderEvent:     {ev.Kind.String()},
		HeaderDelivery:  {DeliveryID(ev)},
		HeaderTimestamp: {ts},
	}
	if n.secret != nil {
		h.Set(HeaderSignature, Sign(n.secret, ts, body))
	}
	if err := notify.Post(ctx, n.client, n.url, h, body); err != nil {
		return fmt.Errorf("post webhook: %w", err)
	}
	return nil
}
