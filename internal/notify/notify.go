package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/report"
	"github.com/lifeboat-backup/lifeboat/internal/summary"
)

// Notifier delivers events to one destination.
//
// Notify sends ev once and returns nil when the destination accepted it. It
// does not retry: the [Dispatcher] does, unless the error is marked
// [Permanent]. Notify must not modify ev (it is shared between notifiers)
// and must not put credentials into its error.
type Notifier interface {
	Notify(ctx context.Context, ev Event) error
}

// RunFollower is implemented by notifiers that follow a run from its start
// (healthchecks-style pings measure the run and alarm when the end never
// comes). They receive [RunStarted] events, and their empty `on:` list means
// success, failure and suspect rather than the default.
type RunFollower interface {
	Notifier
	FollowsRuns() bool
}

// Kind is what an event is about.
type Kind int

const (
	RunStarted Kind = iota + 1
	RunSucceeded
	RunFailed
	RunPartial
	RunSuspect
	Overdue
	DrillFailed
	DrillSucceeded
	Summary
)

var kindNames = [...]string{
	RunStarted:     "run_started",
	RunSucceeded:   "run_succeeded",
	RunFailed:      "run_failed",
	RunPartial:     "run_partial",
	RunSuspect:     "run_suspect",
	Overdue:        "overdue",
	DrillFailed:    "drill_failed",
	DrillSucceeded: "drill_succeeded",
	Summary:        "summary",
}

// String returns the kind's stable name ("run_failed"), used in webhook
// payloads and logs.
func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// MarshalText makes a Kind appear by name in JSON.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText parses a kind's name.
func (k *Kind) UnmarshalText(b []byte) error {
	for i, n := range kindNames {
		if n != "" && n == string(b) {
			*k = Kind(i)
			return nil
		}
	}
	return fmt.Errorf("unknown event kind %q", b)
}

// Word is the status word shown to people: OK, FAILED, PARTIAL, SUSPECT,
// OVERDUE, STARTED, SUMMARY.
func (k Kind) Word() string {
	switch k {
	case RunStarted:
		return "STARTED"
	case RunSucceeded, DrillSucceeded:
		return "OK"
	case RunFailed, DrillFailed:
		return "FAILED"
	case RunPartial:
		return "PARTIAL"
	case RunSuspect:
		return "SUSPECT"
	case Overdue:
		return "OVERDUE"
	case Summary:
		return "SUMMARY"
	}
	return strings.ToUpper(k.String())
}

// IsFailure reports whether the event is bad news that needs someone.
func (k Kind) IsFailure() bool {
	return k == RunFailed || k == RunPartial || k == DrillFailed || k == Overdue
}

// Severity is "ok", "warning" or "failure", for colours and icons.
func (k Kind) Severity() string {
	switch {
	case k.IsFailure():
		return "failure"
	case k == RunSuspect:
		return "warning"
	}
	return "ok"
}

// events returns the `on:` values that select k.
func (k Kind) events() []string {
	switch k {
	case RunSucceeded:
		return []string{"success"}
	case RunFailed, RunPartial:
		return []string{"failure"}
	case RunSuspect:
		return []string{"suspect"}
	case Overdue:
		return []string{"overdue"}
	case DrillSucceeded:
		return []string{"drill"}
	case DrillFailed:
		return []string{"drill", "failure"}
	case Summary:
		return []string{"summary"}
	}
	return nil
}

// Event is one thing to tell people about.
type Event struct {
	Kind Kind
	// Source is the source the event is about; empty for Summary and for a
	// run that failed before reaching any source.
	Source string
	// RunKind is what ran (backup, drill, ...); empty for Overdue and Summary.
	RunKind report.Kind
	Host    string
	RunID   string
	// Started and Finished bound the run; for Overdue, Finished is when the
	// check was made.
	Started, Finished time.Time
	// Bytes is the stored size of what the run committed.
	Bytes int64
	// Location is where it went: "storage:key", several joined by ", ".
	// Never a URL: storage names, not endpoints carrying credentials.
	Location string
	// Err is why the run failed or is suspect; nil on success. Render it
	// with [ErrorText] to include its hint.
	Err error
	// Report is the run's report restricted to Source's items.
	Report *report.Run
	// Summary is set for Summary events.
	Summary *summary.Summary
	// Newest is the newest good backup's time (zero: none) and RPO the
	// source's recovery point objective, for Overdue events.
	Newest time.Time
	RPO    time.Duration
}

