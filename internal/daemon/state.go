package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/report"
)

// stateFile is the name of the daemon's record in its state folder.
const stateFile = "daemon-state.json"

// state is what the daemon remembers across restarts.
type state struct {
	Version int `json:"version"`
	// Tasks is keyed by task key ("backup/db", "summary").
	Tasks map[string]taskState `json:"tasks"`
	// Overdue holds, for each source whose overdue alarm was sent, the start
	// of its newest backup at that time (zero when it had none).
	Overdue map[string]time.Time `json:"overdue,omitempty"`
}

type taskState struct {
	// Slot is the latest slot accounted for: run, skipped, or before the
	// daemon first knew the task.
	Slot         time.Time     `json:"slot"`
	LastStarted  time.Time     `json:"last_started,omitzero"`
	LastFinished time.Time     `json:"last_finished,omitzero"`
	LastStatus   report.Status `json:"last_status,omitempty"`
}

func newState() *state {
	return &state{Version: 1, Tasks: map[string]taskState{}, Overdue: map[string]time.Time{}}
}

// loadState reads the state in dir; a missing file is an empty state.
func loadState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return newState(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read daemon state: %w", err)
	}
	s := newState()
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("read daemon state %s: %w (move it away to start afresh; runs missed while down will not be caught up)",
			filepath.Join(dir, stateFile), err)
	}
	if s.Tasks == nil {
		s.Tasks = map[string]taskState{}
	}
	if s.Overdue == nil {
		s.Overdue = map[string]time.Time{}
	}
	return s, nil
}

// save writes the state to dir through a temporary file, fsynced and
// renamed into place, so a crash leaves the old or the new state, never a
// torn one.
func (s *state) save(dir string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save daemon state: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+stateFile+".tmp*")
	if err != nil {
		return fmt.Errorf("save daemon state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save daemon state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save daemon state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save daemon state: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, stateFile)); err != nil {
		return fmt.Errorf("save daemon state: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
