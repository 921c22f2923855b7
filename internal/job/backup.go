package job

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/pipeline"
	agestage "github.com/lifeboat-backup/lifeboat/internal/pipeline/age"
	"github.com/lifeboat-backup/lifeboat/internal/report"
	"github.com/lifeboat-backup/lifeboat/internal/source"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

// Backup is one source to back up.
type Backup struct {
	Name     string // source name
	Type     string // source type ("sqlite", "files", ...)
	Source   source.Source
	Stages   []pipeline.Stage
	Storages []storage.Storage
	Tags     []string
	Checks   *config.Checks
	Hooks    config.Hooks
	Dir      string // working folder of hooks (the config's folder)
}

// Backup runs b and returns one report item per artifact (one, or one per
// part). It never returns a committed backup whose dump failed.
func (r *Runner) Backup(ctx context.Context, b Backup) []report.Item {
	log := r.log().With("source", b.Name)
	start := r.now()
	hooks, ok := r.runHooks(ctx, "before", b.Hooks.Before, b.Hooks.Timeout.D(), b.Dir, r.hookEnv(b.Name, "LIFEBOAT_PHASE=before"))
	var items []report.Item
	if !ok {
		last := hooks[len(hooks)-1]
		items = []report.Item{{Source: b.Name, Status: report.Failed, Started: start,
			Error: fmt.Sprintf("before hook %q exited with status %d; backup not run", last.Command, last.ExitCode)}}
	} else {
		items = r.backupParts(ctx, b)
	}
	status := "ok"
	for _, it := range items {
		if it.Status == report.Failed || it.Status == report.Partial {
			status = "failed"
		}
	}
	// After hooks run even when the backup failed (maintenance mode off!),
	// and even when ctx was cancelled, within their own timeout.
	after, afterOK := r.runHooks(context.WithoutCancel(ctx), "after", b.Hooks.After, b.Hooks.Timeout.D(), b.Dir,
		r.hookEnv(b.Name, "LIFEBOAT_PHASE=after", "LIFEBOAT_STATUS="+status))
	items[0].Hooks = append(hooks, after...)
	if !afterOK {
		last := after[len(after)-1]
		items[0].Warnings = append(items[0].Warnings, fmt.Sprintf("after hook %q exited with status %d", last.Command, last.ExitCode))
	}
	for i := range items {
		items[i].Finished = r.now()
		if items[i].Status == report.Failed {
			log.Error("backup failed", "part", items[i].Part, "err", items[i].Error)
		}
	}
	return items
}

func (r *Runner) backupParts(ctx context.Context, b Backup) []report.Item {
	parts := []source.Part{{Source: b.Source}}
	if ex, ok := b.Source.(source.Expander); ok {
		ps, err := ex.Parts(ctx)
		if err != nil {
			return []report.Item{{Source: b.Name, Status: report.Failed, Started: r.now(), Error: "list parts: " + err.Error()}}
		}
		parts = ps
	}
	var items []report.Item
	for _, p := range parts {
		items = append(items, r.backupPart(ctx, b, p))
		if ctx.Err() != nil {
			break
		}
	}
	return items
}