// Title is a one-line description: "FAILED backup app-db on web1",
// "OVERDUE app-db on web1: newest backup 1d6h old (RPO 1d)".
func (ev Event) Title() string {
	on := ""
	if ev.Host != "" {
		on = " on " + ev.Host
	}
	src := ev.Source
	if src == "" {
		src = "(no source)"
	}
	switch ev.Kind {
	case Summary:
		if ev.Summary != nil {
			return ev.Summary.Subject()
		}
		return "daily summary" + on
	case Overdue:
		if ev.Newest.IsZero() {
			return fmt.Sprintf("OVERDUE %s%s: no backup yet (RPO %s)", src, on, summary.Span(ev.RPO))
		}
		return fmt.Sprintf("OVERDUE %s%s: newest backup %s old (RPO %s)", src, on,
			summary.Age(ev.Finished.Sub(ev.Newest)), summary.Span(ev.RPO))
	}
	what := string(ev.RunKind)
	if what == "" {
		what = "run"
	}
	return fmt.Sprintf("%s %s %s%s", ev.Kind.Word(), what, src, on)
}

// Duration is Finished - Started, or 0 when either is unknown.
func (ev Event) Duration() time.Duration {
	if ev.Started.IsZero() || ev.Finished.IsZero() {
		return 0
	}
	return ev.Finished.Sub(ev.Started)
}

// Hinter is implemented by errors that know what the user should try.
type Hinter interface {
	Hint() string
}

// ErrorText splits err into its message and, when some error in its chain
// implements [Hinter], the hint. Both are empty for a nil error.
func ErrorText(err error) (msg, hint string) {
	if err == nil {
		return "", ""
	}
	var h Hinter
	if errors.As(err, &h) {
		hint = h.Hint()
	}
	return err.Error(), hint
}

// hintError is an error with a hint, as built from a report or redacted.
type hintError struct{ msg, hint string }

func (e *hintError) Error() string { return e.msg }
func (e *hintError) Hint() string  { return e.hint }

// Deps are what notifier constructors take besides their Config.
type Deps struct {
	// HTTP is the client for HTTP notifiers; nil means [NewHTTPClient].
	HTTP *http.Client
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Dir resolves relative paths in the config (ca_file).
	Dir string
}

// WithDefaults fills in nil fields.
func (d Deps) WithDefaults() Deps {
	if d.HTTP == nil {
		d.HTTP = NewHTTPClient(30 * time.Second)
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return d
}

// NewHTTPClient returns a client whose every request gives up after timeout,
// with bounded dial and TLS handshake times, that does not follow redirects
// (a redirected POST to a webhook is a misconfiguration to report, not to
// follow with the payload).
func NewHTTPClient(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Factory constructs a notifier from its decoded config.
type Factory func(spec config.Spec, deps Deps) (Notifier, error)

// Typed adapts a notifier package's New to a [Factory]:
//
//	notify.Typed(email.New)
func Typed[C any, N Notifier](newFn func(*C, Deps) (N, error)) Factory {
	return func(spec config.Spec, deps Deps) (Notifier, error) {
		c, ok := any(spec).(*C)
		if !ok {
			return nil, fmt.Errorf("notifier config is %T, expected %T", spec, (*C)(nil))
		}
		return newFn(c, deps)
	}
}

// Build constructs every notifier of cfg with the factory for its type.
// Each gets deps with its name added to the logger.
func Build(cfg *config.Config, factories map[string]Factory, deps Deps) (map[string]Notifier, error) {
	deps = deps.WithDefaults()
	out := make(map[string]Notifier, len(cfg.NotifierNames))
	var errs []error
	for _, name := range cfg.NotifierNames {
		n := cfg.Notifiers[name]
		f, ok := factories[n.Type]
		if !ok {
			errs = append(errs, fmt.Errorf("notifier %s: type %q is not built into this lifeboat", name, n.Type))
			continue
		}
		d := deps
		d.Logger = deps.Logger.With("notifier", name)
		nt, err := f(n.Spec, d)
		if err != nil {
			errs = append(errs, fmt.Errorf("set up notifier %s: %w", name, err))
			continue
		}
		out[name] = nt
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// permanentError marks an error retrying will not fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying (a rejected request, a bad
// address). Nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err should not be retried.
func IsPermanent(err error) bool {
	var pe *permanentError
	return errors.As(err, &pe)
}
