// Package storage defines where backups are kept.
//
// A [Storage] is a flat key space of immutable objects. Keys use "/" as the
// separator and never start with one; a backend maps them below its own root
// or prefix. Objects become visible atomically: [Storage.Put] either stores all
// of the stream under the key or leaves nothing behind. This is what lets the
// manifest, written last, act as the commit marker of a backup.
//
// Backends live in subpackages named after what they talk to (local, s3,
// sftp) and all pass the conformance suite in storagetest.
package storage

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"
)

// Object describes a stored object.
type Object struct {
	Key     string
	Size    int64
	ModTime time.Time // as reported by the storage itself, not by us
}

// Storage is a place backups are written to.
//
// All methods are safe for concurrent use. Missing objects are reported with
// an error for which errors.Is(err, fs.ErrNotExist) is true.
type Storage interface {
	// Name is the storage's name from the config, for messages.
	Name() string
	// Put stores all of r under key. The object is visible only if Put
	// returns nil. If r returns an error or ctx is cancelled, nothing is left
	// behind (temporary file removed, multipart upload aborted). Put does not
	// close r. Overwriting an existing key is an error wrapping fs.ErrExist.
	Put(ctx context.Context, key string, r io.Reader) (Object, error)
	// Open returns the object's content; the caller closes it.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat describes one object.
	Stat(ctx context.Context, key string) (Object, error)
	// List calls fn for every object whose key starts with prefix, in no
	// particular order, and stops at fn's first error, returning it.
	// Objects being written by a Put in progress are not listed.
	List(ctx context.Context, prefix string, fn func(Object) error) error
	// Delete removes key. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// Space is what a storage knows of its capacity. Free is -1 when unknowable
// (object storage).
type Space struct {
	Free int64
}

// SpaceReporter is implemented by storages that can tell free space.
type SpaceReporter interface {
	Space(ctx context.Context) (Space, error)
}

// PermanentError marks errors that retrying will not fix (no space left,
// permission denied, object locked).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err should not be retried.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// ErrLocked is wrapped by Delete errors caused by object lock / retention.
var ErrLocked = errors.New("object is under retention lock")

// Options are what every storage backend's New takes besides its Config.
type Options struct {
	// Logger for retries and degraded operation; nil discards.
	Logger *slog.Logger
	// Dir resolves relative paths in the config (CA files, keys, known_hosts).
	Dir string
	// Prune selects the backend's prune credentials (prune_credentials) when
	// configured: only prune deletes, and it may use stronger credentials
	// than backup runs, which need only list/read/write.
	Prune bool
	// Env is the process environment, for backends that follow a standard
	// credential chain (AWS_ACCESS_KEY_ID, ...). Nil means none.
	Env func(string) (string, bool)
}
