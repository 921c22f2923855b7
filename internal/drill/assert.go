package drill

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/job"
	"github.com/lifeboat-backup/lifeboat/internal/source"
)

const defaultCommandTimeout = 10 * time.Minute

// assertions runs the user's checks on the restored copy, each as its own
// check named "assertion NAME".
func assertions(ctx context.Context, r *job.Runner, req Request, target string) []catalog.Check {
	var out []catalog.Check
	for i, a := range req.Assertions {
		name := a.Name
		if name == "" {
			name = fmt.Sprintf("#%d", i+1)
		}
		c := catalog.Check{Name: assertionPrefix + name}
		switch {
		case a.SQL != "" && a.Command != "":
			c.Detail = "give either sql or command, not both"
		case a.SQL != "":
			ok, err := req.Inspector.Query(ctx, target, a.SQL)
			switch {
			case err != nil:
				c.Detail = "query failed: " + err.Error()
			case !ok:
				c.Detail = "returned false: " + a.SQL
			default:
				c.OK, c.Detail = true, "returned true"
			}
		case a.Command != "":
			err := runCommand(ctx, r, req, target, a.Command)
			var xe *source.ExitError
			switch {
			case errors.As(err, &xe):
				c.Detail = xe.Error()
			case err != nil:
				c.Detail = err.Error()
			default:
				c.OK, c.Detail = true, "exited 0"
			}
		default:
			c.Detail = "has neither sql nor command"
		}
		out = append(out, c)
	}
	return out
}

// runCommand runs a command assertion with `sh -c` (it is the user's own
// shell line, like a hook) in a minimal environment plus LIFEBOAT_DRILL_TARGET,
// LIFEBOAT_SOURCE and LIFEBOAT_BACKUP_ID.
func runCommand(ctx context.Context, r *job.Runner, req Request, target, command string) error {
	timeout := req.CommandTimeout
	if timeout <= 0 {
		timeout = defaultCommandTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var base []string
	if r.Env != nil {
		base = source.MinimalEnv(r.Env)
	}
	err := source.Run(ctx, source.Command{
		Path:    "/bin/sh",
		Args:    []string{"-c", command},
		Dir:     req.Dir,
		BaseEnv: base,
		Env: []string{"LIFEBOAT_DRILL_TARGET=" + target, "LIFEBOAT_SOURCE=" + req.Entry.Source,
			"LIFEBOAT_BACKUP_ID=" + req.Entry.ID},
	})
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("timed out after %s: %w", timeout, err)
	}
	return err
}
