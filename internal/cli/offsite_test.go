package cli_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"

	"github.com/lifeboat-backup/lifeboat/internal/demo"
	"github.com/lifeboat-backup/lifeboat/internal/testutil/miniotest"
	"github.com/lifeboat-backup/lifeboat/internal/testutil/sftptest"
)

// sftpStorage returns the YAML of an sftp storage named name on srv.
func sftpStorage(name string, srv *sftptest.Server) string {
	return fmt.Sprintf(`  %s:
    type: sftp
    host: %s
    port: %d
    user: %s
    key_file: %s
    known_hosts: %s
    path: /backups
`, name, srv.Host, srv.Port, srv.User, srv.KeyFile, srv.KnownHosts)
}

// s3Storage returns the YAML of an s3 storage on srv's bucket; the keys
// come from the environment, as they would in production.
func s3Storage(e *env, name string, srv *miniotest.Server, bucket string, lock bool) string {
	e.vars["S3_KEY"], e.vars["S3_SECRET"] = srv.AccessKey, srv.SecretKey
	y := fmt.Sprintf(`  %s:
    type: s3
    endpoint: %s
    insecure: true
    path_style: true
    region: us-east-1
    bucket: %s
    prefix: lifeboat
    access_key: ${env:S3_KEY}
    secret_key: ${env:S3_SECRET}
    part_size: 5MiB
`, name, srv.Endpoint(), bucket)
	if lock {
		y += "    object_lock: {mode: governance, days: 1}\n"
	}
	return y
}

func offsiteConfig(storages string, names string) string {
	return `encryption:
  recipients: [{{RECIPIENT}}]
  identity: ./key.txt
storages:
  here:
    type: local
    path: ./backups
` + storages + `defaults:
  storages: [` + names + `]
sources:
  app-db:
    type: sqlite
    path: ./app.db
  big:
    type: files
    paths: [./big]
    compression: none
`
}

