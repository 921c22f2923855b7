// Package cli implements lifeboat's commands.
//
// Every command is built by a constructor taking the *App (no init(), no
// package-level flags), parses its options into a struct, and calls a runX
// function. Errors are returned, never printed here, except through the
// App's printer; only main maps them to stderr and an exit code.
package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/config"
)

// Exit codes, documented in `lifeboat --help`.
const (
	ExitOK          = 0
	ExitFailed      = 1
	ExitUsage       = 2
	ExitPartial     = 3
	ExitInterrupted = 130
)

// App is what commands share: streams, environment, clock, logger.
type App struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Env is the process environment, read once by main.
	Env config.Env
	// Now is the clock; tests inject a fixed one.
	Now func() time.Time
	// Hostname names this machine in artifact names and reports.
	Hostname string
	Version  string
	// Interactive reports whether a person is at the terminal (stdin and
	// stderr are terminals); confirmations are asked only then.
	Interactive bool
	// StderrTTY enables progress lines.
	StderrTTY bool

	// Global flags.
	ConfigPath string
	Identity   string
	LogLevel   string
	LogJSON    bool

	logger *slog.Logger
}

// Logger returns the run logger (stderr, text or JSON, at --log-level).
func (a *App) Logger() *slog.Logger {
	if a.logger != nil {
		return a.logger
	}
	lvl := slog.LevelWarn
	switch strings.ToLower(a.LogLevel) {
	case "debug":
		lvl = slog.LevelDebug
	case "info":
		lvl = slog.LevelInfo
	case "error":
		lvl = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if a.LogJSON {
		a.logger = slog.New(slog.NewJSONHandler(a.Stderr, opts))
	} else {
		a.logger = slog.New(slog.NewTextHandler(a.Stderr, opts))
	}
	return a.logger
}

// Printf writes a line for people to stdout.
func (a *App) Printf(format string, args ...any) {
	fmt.Fprintf(a.Stdout, format, args...)
}

// UserError is an error with a hint on what to do, rendered by main as
//
//	lifeboat: error: MSG
//	lifeboat: hint: HINT
type UserError struct {
	Msg  string
	Hint string
	Err  error
	Code int // exit code; 0 means ExitFailed
}

func (e *UserError) Error() string {
	if e.Err != nil && e.Msg == "" {
		return e.Err.Error()
	}
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *UserError) Unwrap() error { return e.Err }

// ExitCode returns the exit code for err.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ue *UserError
	if errors.As(err, &ue) && ue.Code != 0 {
		return ue.Code
	}
	var ps config.Problems
	if errors.As(err, &ps) {
		return ExitUsage
	}
	if errors.Is(err, errInterrupted) {
		return ExitInterrupted
	}
	return ExitFailed
}

var errInterrupted = errors.New("interrupted")

// usageErr is a mistake in the command line.
func usageErr(hint, format string, args ...any) error {
	return &UserError{Msg: fmt.Sprintf(format, args...), Hint: hint, Code: ExitUsage}
}

// Render writes err to w the way users see it.
func Render(w io.Writer, err error) {
	var ps config.Problems
	if errors.As(err, &ps) {
		for _, p := range ps {
			fmt.Fprintf(w, "lifeboat: error: %s: %s\n", p.Pos, p.Msg)
			if p.Hint != "" {
				fmt.Fprintf(w, "lifeboat: hint: %s\n", p.Hint)
			}
		}
		return
	}
	var ue *UserError
	if errors.As(err, &ue) {
		fmt.Fprintf(w, "lifeboat: error: %s\n", ue.Error())
		if ue.Hint != "" {
			fmt.Fprintf(w, "lifeboat: hint: %s\n", ue.Hint)
		}
		return
	}
	fmt.Fprintf(w, "lifeboat: error: %s\n", err)
}

// lookupEnv adapts os.LookupEnv; used only by main and tests.
func LookupEnv(name string) (string, bool) { return os.LookupEnv(name) }
