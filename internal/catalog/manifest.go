// Package catalog names artifacts and reads and writes their manifests.
//
// # Naming
//
// An artifact is stored under "{source}/{host}.{timestamp}.{source}.{format}"
// in its storage, the timestamp in UTC as 20261121T030000Z and the format the
// chain of encodings, plaintext first ("sqlite.zst.age"). A source with
// several parts (one per database) puts the part before the format.
//
// # Commit
//
// Beside the artifact, the manifest "{artifact}.meta.json" is written last. A
// backup exists only once its manifest exists: listing reads manifests and
// never guesses from artifact names. An artifact without a manifest is
// garbage left by an interrupted run.
package catalog

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/source"
)

// FormatVersion is the manifest format written by this version.
const FormatVersion = 1

// TimeLayout is the timestamp layout of artifact names.
const TimeLayout = "20060102T150405Z"

const (
	// ManifestSuffix is appended to the artifact key to make the manifest key.
	ManifestSuffix = ".meta.json"
	// DrillSuffix is appended to the artifact key for drill reports.
	DrillSuffix = ".drill.json"
)

// Manifest describes one committed backup.
type Manifest struct {
	FormatVersion int    `json:"format_version"`
	ID            string `json:"id"`
	Source        string `json:"source"`
	SourceType    string `json:"source_type"`
	Host          string `json:"host"`
	// Sequence increases by one with every backup of the source (and part),
	// so that order does not rest on clocks alone.
	Sequence int64 `json:"sequence"`

	Started         time.Time `json:"started"`
	Finished        time.Time `json:"finished"`
	DurationSeconds float64   `json:"duration_seconds"`

	// Artifact is the artifact's file name; Key its key in the storage.
	Artifact string   `json:"artifact"`
	Key      string   `json:"key"`
	Format   string   `json:"format"`
	Stages   []string `json:"stages"` // encodings applied, in order ("zstd", "age")

	PlainSize  int64  `json:"plain_size"`  // bytes the source produced
	StoredSize int64  `json:"stored_size"` // bytes stored
	SHA256     string `json:"sha256"`      // of the stored bytes

	// Recipients are the age recipients the artifact is encrypted to
	// (public keys: safe to record); RecipientFingerprints their SHA-256.
	Recipients            []string `json:"recipients"`
	RecipientFingerprints []string `json:"recipient_fingerprints"`

	LifeboatVersion string   `json:"lifeboat_version"`
	Tags            []string `json:"tags"`

	source.Meta

	// Checks are the backup-time checks and their results. Suspect is set
	// when one failed: the backup is kept, but flagged.
	Checks  []Check `json:"checks,omitempty"`
	Suspect bool    `json:"suspect,omitempty"`

	// RestoreCommands restore the backup by hand with standard tools.
	RestoreCommands []string `json:"restore_commands"`
}

// Check is one backup-time check result.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// ArtifactName returns "{host}.{ts}.{source}.{format}" (with ".{part}" before
// the format for a multi-part source).
func ArtifactName(host string, t time.Time, src, part, format string) string {
	name := host + "." + t.UTC().Format(TimeLayout) + "." + src
	if part != "" {
		name += "." + part
	}
	return name + "." + format
}

// ArtifactKey is the artifact's key in a storage.
func ArtifactKey(src, artifact string) string { return src + "/" + artifact }

// ManifestKey is the manifest's key for an artifact key.
func ManifestKey(artifactKey string) string { return artifactKey + ManifestSuffix }

// NewID returns a new random backup id: 12 hex digits.
func NewID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// SafeHost makes a host name usable in artifact names.
func SafeHost(h string) string {
	h = strings.ToLower(h)
	var b strings.Builder
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	if b.Len() == 0 {
		return "localhost"
	}
	return b.String()
}

// Encode returns the manifest as indented JSON.
func (m *Manifest) Encode() ([]byte, error) {
	// People read manifests (they hold the manual restore commands): no
	// HTML escaping of <, > and &.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Decode parses a manifest and checks the fields every reader relies on.
func Decode(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	if m.FormatVersion < 1 || m.FormatVersion > FormatVersion {
		return nil, fmt.Errorf("manifest format version %d is not supported by this lifeboat (supports 1..%d); upgrade lifeboat", m.FormatVersion, FormatVersion)
	}
	if m.ID == "" || m.Key == "" || m.SHA256 == "" || m.Source == "" {
		return nil, fmt.Errorf("manifest is missing id, key, sha256 or source")
	}
	return &m, nil
}
