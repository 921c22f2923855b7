package s3

import (
	"bytes"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/lifeboat-backup/lifeboat/internal/storage"
	"github.com/lifeboat-backup/lifeboat/internal/testutil/miniotest"
)

// liveVersions counts the versions of key that hold data (delete markers
// left out).
func liveVersions(t *testing.T, srv *miniotest.Server, bucket, key string) int {
	t.Helper()
	n := 0
	for _, v := range srv.Versions(t, bucket, key) {
		if v.Key == key && !v.IsDeleteMarker {
			n++
		}
	}
	return n
}

func TestObjectLock(t *testing.T) {
	srv := miniotest.Start(t)
	for _, mode := range []string{"compliance", "governance"} {
		t.Run(mode, func(t *testing.T) {
			bucket := newBucket(t, srv, true)
			cfg := testConfig(srv, bucket)
			cfg.ObjectLock = &ObjectLock{Mode: mode, Days: 2}
			st := newStore(t, cfg, storage.Options{})

			small := []byte("a locked backup")
			large := bytes.Repeat([]byte("0123456789abcdef"), (MinPartSize*2+1000)/16) // multipart
			for key, data := range map[string][]byte{"small": small, "large": large} {
				before := time.Now()
				put(t, st, key, data)

				// Retention round-trips.
				until, err := st.LockedUntil(t.Context(), key)
				if err != nil {
					t.Fatal(err)
				}
				want := before.Add(48 * time.Hour)
				if until.Before(want.Add(-time.Minute)) || until.After(want.Add(time.Minute)) {
					t.Fatalf("%s: LockedUntil = %v, want about %v", key, until, want)
				}
				info, err := srv.Client().StatObject(t.Context(), bucket, key, minio.StatObjectOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if got := info.Metadata.Get("X-Amz-Object-Lock-Mode"); !strings.EqualFold(got, mode) {
					t.Fatalf("%s: lock mode %q, want %s", key, got, mode)
				}

				// Delete is refused with ErrLocked, and nothing is lost.
				err = st.Delete(t.Context(), key)
				if !errors.Is(err, storage.ErrLocked) || !storage.IsPermanent(err) {
					t.Fatalf("%s: Delete of a locked object = %v, want a permanent error wrapping storage.ErrLocked", key, err)
				}
				if n := liveVersions(t, srv, bucket, key); n != 1 {
					t.Fatalf("%s: %d versions left after refused Delete, want 1", key, n)
				}
				if got := readAll(t, st, key); !bytes.Equal(got, data) {
					t.Fatalf("%s: content changed after refused Delete", key)
				}
				if _, err := st.Stat(t.Context(), key); err != nil {
					t.Fatalf("%s: Stat after refused Delete: %v", key, err)
				}

				// The server itself refuses to delete the version (behaviour,
				// not a status code: MinIO says 400, AWS 403).
				v := srv.Versions(t, bucket, key)[0]
				if err := srv.Client().RemoveObject(t.Context(), bucket, key, minio.RemoveObjectOptions{VersionID: v.VersionID}); err == nil {
					t.Fatalf("%s: server deleted a locked version", key)
				}
				if n := liveVersions(t, srv, bucket, key); n != 1 {
					t.Fatalf("%s: locked version gone", key)
				}
			}
		})
	}
}

func TestLockedUntilWithoutLock(t *testing.T) {
	srv := miniotest.Start(t)
	for _, lockBucket := range []bool{false, true} {
		st := newStore(t, testConfig(srv, newBucket(t, srv, lockBucket)), storage.Options{})
		put(t, st, "k", []byte("x"))
		until, err := st.LockedUntil(t.Context(), "k")
		if err != nil || !until.IsZero() {
			t.Fatalf("lock bucket %v: LockedUntil = %v, %v, want zero", lockBucket, until, err)
		}
		if _, err := st.LockedUntil(t.Context(), "missing"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("LockedUntil(missing) = %v, want fs.ErrNotExist", err)
		}
		// Without retention the object can be deleted, versions and all.
		if err := st.Delete(t.Context(), "k"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDeleteRemovesAllVersions(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := newBucket(t, srv, false)
	srv.EnableVersioning(t, bucket)
	st := newStore(t, testConfig(srv, bucket), storage.Options{})
	put(t, st, "k", []byte("one"))
	// An older version and a delete marker, as other tools may leave.
	c := srv.Client()
	if _, err := c.PutObject(t.Context(), bucket, "k", strings.NewReader("two"), 3, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveObject(t.Context(), bucket, "k", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	put(t, st, "k", []byte("three"))
	put(t, st, "k.meta.json", []byte("{}")) // same prefix, must survive
	if n := len(srv.Versions(t, bucket, "k")); n != 5 {
		t.Fatalf("setup: %d versions", n)
	}
	if err := st.Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	for _, v := range srv.Versions(t, bucket, "") {
		if v.Key == "k" {
			t.Fatalf("version left after Delete: %+v", v)
		}
	}
	if got := readAll(t, st, "k.meta.json"); string(got) != "{}" {
		t.Fatalf("neighbour changed: %q", got)
	}
}