// Local + S3 (object lock) + SFTP in one pass. One of them failing midway:
// the others commit, the run is partial (exit 3) and names the failed one.
func TestFanOutOneStorageFails(t *testing.T) {
	srv := sftptest.Start(t)
	minio := miniotest.Start(t)
	minio.MakeBucket(t, "backups", true)
	e := newEnv(t)
	bigFiles(t, e.path("big"), 96)
	e.writeConfig(offsiteConfig(sftpStorage("offsite", srv)+s3Storage(e, "bucket", minio, "backups", true), "here, bucket, offsite"))

	out := e.mustRun("backup", "app-db")
	if !strings.Contains(out, "to here, bucket, offsite") {
		t.Fatalf("not stored in all three: %s", out)
	}
	if ls := e.list("app-db"); len(ls) != 3 {
		t.Fatalf("%d copies listed, want 3 (one per storage)", len(ls))
	}
	if out := e.mustRun("verify", "app-db"); strings.Count(out, "decrypts and decompresses") != 3 {
		t.Fatalf("verify:\n%s", out)
	}
	// The S3 copy is under object lock: the server refuses to delete it.
	objs := minio.Versions(t, "backups", "lifeboat/app-db/")
	if len(objs) != 2 {
		t.Fatalf("%d objects in the bucket, want artifact + manifest", len(objs))
	}
	if err := minio.Client().RemoveObject(t.Context(), "backups", objs[0].Key, miniogo.RemoveObjectOptions{VersionID: objs[0].VersionID}); err == nil {
		t.Fatal("a locked backup was deleted")
	}
	e.mustRun("restore", "app-db", "--storage", "bucket", "--to", e.path("from-s3.db"))
	if err := demo.CompareSQLite(t.Context(), e.path("app.db"), e.path("from-s3.db")); err != nil {
		t.Fatal(err)
	}

	// Make the SFTP server refuse writes once the upload is under way.
	go func() {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			matches, _ := filepath.Glob(filepath.Join(srv.Root, "backups/big/.*.part"))
			if len(matches) > 0 {
				srv.FailWrites(true)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	r := e.run("backup", "big")
	srv.FailWrites(false)
	if r.code != 3 {
		t.Fatalf("exit %d, want 3 (partial)\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout+r.stderr, "offsite") {
		t.Fatalf("the failed storage is not named:\n%s\n%s", r.stdout, r.stderr)
	}
	ls := e.list("big")
	if len(ls) != 2 || ls[0].Storage != "here" || ls[1].Storage != "bucket" {
		t.Fatalf("after a partial run: %+v", ls)
	}
	e.mustRun("verify", "big")
}

// copy replicates what is missing, is idempotent, and refuses to spread a
// damaged artifact.
func TestCopyBetweenStorages(t *testing.T) {
	srv := sftptest.Start(t)
	e := newEnv(t)
	os.MkdirAll(e.path("big"), 0o755)
	e.writeConfig(offsiteConfig(sftpStorage("offsite", srv), "here"))
	e.mustRun("backup", "app-db")
	e.mustRun("backup", "app-db")

	out := e.mustRun("copy", "--from", "here", "--to", "offsite")
	if !strings.Contains(out, "2 backup(s) copied") {
		t.Fatalf("first copy:\n%s", out)
	}
	out = e.mustRun("copy", "--from", "here", "--to", "offsite")
	if !strings.Contains(out, "0 backup(s) copied") {
		t.Fatalf("second copy was not a no-op:\n%s", out)
	}
	var inOffsite int
	for _, l := range e.list("app-db") {
		if l.Storage == "offsite" {
			inOffsite++
		}
	}
	if inOffsite != 2 {
		t.Fatalf("%d backups in offsite, want 2", inOffsite)
	}
	e.mustRun("verify", "--all")

	// And back: delete one copy locally, copy it back from offsite.
	l := e.list("app-db")[0]
	os.Remove(e.path("backups/app-db/" + l.Artifact + ".meta.json"))
	os.Remove(e.path("backups/app-db/" + l.Artifact))
	out = e.mustRun("copy", "--from", "offsite", "--to", "here")
	if !strings.Contains(out, "1 backup(s) copied") {
		t.Fatalf("copy back:\n%s", out)
	}

	// Local -> S3 -> local as well.
	minio := miniotest.Start(t)
	minio.MakeBucket(t, "copies", false)
	e.writeConfig(offsiteConfig(sftpStorage("offsite", srv)+s3Storage(e, "bucket", minio, "copies", false), "here"))
	if out := e.mustRun("copy", "--from", "here", "--to", "bucket"); !strings.Contains(out, "2 backup(s) copied") {
		t.Fatalf("copy to S3:\n%s", out)
	}
	if out := e.mustRun("copy", "--from", "here", "--to", "bucket"); !strings.Contains(out, "0 backup(s) copied") {
		t.Fatalf("second copy to S3 was not a no-op:\n%s", out)
	}
	os.RemoveAll(e.path("backups"))
	if out := e.mustRun("copy", "--from", "bucket", "--to", "here"); !strings.Contains(out, "2 backup(s) copied") {
		t.Fatalf("copy back from S3:\n%s", out)
	}
	e.mustRun("verify", "--all")

	// A damaged artifact in the source storage is detected, not copied.
	e.mustRun("backup", "app-db")
	ls := e.list("app-db")
	newest := ls[len(ls)-1]
	p := e.path("backups/app-db/" + newest.Artifact)
	b, _ := os.ReadFile(p)
	b[100] ^= 0xff
	os.WriteFile(p, b, 0o600)
	r := e.run("copy", "--from", "here", "--to", "offsite")
	if r.code == 0 || !strings.Contains(r.stdout, "damaged") {
		t.Fatalf("copy of a damaged artifact: exit %d\n%s", r.code, r.stdout)
	}
	if _, err := os.Stat(filepath.Join(srv.Root, "backups/app-db", newest.Artifact)); err == nil {
		t.Fatal("the damaged artifact was copied")
	}
}
