package job

import (
	"context"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/report"
	"github.com/lifeboat-backup/lifeboat/internal/source"
)

const defaultHookTimeout = 5 * time.Minute

// runHooks runs each command with `sh -c` (hooks are the user's own shell
// lines), with a timeout, and returns their results. It stops at the first
// failure and reports whether all succeeded.
func (r *Runner) runHooks(ctx context.Context, phase string, cmds []string, timeout time.Duration, dir string, env []string) ([]report.HookResult, bool) {
	if timeout <= 0 {
		timeout = defaultHookTimeout
	}
	var out []report.HookResult
	for _, c := range cmds {
		start := r.now()
		hctx, cancel := context.WithTimeout(ctx, timeout)
		cmd := exec.CommandContext(hctx, "/bin/sh", "-c", c)
		cmd.Dir = dir
		cmd.Env = env
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		// Kill the whole process group: a hook's own children must not outlive it.
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 5 * time.Second
		var buf tail
		cmd.Stdout, cmd.Stderr = &buf, &buf
		err := cmd.Run()
		cancel()
		res := report.HookResult{Phase: phase, Command: c, Output: buf.String(), Seconds: r.now().Sub(start).Seconds()}
		if err != nil {
			res.ExitCode = -1
			if ee, ok := err.(*exec.ExitError); ok {
				res.ExitCode = ee.ExitCode()
			}
			if hctx.Err() == context.DeadlineExceeded {
				res.Output = strings.TrimSpace(res.Output + "\n(timed out after " + config.FormatDuration(timeout) + ")")
			}
			out = append(out, res)
			r.log().Warn("hook failed", "phase", phase, "exit_code", res.ExitCode)
			return out, false
		}
		out = append(out, res)
	}
	return out, true
}

// hookEnv is the environment hooks see: a minimal base plus LIFEBOAT_*.
func (r *Runner) hookEnv(src string, extra ...string) []string {
	env := []string{}
	if r.Env != nil {
		env = source.MinimalEnv(r.Env)
	}
	return append(append(env, "LIFEBOAT_SOURCE="+src), extra...)
}

// tail keeps the last 8 KiB of a hook's output.
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 8<<10 {
		t.b = t.b[len(t.b)-8<<10:]
	}
	return len(p), nil
}

func (t *tail) String() string { return strings.TrimSpace(string(t.b)) }
