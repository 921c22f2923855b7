package cli

import (
	"fmt"
	"github.com/dustin/go-humanize"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	agestage "github.com/lifeboat-backup/lifeboat/internal/pipeline/age"
)

// describer is implemented by backend configs that can say in words what
// they are ("SQLite database /srv/app.db").
type describer interface{ Describe(dir string) string }

func newExplainCommand(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "explain",
		Short: "Say in plain words what the config file will do",
		Long: `Explain prints what will be backed up, how it is encoded, where it is stored,
when it runs, how long it is kept and how it is checked. It contacts nothing.`,
		Example: `  lifeboat explain
  lifeboat -c prod.yaml explain | less`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := app.loadSetup()
			if err != nil {
				return err
			}
			app.Printf("%s", explain(s))
			return nil
		},
	}
}

func describe(spec config.Spec, typ, dir string) string {
	if d, ok := spec.(describer); ok {
		return d.Describe(dir)
	}
	return typ
}

func explain(s *Setup) string {
	cfg := s.Cfg
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("%s describes %d source(s) and %d storage(s).\n\n", cfg.File, len(cfg.SourceNames), len(cfg.StorageNames))

	w("Encryption\n")
	w("  Every backup is compressed, then encrypted with age to %d public key(s):\n", len(s.Recipients))
	for _, r := range s.Recipients {
		short := r
		if len(short) > 24 {
			short = short[:14] + "…" + short[len(short)-8:]
		}
		w("    %s (%s)\n", short, agestage.Fingerprint(r))
	}
	w("  This machine needs no private key to back up. Restoring, verifying contents\n  and drills need the private key")
	if p := s.identityPath(); p != "" {
		w(" in %s.\n", p)
	} else {
		w(" (pass --identity FILE).\n")
	}

	w("\nStorages\n")
	onlyLocal := true
	for _, n := range cfg.StorageNames {
		st := cfg.Storages[n]
		w("  %s: %s\n", n, describe(st.Spec, st.Type+" storage", cfg.Dir))
		if st.Type != "local" {
			onlyLocal = false
		}
	}
	if onlyLocal && len(cfg.StorageNames) > 0 {
		w("  Warning: every storage is on this machine. A backup kept on the machine it\n  protects is lost with it: add an off-site storage (s3, sftp).\n")
	}

	w("\nSources\n")
	if len(cfg.SourceNames) == 0 {
		w("  None yet: add them under sources:.\n")
	}
	for _, n := range cfg.SourceNames {
		src := cfg.Sources[n]
		w("  %s: %s\n", n, describe(src.Spec, src.Type+" source", cfg.Dir))
		enc := "no compression"
		switch {
		case src.Compression == "" || src.Compression == "zstd":
			enc = "zstd (default level)"
		case src.Compression != "none":
			enc = strings.Replace(src.Compression, "zstd:", "zstd level ", 1)
		}
		w("    Encoded: %s, then age encryption.\n", enc)
		w("    Stored in: %s, as %s/HOST.TIMESTAMP.%s.FORMAT with a .meta.json manifest.\n", strings.Join(src.Storages, ", "), n, n)
		if src.Schedule != "" {
			tz := "UTC"
			if src.Timezone != "" {
				tz = src.Timezone
			}
			w("    When: %q (%s) under `lifeboat daemon`.\n", src.Schedule, tz)
		} else {
			w("    When: only when `lifeboat backup %s` runs (no schedule).\n", n)
		}
		if src.RPO > 0 {
			w("    Overdue: when the newest good backup is older than %s.\n", src.RPO)
		}
		w("    Kept: %s.\n", explainKeep(src))
		if c := src.Checks; c != nil {
			var parts []string
			if c.MinSize > 0 {
				parts = append(parts, fmt.Sprintf("at least %s", humanize.Bytes(uint64(c.MinSize))))
			}
			if c.MaxShrink > 0 {
				parts = append(parts, fmt.Sprintf("shrinks by at most %g%%", float64(c.MaxShrink)))
			}
			if c.MaxGrowth > 0 {
				parts = append(parts, fmt.Sprintf("grows by at most %g%%", float64(c.MaxGrowth)))
			}
			if c.MaxRowDrop > 0 {
				parts = append(parts, fmt.Sprintf("no table loses more than %g%% of its rows", float64(c.MaxRowDrop)))
			}
			w("    Checked: each backup %s, else it is marked suspect.\n", strings.Join(parts, ", "))
		}
		if len(src.Hooks.Before)+len(src.Hooks.After) > 0 {
			w("    Hooks: %d before, %d after (after hooks run even when the backup fails).\n", len(src.Hooks.Before), len(src.Hooks.After))
		}
		if src.Drill != nil {
			w("    Drill: restored into a scratch target and checked")
			if src.Drill.Schedule != "" {
				w(" on %q", src.Drill.Schedule)
			}
			w(".\n")
		}
	}
	return b.String()
}

func explainKeep(src *config.Source) string {
	k := src.Keep
	if k == nil && len(src.KeepTagged) == 0 {
		return "forever (no keep: policy; `lifeboat prune` deletes nothing)"
	}
	var parts []string
	if k != nil {
		for _, x := range []struct {
			n    int
			what string
		}{{k.Last, "the last %d"}, {k.Hourly, "%d hourly"}, {k.Daily, "%d daily"}, {k.Weekly, "%d weekly"}, {k.Monthly, "%d monthly"}, {k.Yearly, "%d yearly"}} {
			if x.n > 0 {
				parts = append(parts, fmt.Sprintf(x.what, x.n))
			}
		}
		if k.Within > 0 {
			parts = append(parts, "everything younger than "+k.Within.String())
		}
	}
	for _, t := range src.KeepTagged {
		parts = append(parts, "backups tagged "+t.Tag)
	}
	return strings.Join(parts, ", ") + "; the newest good backup is never deleted"
}
