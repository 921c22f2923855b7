package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

// DrillReport is the record of one restore drill, stored beside the artifact
// as "{artifact}.{timestamp}.drill.json". Reports are never overwritten (a
// backup run's credentials need not allow deleting); the newest one counts.
type DrillReport struct {
	BackupID   string    `json:"backup_id"`
	Source     string    `json:"source"`
	Artifact   string    `json:"artifact"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	OK         bool      `json:"ok"`
	RTOSeconds float64   `json:"rto_seconds"`
	// RTOTarget is the source's declared rto, when set.
	RTOTarget float64 `json:"rto_target_seconds,omitempty"`
	// Target is the scratch target the drill restored into (removed after).
	Target  string  `json:"target"`
	Checks  []Check `json:"checks"`
	Error   string  `json:"error,omitempty"`
	Host    string  `json:"host"`
	Version string  `json:"lifeboat_version"`
}

// DrillKey is the key of a drill report for artifactKey made at t.
func DrillKey(artifactKey string, t time.Time) string {
	return artifactKey + "." + t.UTC().Format(TimeLayout) + DrillSuffix
}

// drillArtifact returns the artifact key a drill report key belongs to.
func drillArtifact(key string) (string, bool) {
	k, ok := strings.CutSuffix(key, DrillSuffix)
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(k, '.')
	if i < 0 {
		return "", false
	}
	return k[:i], true
}

// ReadDrill reads one drill report.
func ReadDrill(ctx context.Context, st storage.Storage, key string) (*DrillReport, error) {
	b, err := readSmall(ctx, st, key)
	if err != nil {
		return nil, err
	}
	var d DrillReport
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("parse drill report %s: %w", key, err)
	}
	return &d, nil
}
