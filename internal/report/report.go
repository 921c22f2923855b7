// Package report defines the run report every command that does work
// produces (backup, copy, prune, drill, verify, restore). Notifiers, metrics,
// the daily summary and the dashboard all read this one type.
package report

import (
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
)

// Kind is what a run did.
type Kind string

const (
	Backup  Kind = "backup"
	Copy    Kind = "copy"
	Prune   Kind = "prune"
	Drill   Kind = "drill"
	Verify  Kind = "verify"
	Restore Kind = "restore"
)

// Status is the outcome of a run or of one item in it.
type Status string

const (
	OK      Status = "ok"
	Failed  Status = "failed"
	Partial Status = "partial" // committed to some storages, failed on others
	Suspect Status = "suspect" // committed, but a backup-time check failed
	Skipped Status = "skipped"
)

// Run is the report of one run.
type Run struct {
	ID       string    `json:"id"`
	Kind     Kind      `json:"kind"`
	Host     string    `json:"host"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Status   Status    `json:"status"`
	Items    []Item    `json:"items"`
	Warnings []string  `json:"warnings,omitempty"`
}

// Item is what happened to one source (or part) in a run.
type Item struct {
	Source   string    `json:"source"`
	Part     string    `json:"part,omitempty"`
	BackupID string    `json:"backup_id,omitempty"`
	Artifact string    `json:"artifact,omitempty"`
	Status   Status    `json:"status"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// PlainSize and StoredSize are this backup's; PrevStoredSize the previous
	// committed backup's (0 when none), for "change" columns.
	PlainSize      int64           `json:"plain_size,omitempty"`
	StoredSize     int64           `json:"stored_size,omitempty"`
	PrevStoredSize int64           `json:"prev_stored_size,omitempty"`
	Storages       []StorageResult `json:"storages,omitempty"`
	Checks         []catalog.Check `json:"checks,omitempty"`
	Hooks          []HookResult    `json:"hooks,omitempty"`
	// Error is the failure in words, StderrTail the failing tool's stderr.
	Error      string   `json:"error,omitempty"`
	StderrTail string   `json:"stderr_tail,omitempty"`
	Warnings   []string `json:"warnings,omitempty"`
	// RTOSeconds is set by drills.
	RTOSeconds float64 `json:"rto_seconds,omitempty"`
	// Details holds kind-specific lines (prune decisions, copy counts).
	Details []string `json:"details,omitempty"`
}

// StorageResult is the outcome at one storage.
type StorageResult struct {
	Storage string `json:"storage"`
	Key     string `json:"key,omitempty"`
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
}

// HookResult is one hook command's outcome.
type HookResult struct {
	Phase    string  `json:"phase"` // before, after
	Command  string  `json:"command"`
	ExitCode int     `json:"exit_code"`
	Output   string  `json:"output"` // bounded tail
	Seconds  float64 `json:"seconds"`
}

// Summarize sets r.Status from its items: failed if any failed, else partial,
// else suspect, else ok.
func (r *Run) Summarize() {
	rank := map[Status]int{OK: 0, Skipped: 0, Suspect: 1, Partial: 2, Failed: 3}
	st := OK
	for _, it := range r.Items {
		if rank[it.Status] > rank[st] {
			st = it.Status
		}
	}
	r.Status = st
}

// Duration is Finished - Started.
func (r *Run) Duration() time.Duration { return r.Finished.Sub(r.Started) }
