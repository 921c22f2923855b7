package cli

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/template"

	_ "embed"

	"github.com/spf13/cobra"

	"github.com/lifeboat-backup/lifeboat/internal/demo"
	agestage "github.com/lifeboat-backup/lifeboat/internal/pipeline/age"
	"github.com/lifeboat-backup/lifeboat/internal/report"
)

//go:embed demo.yaml.tmpl
var demoTemplate string

type demoOptions struct {
	dir  string
	rows int
}

func newDemoCommand(app *App) *cobra.Command {
	var opts demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Back up, verify and restore a demo app, and prove it came back",
		Long: `Demo runs the whole job on an embedded default, with no server: it creates a
SQLite database and a folder of uploads, writes a config and a key, backs both
up to a local folder, verifies the backups, restores them into a scratch
folder and compares what came back with what went in. It uses exactly the
code paths of backup, verify and restore.`,
		Example: `  lifeboat demo
  lifeboat demo --dir /tmp/lifeboat-demo`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runDemo(cmd.Context(), opts, app) },
	}
	cmd.Flags().StringVar(&opts.dir, "dir", "", "folder to run the demo in (default: a new temporary folder)")
	cmd.Flags().IntVar(&opts.rows, "rows", 2000, "customers in the demo database")
	return cmd
}

func runDemo(ctx context.Context, opts demoOptions, app *App) error {
	dir := opts.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "lifeboat-demo-")
		if err != nil {
			return err
		}
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dir, _ = filepath.Abs(dir)
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		return usageErr("give an empty or new folder with --dir", "%s is not empty", dir)
	}
	step := func(format string, args ...any) { app.Printf("==> "+format+"\n", args...) }

	step("Creating a demo app in %s", dir)
	db := filepath.Join(dir, "app.db")
	if err := demo.SeedSQLite(ctx, db, opts.rows); err != nil {
		return err
	}
	uploads := filepath.Join(dir, "uploads")
	if err := demo.SeedFiles(uploads); err != nil {
		return err
	}
	app.Printf("    app.db: a SQLite database with %d customers and their orders\n", opts.rows)
	app.Printf("    uploads/: files in folders, a symlink, one *.tmp file the config excludes\n")

	keyFile, recipient, err := agestage.Generate()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "demo-key.txt"), []byte(keyFile), 0o600); err != nil {
		return err
	}
	var b strings.Builder
	template.Must(template.New("demo").Parse(demoTemplate)).Execute(&b, map[string]string{"Recipient": recipient})
	cfgPath := filepath.Join(dir, "lifeboat.yaml")
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o644); err != nil {
		return err
	}
	app.Printf("    lifeboat.yaml: the config, and demo-key.txt: its new age key\n")
	app.ConfigPath, app.Identity = cfgPath, ""

	step("Backing up (lifeboat backup)")
	s, err := app.loadSetup()
	if err != nil {
		return err
	}
	run := s.BackupRun(ctx, s.Cfg.SourceNames, []string{"demo"})
	printBackupRun(app, run)
	if err := runErr(ctx, run); err != nil {
		return err
	}

	step("Verifying: re-reading the stored bytes, checking SHA-256, decrypting and decompressing (lifeboat verify --all)")
	if err := runVerify(ctx, verifyOptions{all: true}, "", app); err != nil {
		return err
	}

	step("Restoring into a scratch folder (lifeboat restore SOURCE --to ...)")
	scratch := filepath.Join(dir, "restored")
	restoredDB := filepath.Join(scratch, "app.db")
	restoredFiles := filepath.Join(scratch, "files")
	for _, r := range []struct{ src, to string }{{"app-db", restoredDB}, {"uploads", restoredFiles}} {
		if err := runRestore(ctx, restoreOptions{to: r.to}, r.src, app); err != nil {
			return err
		}
	}

	step("Comparing what came back with what went in")
	if err := demo.CompareSQLite(ctx, db, restoredDB); err != nil {
		return fmt.Errorf("the restored database differs: %w", err)
	}
	app.Printf("    app.db: same schema, same rows in every table\n")
	skipTmp := func(rel string) bool { ok, _ := path.Match("*.tmp", path.Base(rel)); return ok }
	if err := demo.CompareTrees(uploads, filepath.Join(restoredFiles, "uploads"), skipTmp); err != nil {
		return fmt.Errorf("the restored files differ: %w", err)
	}
	app.Printf("    uploads/: same files, contents, permissions, modification times and symlink (the *.tmp file was excluded, as configured)\n")

	ok := 0
	for _, it := range run.Items {
		if it.Status == report.OK {
			ok++
		}
	}
	step("Done: %d backups made, verified, restored and compared. Everything came back.", ok)
	app.Printf("\nLook around: %s\n  backups/   the artifacts and their .meta.json manifests (read one: it has the manual restore commands)\n  restored/  what came back\nTry: lifeboat -c %s list\n", dir, cfgPath)
	return nil
}
