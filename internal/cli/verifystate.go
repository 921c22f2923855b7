package cli

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/status"
)

// verifyRecord is the outcome of the last `lifeboat verify` of a source (and
// part) on this host, kept in the state folder so that `status` can show it.
type verifyRecord struct {
	When     time.Time `json:"when"`
	OK       bool      `json:"ok"`
	Checked  int       `json:"checked"`   // backup copies checked
	Decoded  bool      `json:"decoded"`   // contents decrypted, not just checksums
	BackupID string    `json:"backup_id"` // newest backup checked
}

const verifyStateFile = "verify.json"

// stateDir is daemon.state_dir, or the default state folder.
func (s *Setup) stateDir() string {
	if d := s.Cfg.Daemon.StateDir; d != "" {
		return s.Cfg.Path(d)
	}
	return defaultStateDir(s.App)
}

func (s *Setup) readVerifyState() map[string]verifyRecord {
	out := map[string]verifyRecord{}
	b, err := os.ReadFile(filepath.Join(s.stateDir(), verifyStateFile))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.App.Logger().Warn("cannot read verify records", "err", err)
		}
		return out
	}
	if err := json.Unmarshal(b, &out); err != nil {
		s.App.Logger().Warn("ignoring unreadable verify records", "err", err)
	}
	return out
}

// recordVerify merges results into the state file (temp file + rename).
// Failing to record is logged, never fatal: the verify itself is done.
func (s *Setup) recordVerify(results map[string]verifyRecord) {
	st := s.readVerifyState()
	for k, v := range results {
		st[k] = v
	}
	dir := s.stateDir()
	b, _ := json.MarshalIndent(st, "", "  ")
	err := os.MkdirAll(dir, 0o700)
	if err == nil {
		tmp := filepath.Join(dir, "."+verifyStateFile+".tmp")
		if err = os.WriteFile(tmp, b, 0o600); err == nil {
			err = os.Rename(tmp, filepath.Join(dir, verifyStateFile))
		}
	}
	if err != nil {
		s.App.Logger().Warn("cannot record verify results; status will not show them", "dir", dir, "err", err)
	}
}

func verifyKey(source, part string) string { return source + "/" + part }

// lastVerify is status.Options.LastVerify.
func (s *Setup) lastVerify() func(source, part string) *status.Verify {
	st := s.readVerifyState()
	return func(source, part string) *status.Verify {
		r, ok := st[verifyKey(source, part)]
		if !ok {
			return nil
		}
		return &status.Verify{When: r.When, OK: r.OK}
	}
}
