// Package source defines what lifeboat backs up and how it is put back.
//
// A [Source] produces one logical dump as a byte stream; a [Restorer] reads
// such a stream back into a new target. Backends live in subpackages named
// after what they read (sqlite, files, postgres, mysql).
package source

import (
	"context"
	"io"
	"log/slog"

	"github.com/lifeboat-backup/lifeboat/internal/config"
)

// Source produces one logical dump.
type Source interface {
	// Format names the plaintext format of the dump, the first element of the
	// artifact's format chain: "sqlite", "tar", "pgdump", "sql".
	Format() string
	// Dump writes the dump to w and returns after the dump tool has exited.
	// It fills meta with what it learnt (versions, row counts, identity).
	// A non-nil error means the bytes written must not be committed. Dump
	// never closes w.
	Dump(ctx context.Context, w io.Writer, meta *Meta) error
}

// Part is one artifact of a source that produces several (a PostgreSQL
// server backed up database by database).
type Part struct {
	Name   string // becomes part of the artifact name; [a-z0-9_-]
	Source Source
}

// Expander is implemented by sources that produce several artifacts per run.
// The runner backs each part up as its own backup, with Meta.Part set.
type Expander interface {
	Parts(ctx context.Context) ([]Part, error)
}

// Meta is what a source records about a dump. It is stored in the manifest.
type Meta struct {
	// Part is set for sources with several parts (the database name).
	Part string `json:"part,omitempty"`
	// ToolVersions maps a tool name to its version ("pg_dump": "17.2").
	ToolVersions map[string]string `json:"tool_versions,omitempty"`
	// ServerVersion is the version of the server dumped, if any.
	ServerVersion string `json:"server_version,omitempty"`
	// SchemaVersion comes from the source's configured schema_version query.
	SchemaVersion string `json:"schema_version,omitempty"`
	// RowCounts maps "schema.table" (or "table") to its row count.
	RowCounts map[string]int64 `json:"row_counts,omitempty"`
	// RowCountsTaken says how RowCounts relate to the dump: "same snapshot"
	// or "before dump".
	RowCountsTaken string `json:"row_counts_taken,omitempty"`
	// DatabaseSize is the size of the database on the server, in bytes.
	DatabaseSize int64 `json:"database_size,omitempty"`
	// Identity identifies the data's origin independent of how it was
	// reached: PostgreSQL's system identifier + database, MySQL's server_uuid
	// + schema, a file's absolute path. Restore refuses targets with the same
	// identity unless forced.
	Identity string `json:"identity,omitempty"`
	// Files and Bytes count what a file-like source read.
	Files int64 `json:"files,omitempty"`
	// Extra holds anything else worth recording.
	Extra map[string]string `json:"extra,omitempty"`
	// Warnings are non-fatal problems met during the dump.
	Warnings []string `json:"warnings,omitempty"`
}

// TargetInfo is what a Restorer found at a restore target before writing.
type TargetInfo struct {
	// Exists and Empty describe the target: a missing or empty target can be
	// restored into without --force.
	Exists, Empty bool
	// Identity is the target's identity in Meta.Identity's terms, when known.
	Identity string
	// IsSource is set when writing the target would overwrite the data the
	// source itself backs up (the same file, a folder holding it).
	IsSource bool
	// Describe names the target in words for confirmations ("database shop
	// on server 7310…", "folder /srv/restore (12 entries)").
	Describe string
}

// Restorer puts a dump back. A source type that can be restored implements
// it; its Source value doubles as the Restorer.
type Restorer interface {
	// Inspect looks at target (a path, a URL) without changing anything.
	Inspect(ctx context.Context, target string) (TargetInfo, error)
	// Restore reads a plaintext dump from r into target, which Inspect found
	// missing or empty, or which the user chose to overwrite. On error the
	// target may be partly written; the caller says so.
	Restore(ctx context.Context, r io.Reader, target string, meta *Meta) error
	// Snapshot returns a Source reading target, used to take a safety backup
	// of a target before it is overwritten.
	Snapshot(target string) (Source, error)
	// ManualRestore returns shell commands, run in order, that restore a
	// plaintext dump into target with standard tools. The one command that
	// reads the dump from standard input starts with "| " (lifeboat puts the
	// decrypt and decompress pipeline in front of it), for example
	// {"createdb restored", "| pg_restore --no-owner -d restored"}.
	ManualRestore(target string, meta *Meta) []string
}

// Deps are what a source backend is built with.
type Deps struct {
	// Name is the source's name from the config.
	Name string
	// Dir is the config file's directory; relative paths resolve against it.
	Dir    string
	Logger *slog.Logger
	Env    config.Env
}

// Path resolves p against the config directory.
func (d Deps) Path(p string) string { return config.Abs(d.Dir, p) }

// Log returns the logger, or one that discards.
func (d Deps) Log() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger
}
