package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/report"
)

type verifyOptions struct {
	all    bool
	latest bool
}

func newVerifyCommand(app *App) *cobra.Command {
	var opts verifyOptions
	cmd := &cobra.Command{
		Use:   "verify [ID|SOURCE|--all]",
		Short: "Re-read stored backups and check them",
		Long: `Verify re-reads each stored artifact, checks its size and SHA-256 against its
manifest and, when the identity (private key) is available, decrypts and
decompresses it to the end, so a truncated or altered backup is found now and
not during a restore. Without an identity only checksums are checked, and the
output says so. Every copy in every storage is checked.`,
		Example: `  lifeboat verify --all
  lifeboat verify app-db --latest
  lifeboat verify 3f9c2a71 --identity ~/keys/lifeboat.txt`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			what := ""
			if len(args) == 1 {
				what = args[0]
			}
			if what != "" && opts.all {
				return usageErr("give either an id or source, or --all", "--all and %q both given", what)
			}
			return runVerify(cmd.Context(), opts, what, app)
		},
	}
	cmd.Flags().BoolVar(&opts.all, "all", false, "verify every backup of every source (the default with no argument)")
	cmd.Flags().BoolVar(&opts.latest, "latest", false, "only the newest backup of each source")
	return cmd
}

// selectEntries resolves "SOURCE", "ID" or "" (everything).
func (s *Setup) selectEntries(ctx context.Context, what string) ([]catalog.Entry, error) {
	if _, ok := s.Cfg.Sources[what]; ok || what == "" {
		es, warns, err := s.Entries(ctx, what, nil)
		for _, w := range warns {
			s.App.Logger().Warn(w)
		}
		return es, err
	}
	all, warns, err := s.Entries(ctx, "", nil)
	if err != nil {
		return nil, err
	}
	for _, w := range warns {
		s.App.Logger().Warn(w)
	}
	found, err := catalog.Find(all, what)
	if err != nil || len(found) == 0 {
		return nil, &UserError{Msg: fmt.Sprintf("%q is neither a source nor a backup id", what), Hint: "see `lifeboat list` for ids", Code: ExitUsage}
	}
	ids := map[string]bool{}
	for _, e := range found {
		ids[e.ID] = true
	}
	if len(ids) > 1 {
		return nil, &UserError{Msg: fmt.Sprintf("id prefix %q matches %d backups", what, len(ids)), Hint: "give more characters of the id", Code: ExitUsage}
	}
	return found, nil
}

// latestPerSource keeps the newest entry (all its storage copies) per source and part.
func latestPerSource(es []catalog.Entry) []catalog.Entry {
	newest := map[string]int64{}
	for _, e := range es {
		k := e.Source + "\x00" + e.Part
		newest[k] = max(newest[k], e.Sequence)
	}
	var out []catalog.Entry
	for _, e := range es {
		if newest[e.Source+"\x00"+e.Part] == e.Sequence {
			out = append(out, e)
		}
	}
	return out
}

func runVerify(ctx context.Context, opts verifyOptions, what string, app *App) error {
	s, err := app.loadSetup()
	if err != nil {
		return err
	}
	es, err := s.selectEntries(ctx, what)
	if err != nil {
		return err
	}
	if opts.latest {
		es = latestPerSource(es)
	}
	if len(es) == 0 {
		app.Printf("Nothing to verify: no backups found.\n")
		return nil
	}
	runner := s.Runner()
	run := &report.Run{ID: catalog.NewID(), Kind: report.Verify, Host: app.Hostname, Started: app.Now()}
	var failed []string
	noIdentity := false
	records := map[string]verifyRecord{}
	for _, e := range es {
		stages, err := s.DecodeStages(e.Manifest, false)
		if err != nil {
			return err
		}
		if stages == nil {
			noIdentity = true
		}
		it := report.Item{Source: e.Source, Part: e.Part, BackupID: e.ID, Artifact: e.Artifact, Started: app.Now(),
			StoredSize: e.StoredSize, Storages: []report.StorageResult{{Storage: e.Storage.Name(), Key: e.Key}}}
		res, err := runner.Verify(ctx, e, stages)
		it.Finished = app.Now()
		label := fmt.Sprintf("%s %s in %s (%s)", e.Source, e.ID, e.Storage.Name(), e.Artifact)
		k := verifyKey(e.Source, e.Part)
		rec, seen := records[k]
		if !seen {
			rec = verifyRecord{When: app.Now().UTC(), OK: true, Decoded: true}
		}
		rec.Checked++
		rec.BackupID = e.ID // entries are oldest first: the last one is the newest
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			app.Printf("FAILED  %s: %v\n", label, err)
			failed = append(failed, e.ID+" in "+e.Storage.Name())
			it.Status, it.Error = report.Failed, err.Error()
			rec.OK = false
		} else {
			how := "checksum ok"
			if res.Decoded {
				how = fmt.Sprintf("checksum ok, decrypts and decompresses to %s", humanBytes(res.PlainSize))
			}
			app.Printf("ok      %s: %s\n", label, how)
			it.Status = report.OK
			it.Storages[0].OK = true
		}
		rec.Decoded = rec.Decoded && res.Decoded
		records[k] = rec
		run.Items = append(run.Items, it)
	}
	run.Finished = app.Now()
	run.Summarize()
	s.recordVerify(records)
	s.notifier().RunFinished(context.WithoutCancel(ctx), run)
	if noIdentity {
		app.Printf("Note: no identity available, so contents were not decrypted; pass --identity to check them too.\n")
	}
	if len(failed) > 0 {
		return &UserError{Msg: fmt.Sprintf("%d backup copy(ies) failed verification: %s", len(failed), strings.Join(failed, ", ")),
			Hint: "restore from another copy or another backup; `lifeboat copy` can re-replicate a good copy"}
	}
	return nil
}
