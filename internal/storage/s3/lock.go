package s3

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

func retentionMode(s string) (minio.RetentionMode, error) {
	switch strings.ToLower(s) {
	case "governance":
		return minio.Governance, nil
	case "compliance":
		return minio.Compliance, nil
	}
	return "", fmt.Errorf("unknown object lock mode %q", s)
}

// Delete implements storage.Storage. On a versioned bucket it removes every
// version of the key (a plain DELETE would only hide it behind a delete
// marker, keeping the bytes and their cost). A version under retention or
// legal hold is reported with an error wrapping storage.ErrLocked; which
// status code a server uses for that refusal differs (MinIO 400, AWS 403), so
// the refusal is recognised by reading the version's lock, not the code.
func (s *Store) Delete(ctx context.Context, key string) error {
	name, err := s.objectName(key)
	if err != nil {
		return err
	}
	versions, err := s.versions(ctx, name)
	if isCode(err, "NotImplemented") {
		// No versioning API (Cloudflare R2 and the like): a plain delete is
		// final there.
		err = s.retry.do(ctx, s, "delete", key, func() error {
			return s.client.RemoveObject(ctx, s.bucket, name, minio.RemoveObjectOptions{})
		})
		if err != nil && !isNotFound(err) {
			return s.wrap("delete", key, err)
		}
		return nil
	}
	if err != nil {
		return s.wrap("delete", key, err)
	}
	for _, v := range versions {
		err := s.retry.do(ctx, s, "delete", key, func() error {
			return s.client.RemoveObject(ctx, s.bucket, name, minio.RemoveObjectOptions{VersionID: v.VersionID})
		})
		if err == nil || isNotFound(err) {
			continue
		}
		if !v.IsDeleteMarker {
			// Recognise the refusal by the version's lock, not the status
			// code. When the server hides the lock, a refusal on a bucket
			// with object lock is taken as the lock.
			l := s.versionLock(ctx, name, v.VersionID)
			if !l.locked && l.unknown && s.bucketLocked(ctx) {
				l = lockState{locked: true, mode: "object lock (retention unreadable)"}
			}
			if l.locked {
				return &storage.PermanentError{Err: fmt.Errorf("delete %s from storage %s: %w (%s): %v",
					key, s.name, storage.ErrLocked, l, err)}
			}
		}
		return s.wrap("delete", key, err)
	}
	return nil
}

func isNotFound(err error) bool {
	return isCode(err, "NoSuchKey", "NoSuchVersion") || errors.Is(err, fs.ErrNotExist)
}

// versions lists the versions (delete markers included) of exactly name,
// newest first. On an unversioned bucket that is the object itself, with
// version id "null" (or none).
func (s *Store) versions(ctx context.Context, name string) ([]minio.ObjectInfo, error) {
	var out []minio.ObjectInfo
	err := s.retry.do(ctx, s, "list versions", name, func() error {
		out = out[:0]
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		for o := range s.client.ListObjects(lctx, s.bucket, minio.ListObjectsOptions{Prefix: name, WithVersions: true}) {
			if o.Err != nil {
				return o.Err
			}
			if o.Key == name {
				out = append(out, o)
			}
		}
		return ctx.Err()
	})
	return out, err
}

// lockState is what a version's lock headers say.
type lockState struct {
	locked bool      // retention until a time still to come, or legal hold
	until  time.Time // end of retention; zero for none or unknown
	mode   string    // "compliance", "governance", "legal hold"
	// unknown: the server would not tell (versitygw v1.8.0 sends no lock
	// headers on HEAD and malformed retention XML).
	unknown bool
}

func (l lockState) String() string {
	if l.until.IsZero() {
		return l.mode
	}
	return fmt.Sprintf("%s until %s", l.mode, l.until.UTC().Format(time.RFC3339))
}

// versionLock reads a version's retention and legal hold.
func (s *Store) versionLock(ctx context.Context, name, versionID string) lockState {
	info, err := s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{VersionID: versionID})
	if err != nil {
		return lockState{unknown: true}
	}
	if strings.EqualFold(info.Metadata.Get("X-Amz-Object-Lock-Legal-Hold"), "ON") {
		return lockState{locked: true, mode: "legal hold"}
	}
	until, mode := lockHeaders(info)
	if until.IsZero() {
		m, u, err := s.client.GetObjectRetention(ctx, s.bucket, name, versionID)
		switch {
		case isCode(err, "NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError"):
			return lockState{}
		case err != nil:
			return lockState{unknown: true}
		case u != nil:
			until = *u
			if m != nil {
				mode = strings.ToLower(m.String())
			}
		}
	}
	return lockState{locked: until.After(s.now()), until: until, mode: mode}
}

// bucketLocked reports whether the bucket has object lock enabled.
func (s *Store) bucketLocked(ctx context.Context) bool {
	state, _, _, _, err := s.client.GetObjectLockConfig(ctx, s.bucket)
	return err == nil && state == "Enabled"
}

func lockHeaders(info minio.ObjectInfo) (time.Time, string) {
	v := info.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date")
	if v == "" {
		return time.Time{}, ""
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, ""
	}
	return t, strings.ToLower(info.Metadata.Get("X-Amz-Object-Lock-Mode"))
}

// LockedUntil returns when the retention of key's current version ends: zero
// when it has none. Missing keys wrap fs.ErrNotExist.
func (s *Store) LockedUntil(ctx context.Context, key string) (time.Time, error) {
	name, err := s.objectName(key)
	if err != nil {
		return time.Time{}, err
	}
	var info minio.ObjectInfo
	err = s.retry.do(ctx, s, "stat", key, func() error {
		var err error
		info, err = s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
		return err
	})
	if err != nil {
		return time.Time{}, s.wrap("read retention of", key, err)
	}
	if until, _ := lockHeaders(info); !until.IsZero() {
		return until, nil
	}
	var until *time.Time
	err = s.retry.do(ctx, s, "get retention", key, func() error {
		var err error
		_, until, err = s.client.GetObjectRetention(ctx, s.bucket, name, info.VersionID)
		return err
	})
	switch {
	case isCode(err, "NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError", "InvalidRequest"):
		return time.Time{}, nil // no retention, or no object lock on the bucket
	case err != nil:
		return time.Time{}, s.wrap("read retention of", key, err)
	case until == nil:
		return time.Time{}, nil
	}
	return *until, nil
}
