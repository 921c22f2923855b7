package job

import (
	"log/slog"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/config"
)

// Runner holds what every job needs. Its zero value is not usable: set Host,
// Version and Now at least.
type Runner struct {
	Host    string
	Version string
	Now     func() time.Time
	Logger  *slog.Logger
	// Recipients are the age public keys backups are encrypted to, as
	// configured; recorded (with fingerprints) in manifests.
	Recipients []string
	// IdentityHint names the identity file in manual restore commands.
	IdentityHint string
	// Env is the process environment (for hooks).
	Env config.Env
	// Progress, if set, receives running byte counts of a backup or restore.
	Progress func(label string, plain, stored int64)
	// Checks evaluates backup-time checks of cur against prev (which may be
	// nil); nil means no checks are run.
	Checks func(c *config.Checks, cur, prev *catalog.Manifest) []catalog.Check
}

func (r *Runner) log() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

func (r *Runner) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}
