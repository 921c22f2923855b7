package cli_test

import (
	"strings"
	"testing"
)

// `lifeboat explain` says in plain words what a config does (golden file).
func TestExplain(t *testing.T) {
	e := newEnv(t)
	e.vars["S3_KEY"], e.vars["S3_SECRET"], e.vars["PGPASSWORD"] = "k", "s3-secret-value", "pg-secret-value"
	e.writeConfig(`encryption:
  recipients: [{{RECIPIENT}}]
  identity: ./key.txt
storages:
  here:
    type: local
    path: ./backups
  offsite:
    type: s3
    endpoint: s3.eu-central-1.amazonaws.com
    bucket: shop-backups
    prefix: prod
    access_key: ${env:S3_KEY}
    secret_key: ${env:S3_SECRET}
    object_lock: {mode: compliance, days: 30}
  nas:
    type: sftp
    host: nas.internal
    user: backup
    key_file: ./backup-key
    path: /volume1/lifeboat
defaults:
  storages: [here, offsite]
  rpo: 26h
  keep: {last: 7, daily: 14, weekly: 8, monthly: 12}
  checks: {min_size: 1MB, max_shrink: 20%, max_row_drop: 10%}
sources:
  app-db:
    type: sqlite
    path: ./app.db
    schedule: "0 3 * * *"
    timezone: Europe/Berlin
  db:
    type: postgres
    url: postgresql://backup@db.internal:5432/shop
    password: ${env:PGPASSWORD}
    storages: [offsite, nas]
    hooks: {before: ["./maintenance on"], after: ["./maintenance off"]}
  uploads:
    type: files
    paths: [./uploads]
    exclude: ["*.tmp", "cache/**"]
    compression: zstd:9
    keep_tagged: [pre-deploy]
`)
	out := e.mustRun("explain")
	if strings.Contains(out, "secret-value") {
		t.Fatal("explain printed a secret")
	}
	out = strings.ReplaceAll(out, e.dir, "/project")
	out = strings.ReplaceAll(out, e.recipient[:14], "age1RECIPIENT.")
	out = strings.ReplaceAll(out, e.recipient[len(e.recipient)-8:], "RECIPIEN")
	// The fingerprint depends on the generated key.
	if i := strings.Index(out, "(sha256:"); i >= 0 {
		out = out[:i] + "(sha256:FINGERPRINT)" + out[i+len("(sha256:")+16+1:]
	}
	golden(t, "explain.golden", out)
}
