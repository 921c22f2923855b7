package s3

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/storage"
	"github.com/lifeboat-backup/lifeboat/internal/storage/storagetest"
	"github.com/lifeboat-backup/lifeboat/internal/testutil/miniotest"
)

// TestVersity runs against versitygw, a second S3 implementation whose lock
// refusals use AWS's 403 rather than MinIO's 400. Optional: skipped when
// versitygw is not installed.
func TestVersity(t *testing.T) {
	srv := miniotest.StartVersity(t)
	t.Run("Conformance", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.Storage {
			return newStore(t, testConfig(srv, newBucket(t, srv, false)), storage.Options{})
		})
	})
	t.Run("LockedDelete", func(t *testing.T) {
		bucket := newBucket(t, srv, true)
		cfg := testConfig(srv, bucket)
		cfg.ObjectLock = &ObjectLock{Mode: "compliance", Days: 1}
		st := newStore(t, cfg, storage.Options{})
		data := []byte("locked on versitygw")
		put(t, st, "k", data)
		err := st.Delete(t.Context(), "k")
		if !errors.Is(err, storage.ErrLocked) {
			t.Fatalf("Delete of a locked object = %v, want storage.ErrLocked", err)
		}
		t.Logf("refusal: %v", err)
		if until, err := st.LockedUntil(t.Context(), "k"); err != nil || until.Before(time.Now()) {
			t.Fatalf("LockedUntil = %v, %v", until, err)
		}
		if n := liveVersions(t, srv, bucket, "k"); n != 1 {
			t.Fatalf("%d versions left, want 1", n)
		}
		if got := readAll(t, st, "k"); !bytes.Equal(got, data) {
			t.Fatal("content changed")
		}
	})
}