func (r *Runner) backupPart(ctx context.Context, b Backup, p source.Part) report.Item {
	start := r.now()
	log := r.log().With("source", b.Name)
	if p.Name != "" {
		log = log.With("part", p.Name)
	}
	it := report.Item{Source: b.Name, Part: p.Name, Started: start, Status: report.Failed}

	// Previous backups give the sequence number and the baseline for checks.
	var prev *catalog.Manifest
	var seq int64
	for _, st := range b.Storages {
		es, err := catalog.List(ctx, st, b.Name, nil)
		if err != nil {
			log.Warn("cannot list previous backups", "storage", st.Name(), "err", err)
			continue
		}
		for _, e := range es {
			if e.Part != p.Name {
				continue
			}
			seq = max(seq, e.Sequence)
			if prev == nil || e.Sequence > prev.Sequence {
				prev = e.Manifest
			}
		}
	}
	if prev != nil {
		it.PrevStoredSize = prev.StoredSize
	}

	format := p.Source.Format()
	var stageNames []string
	for _, s := range b.Stages {
		format += "." + s.Name()
		stageNames = append(stageNames, s.Name())
	}
	artifact, key := freeName(ctx, b.Storages, r.Host, start, b.Name, p.Name, format)
	it.Artifact = artifact
	dests := make([]pipeline.Dest, len(b.Storages))
	for i, st := range b.Storages {
		dests[i] = pipeline.Dest{Storage: st, Key: key}
	}
	log.Info("backup started", "key", key, "storages", len(dests))

	meta := &source.Meta{}
	label := b.Name
	if p.Name != "" {
		label += "/" + p.Name
	}
	var progress func(int64, int64)
	if r.Progress != nil {
		progress = func(plain, stored int64) { r.Progress(label, plain, stored) }
	}
	res := pipeline.Run(ctx, func(w io.Writer) error { return p.Source.Dump(ctx, w, meta) },
		b.Stages, dests, pipeline.Options{Progress: progress})
	meta.Part = p.Name
	it.PlainSize, it.StoredSize = res.PlainBytes, res.StoredBytes
	it.Warnings = append(it.Warnings, meta.Warnings...)
	if res.SourceErr != nil {
		it.Error = describe(res.SourceErr)
		var xe *source.ExitError
		if errors.As(res.SourceErr, &xe) {
			it.StderrTail = xe.Stderr
		}
		for _, d := range res.Dests {
			it.Storages = append(it.Storages, report.StorageResult{Storage: d.Storage.Name(), Key: key, Error: "not committed"})
		}
		return it
	}

	m := &catalog.Manifest{
		FormatVersion:   catalog.FormatVersion,
		ID:              catalog.NewID(),
		Source:          b.Name,
		SourceType:      b.Type,
		Host:            r.Host,
		Sequence:        seq + 1,
		Started:         start.UTC(),
		Artifact:        artifact,
		Key:             key,
		Format:          format,
		Stages:          stageNames,
		PlainSize:       res.PlainBytes,
		StoredSize:      res.StoredBytes,
		SHA256:          res.SHA256,
		Recipients:      r.Recipients,
		LifeboatVersion: r.Version,
		Tags:            normTags(b.Tags),
		Meta:            *meta,
	}
	for _, rc := range r.Recipients {
		m.RecipientFingerprints = append(m.RecipientFingerprints, agestage.Fingerprint(rc))
	}
	m.RestoreCommands = ManualRestore(r.IdentityHint, p.Source, m, PlaceholderTarget(b.Type, format))
	if r.Checks != nil && b.Checks != nil {
		m.Checks = r.Checks(b.Checks, m, prev)
		for _, c := range m.Checks {
			if !c.OK {
				m.Suspect = true
			}
		}
	}
	m.Finished = r.now().UTC()
	m.DurationSeconds = m.Finished.Sub(m.Started).Seconds()
	body, err := m.Encode()
	if err != nil {
		it.Error = "encode manifest: " + err.Error()
		return it
	}

	committed := 0
	for _, d := range res.Dests {
		sr := report.StorageResult{Storage: d.Storage.Name(), Key: key}
		if d.Err != nil {
			sr.Error = describe(d.Err)
		} else if _, err := d.Storage.Put(ctx, catalog.ManifestKey(key), bytes.NewReader(body)); err != nil {
			sr.Error = "write manifest: " + describe(err)
		} else {
			sr.OK = true
			committed++
		}
		if !sr.OK {
			log.Warn("storage failed", "storage", d.Storage.Name(), "err", sr.Error)
		}
		it.Storages = append(it.Storages, sr)
	}
	it.Checks = m.Checks
	switch {
	case committed == 0:
		it.Error = "no storage accepted the backup"
		for _, s := range it.Storages {
			it.Error += "; " + s.Storage + ": " + s.Error
		}
		return it
	case committed < len(res.Dests):
		it.Status = report.Partial
		var failed []string
		for _, s := range it.Storages {
			if !s.OK {
				failed = append(failed, s.Storage+": "+s.Error)
			}
		}
		it.Error = "not stored in " + strings.Join(failed, "; ")
	case m.Suspect:
		it.Status = report.Suspect
		var why []string
		for _, c := range m.Checks {
			if !c.OK {
				why = append(why, c.Detail)
			}
		}
		it.Error = "suspect: " + strings.Join(why, "; ")
	default:
		it.Status = report.OK
	}
	it.BackupID = m.ID
	log.Info("backup committed", "key", key, "bytes", res.StoredBytes, "duration", m.Finished.Sub(start).Round(1e6).String(), "id", m.ID)
	return it
}

