package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
)

var tagRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

type listOptions struct {
	json    bool
	storage string
}

func newListCommand(app *App) *cobra.Command {
	var opts listOptions
	cmd := &cobra.Command{
		Use:   "list [SOURCE]",
		Short: "List committed backups",
		Long: `List reads the manifests in every storage (or one, with --storage) and prints
one line per backup and storage, oldest first. Only committed backups appear:
an artifact whose manifest is missing is not a backup.`,
		Example: `  lifeboat list
  lifeboat list app-db
  lifeboat list --json | jq '.[] | select(.tags | index("pre-deploy"))'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src := ""
			if len(args) == 1 {
				src = args[0]
			}
			return runList(cmd.Context(), opts, src, app)
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print a JSON array")
	cmd.Flags().StringVar(&opts.storage, "storage", "", "only this storage")
	return cmd
}

// listEntry is one line of `list --json`.
type listEntry struct {
	ID        string               `json:"id"`
	Source    string               `json:"source"`
	Part      string               `json:"part,omitempty"`
	Storage   string               `json:"storage"`
	Created   time.Time            `json:"created"`
	Size      int64                `json:"size"`
	PlainSize int64                `json:"plain_size"`
	SHA256    string               `json:"sha256"`
	Tags      []string             `json:"tags"`
	Artifact  string               `json:"artifact"`
	Sequence  int64                `json:"sequence"`
	Suspect   bool                 `json:"suspect"`
	Drill     *catalog.DrillReport `json:"last_drill,omitempty"`
}

func runList(ctx context.Context, opts listOptions, src string, app *App) error {
	s, err := app.loadSetup()
	if err != nil {
		return err
	}
	if src != "" {
		if _, err := s.SourceConfig(src); err != nil {
			// Backups of a source removed from the config can still be listed.
			app.Logger().Info("source not in config; listing what storages hold", "source", src)
		}
	}
	var storages []string
	if opts.storage != "" {
		if _, err := s.Storage(ctx, opts.storage); err != nil {
			return err
		}
		storages = []string{opts.storage}
	} else if src != "" {
		if _, ok := s.Cfg.Sources[src]; !ok {
			storages = s.Cfg.StorageNames
		}
	}
	entries, warns, err := s.Entries(ctx, src, storages)
	if err != nil {
		return err
	}
	for _, w := range warns {
		app.Logger().Warn(w)
	}
	out := make([]listEntry, 0, len(entries))
	for _, e := range entries {
		out = append(out, listEntry{ID: e.ID, Source: e.Source, Part: e.Part, Storage: e.Storage.Name(), Created: e.Started,
			Size: e.StoredSize, PlainSize: e.PlainSize, SHA256: e.SHA256, Tags: e.Tags, Artifact: e.Artifact,
			Sequence: e.Sequence, Suspect: e.Suspect, Drill: e.Drill})
	}
	if opts.json {
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		app.Printf("%s\n", b)
		return nil
	}
	if len(out) == 0 {
		app.Printf("No backups yet. Run `lifeboat backup`.\n")
		return nil
	}
	tw := tabwriter.NewWriter(app.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSOURCE\tSTORAGE\tCREATED (UTC)\tSIZE\tTAGS\tLAST DRILL")
	for _, e := range out {
		name := e.Source
		if e.Part != "" {
			name += "/" + e.Part
		}
		tags := strings.Join(e.Tags, ",")
		if e.Suspect {
			tags = strings.TrimPrefix(tags+",SUSPECT", ",")
		}
		drill := "-"
		if e.Drill != nil {
			drill = "failed"
			if e.Drill.OK {
				drill = fmt.Sprintf("ok, RTO %s", (time.Duration(e.Drill.RTOSeconds * float64(time.Second))).Round(time.Second))
			}
			drill += " " + e.Drill.Started.UTC().Format("2006-01-02")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, name, e.Storage, e.Created.UTC().Format("2006-01-02 15:04:05"),
			humanBytes(e.Size), tags, drill)
	}
	return tw.Flush()
}
