package prune

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
	"github.com/lifeboat-backup/lifeboat/internal/storage/local"
	"github.com/lifeboat-backup/lifeboat/internal/storage/s3"
	"github.com/lifeboat-backup/lifeboat/internal/storage/sftp"
	"github.com/lifeboat-backup/lifeboat/internal/testutil/miniotest"
	"github.com/lifeboat-backup/lifeboat/internal/testutil/sftptest"
)

// putBackup writes an artifact and its manifest to st, dated now (the
// storage's own clock agrees).
func putBackup(t *testing.T, st storage.Storage, seq int64, start time.Time) *catalog.Manifest {
	t.Helper()
	ctx := context.Background()
	key := catalog.ArtifactKey(src, catalog.ArtifactName("host1", start, src, "", "sqlite.zst.age"))
	if _, err := st.Put(ctx, key, strings.NewReader("artifact")); err != nil {
		t.Fatal(err)
	}
	m := &catalog.Manifest{FormatVersion: 1, ID: fmt.Sprintf("id%010d", seq), Source: src, Sequence: seq, Started: start,
		Finished: start.Add(time.Second), Key: key, SHA256: "00"}
	b, _ := m.Encode()
	if _, err := st.Put(ctx, catalog.ManifestKey(key), bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestObjectLockOnS3: backups under S3 object lock (MinIO) are reported as
// kept by lock, stay listed, and the prune is not an error.
func TestObjectLockOnS3(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := "prune-lock"
	srv.MakeBucket(t, bucket, true)
	cfg := s3.DefaultConfig()
	cfg.Endpoint, cfg.Bucket, cfg.PathStyle = srv.URL(), bucket, true
	cfg.AccessKey, cfg.SecretKey = config.NewSecret(srv.AccessKey), config.NewSecret(srv.SecretKey)
	cfg.ObjectLock = &s3.ObjectLock{Mode: "governance", Days: 1}
	st, err := s3.New(t.Context(), "s3", cfg, storage.Options{Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	for i := range 3 {
		putBackup(t, st, int64(i+1), now.Add(time.Duration(i-3)*time.Minute))
	}
	s := Source{Name: src, Policy: policy(config.Keep{Last: 1}), Storages: []storage.Storage{st}}
	plan, err := NewPlan(t.Context(), s, Options{Now: fixed(now.Add(time.Minute))})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Refused != nil || plan.Deletes() != 2 {
		t.Fatalf("refused %v, deletes %d, warnings %q", plan.Refused, plan.Deletes(), plan.Warnings)
	}
	res, err := Execute(t.Context(), plan)
	if err != nil {
		t.Fatalf("locked objects made prune fail: %v", err)
	}
	var artifacts, aborts int
	for _, o := range res.Outcomes {
		switch {
		case o.What == "artifact" && o.Status == KeptByLock:
			artifacts++
		case o.What == "unfinished uploads" && o.Status == Deleted:
			aborts++
		case o.Status != Skipped:
			t.Errorf("%s %s: %s %v", o.What, o.Key, o.Status, o.Err)
		}
	}
	if artifacts != 2 || aborts != 1 {
		t.Fatalf("outcomes %+v", res.Outcomes)
	}
	es, err := catalog.List(t.Context(), st, src, nil)
	if err != nil || len(es) != 3 {
		t.Fatalf("after prune: %d backups listed, %v", len(es), err)
	}
}

// TestSFTPTempFiles: a temporary file an interrupted upload left on an SFTP
// server is garbage once old enough.
func TestSFTPTempFiles(t *testing.T) {
	srv := sftptest.Start(t)
	st, err := sftp.New(t.Context(), "sftp", &sftp.Config{Host: srv.Host, Port: srv.Port, User: srv.User,
		KeyFile: srv.KeyFile, KnownHosts: srv.KnownHosts, Path: "/backups"}, storage.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	now := time.Now().UTC().Truncate(time.Second)
	putBackup(t, st, 1, now.Add(-time.Minute))
	dir := filepath.Join(srv.Root, "backups", src)
	old, young := filepath.Join(dir, ".old.abc.part"), filepath.Join(dir, ".young.abc.part")
	for _, p := range []string{old, young} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(old, now.Add(-48*time.Hour), now.Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan(t.Context(), Source{Name: src, Policy: policy(config.Keep{Last: 1}), Storages: []storage.Storage{st}},
		Options{Now: fixed(now)})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Garbage) != 1 || !strings.HasSuffix(plan.Garbage[0].Path, ".old.abc.part") {
		t.Fatalf("garbage %+v", plan.Garbage)
	}
	if _, err := Execute(t.Context(), plan); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("old temp file: %v", err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("young temp file: %v", err)
	}
}

// The storages implement the optional interfaces prune looks for.
var (
	_ IncompleteAborter = (*s3.Store)(nil)
	_ RemotePartials    = (*sftp.Store)(nil)
	_ Partials          = (*local.Store)(nil)
)
