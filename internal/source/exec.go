package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ExitError is a child process that failed. It carries the exit code and the
// tail of its stderr, which is usually where the reason is.
type ExitError struct {
	Tool   string
	Code   int // -1 when killed by a signal
	Signal string
	Stderr string // last lines, bounded
}

func (e *ExitError) Error() string {
	how := fmt.Sprintf("exited with status %d", e.Code)
	if e.Signal != "" {
		how = "was killed by " + e.Signal
	}
	if e.Stderr == "" {
		return e.Tool + " " + how
	}
	return e.Tool + " " + how + ": " + e.Stderr
}

// MissingToolError is returned when a needed program is not installed.
type MissingToolError struct {
	Tool, Package string
}

func (e *MissingToolError) Error() string {
	s := e.Tool + " is not installed or not on PATH"
	if e.Package != "" {
		s += " (install the " + e.Package + " package)"
	}
	return s
}

// LookPath finds tool on PATH or returns a *MissingToolError naming pkg.
func LookPath(tool, pkg string) (string, error) {
	p, err := exec.LookPath(tool)
	if err != nil {
		return "", &MissingToolError{Tool: tool, Package: pkg}
	}
	return p, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
	cut bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
		t.cut = true
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(bytes.ToValidUTF8(t.buf, []byte("?"))))
	if t.cut {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
		s = "…" + s
	}
	return s
}

// Command describes a child process run by a source.
type Command struct {
	Path string   // program; resolved with LookPath
	Args []string // never a shell string
	Env  []string // extra environment (secrets go here, never in Args)
	Dir  string
	// Stdin, Stdout are connected directly when set.
	Stdin  io.Reader
	Stdout io.Writer
	// Stderr, when set, also receives the child's stderr.
	Stderr io.Writer
	// BaseEnv is the environment the extra Env is appended to; nil means
	// a minimal one (PATH, HOME, LANG, TZ) so that no unrelated secret of
	// lifeboat's own environment reaches the child.
	BaseEnv []string
}

// Run runs c to completion under ctx. Cancelling ctx sends SIGTERM and, after
// a grace period, SIGKILL. A non-zero exit is an *ExitError with the stderr
// tail. Output written to Stdout before a failure must be discarded by the
// caller.
func Run(ctx context.Context, c Command) error {
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Dir = c.Dir
	cmd.Stdin, cmd.Stdout = c.Stdin, c.Stdout
	tail := &tailBuffer{max: 4096}
	if c.Stderr != nil {
		cmd.Stderr = io.MultiWriter(tail, c.Stderr)
	} else {
		cmd.Stderr = tail
	}
	// Never nil: a nil Env would make the child inherit all of lifeboat's
	// environment, secrets included.
	cmd.Env = append(append([]string{}, c.BaseEnv...), c.Env...)
	// Own process group: Ctrl-C on the terminal reaches lifeboat, which then
	// decides (by cancelling ctx) to stop the child; the child never sees a
	// half-handled SIGINT of its own.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	if err == nil {
		return nil
	}
	tool := c.Path
	if i := strings.LastIndexByte(tool, '/'); i >= 0 {
		tool = tool[i+1:]
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s stopped: %w", tool, ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		xe := &ExitError{Tool: tool, Code: ee.ExitCode(), Stderr: tail.String()}
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			xe.Signal = ws.Signal().String()
		}
		return xe
	}
	var pe *exec.Error
	if errors.As(err, &pe) {
		return &MissingToolError{Tool: tool}
	}
	return fmt.Errorf("run %s: %w", tool, err)
}

// Output runs c and returns its stdout (bounded to 1 MiB), for version probes
// and small queries.
func Output(ctx context.Context, c Command) (string, error) {
	var out bytes.Buffer
	c.Stdout = &limitWriter{w: &out, n: 1 << 20}
	err := Run(ctx, c)
	return strings.TrimSpace(out.String()), err
}

type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n <= 0 {
		return len(p), nil
	}
	k := min(len(p), l.n)
	l.n -= k
	_, err := l.w.Write(p[:k])
	return len(p), err
}

// MinimalEnv returns the parts of env a child tool needs (PATH, HOME, locale,
// TZ, TMPDIR) and nothing else, so unrelated secrets are not inherited.
func MinimalEnv(env func(string) (string, bool)) []string {
	var out []string
	for _, k := range []string{"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER"} {
		if v, ok := env(k); ok {
			out = append(out, k+"="+v)
		}
	}
	return out
}