// freeName returns the artifact name and key for a backup started at t. Two
// backups of a source within one second would get the same name: the
// timestamp is moved on by a second until no storage holds the key.
func freeName(ctx context.Context, sts []storage.Storage, host string, t time.Time, src, part, format string) (string, string) {
	for i := 0; ; i++ {
		name := catalog.ArtifactName(host, t.Add(time.Duration(i)*time.Second), src, part, format)
		key := catalog.ArtifactKey(src, name)
		taken := false
		for _, st := range sts {
			if _, err := st.Stat(ctx, key); err == nil {
				taken = true
			} else if _, err := st.Stat(ctx, catalog.ManifestKey(key)); err == nil {
				taken = true
			}
		}
		if !taken || i >= 3600 {
			return name, key
		}
	}
}

func normTags(tags []string) []string {
	out := slices.Clone(tags)
	slices.Sort(out)
	out = slices.Compact(out)
	if out == nil {
		out = []string{}
	}
	return out
}

// describe renders an error for a report: the message, and the tool's exit
// status without repeating a long stderr twice.
func describe(err error) string {
	return err.Error()
}

// PlaceholderTarget is the target named in a manifest's manual commands.
func PlaceholderTarget(typ, format string) string {
	switch {
	case typ == "postgres":
		return "postgresql://localhost/restored"
	case typ == "mysql":
		return "mysql://localhost/restored"
	case strings.HasPrefix(format, "sqlite"):
		return "restored.db"
	}
	return "restored"
}

// ManualRestore returns the commands that restore m into target with
// standard tools, given the identity file path to name in them.
func ManualRestore(identity string, src source.Source, m *catalog.Manifest, target string) []string {
	if identity == "" {
		identity = "KEY_FILE"
	}
	cmds := []string{
		fmt.Sprintf("echo '%s  %s' | sha256sum -c -", m.SHA256, m.Artifact),
	}
	var chain []string
	// Undo the stages in reverse order.
	for i := len(m.Stages) - 1; i >= 0; i-- {
		switch m.Stages[i] {
		case "age":
			chain = append(chain, "age -d -i "+source.ShellQuote(identity))
		case "zst":
			chain = append(chain, "zstd -d")
		}
	}
	first := "cat " + source.ShellQuote(m.Artifact)
	if len(chain) > 0 {
		first = chain[0] + " " + source.ShellQuote(m.Artifact)
		chain = chain[1:]
	}
	pipe := strings.Join(append([]string{first}, chain...), " | ")
	piped := false
	if rs, ok := src.(source.Restorer); ok {
		for _, c := range rs.ManualRestore(target, &m.Meta) {
			if rest, ok := strings.CutPrefix(c, "| "); ok && !piped {
				c, piped = pipe+" | "+rest, true
			}
			cmds = append(cmds, c)
		}
	}
	if !piped {
		cmds = append(cmds, pipe+" > "+source.ShellQuote(m.Artifact+".plain"))
	}
	return cmds
}
