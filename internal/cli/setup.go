package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"

	"filippo.io/age"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/checks"
	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/job"
	"github.com/lifeboat-backup/lifeboat/internal/pipeline"
	agestage "github.com/lifeboat-backup/lifeboat/internal/pipeline/age"
	"github.com/lifeboat-backup/lifeboat/internal/pipeline/zstd"
	"github.com/lifeboat-backup/lifeboat/internal/source"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

// Setup is a loaded config with what it needs built lazily: storages are
// opened on first use, the identity is read only when decrypting.
type Setup struct {
	App        *App
	Cfg        *config.Config
	Recipients []string

	recipients []age.Recipient
	mu         sync.Mutex
	storages   map[string]storage.Storage
	identities []age.Identity
	progress   *progress
}

// loadSetup loads and checks the config file named by --config.
func (a *App) loadSetup() (*Setup, error) {
	cfg, err := config.Load(a.ConfigPath, configRegistry(), a.Env)
	if err != nil {
		return nil, err
	}
	s := &Setup{App: a, Cfg: cfg, storages: map[string]storage.Storage{}}
	var ps config.Problems
	rcps := cfg.Encryption.Recipients
	for i, r := range rcps {
		rc, err := agestage.ParseRecipient(r)
		if err != nil {
			ps = append(ps, config.Problem{Pos: cfg.Pos(fmt.Sprintf("encryption.recipients[%d]", i)), Msg: err.Error(),
				Hint: "a recipient is an age public key (age1...) or an ssh public key line"})
			continue
		}
		s.recipients = append(s.recipients, rc)
		s.Recipients = append(s.Recipients, r)
	}
	if f := cfg.Encryption.RecipientsFile; f != "" {
		lines, err := agestage.ReadRecipientsFile(cfg.Path(f))
		if err != nil {
			ps = append(ps, config.Problem{Pos: cfg.Pos("encryption.recipients_file"), Msg: err.Error()})
		}
		for _, r := range lines {
			rc, err := agestage.ParseRecipient(r)
			if err != nil {
				ps = append(ps, config.Problem{Pos: cfg.Pos("encryption.recipients_file"), Msg: f + ": " + err.Error()})
				continue
			}
			s.recipients = append(s.recipients, rc)
			s.Recipients = append(s.Recipients, r)
		}
	}
	if len(ps) > 0 {
		return nil, ps
	}
	return s, nil
}

// Runner returns a job runner for this setup.
func (s *Setup) Runner() *job.Runner {
	r := &job.Runner{
		Host:         s.App.Hostname,
		Version:      s.App.Version,
		Now:          s.App.Now,
		Logger:       s.App.Logger(),
		Recipients:   s.Recipients,
		IdentityHint: s.identityPath(),
		Env:          s.App.Env,
		Checks:       checks.Evaluate,
	}
	if s.App.StderrTTY {
		if s.progress == nil {
			s.progress = newProgress(s.App.Stderr, s.App.Now)
		}
		r.Progress = s.progress.update
	}
	return r
}

func (s *Setup) identityPath() string {
	if s.App.Identity != "" {
		return s.App.Identity
	}
	if s.Cfg.Encryption.Identity != "" {
		return s.Cfg.Path(s.Cfg.Encryption.Identity)
	}
	return ""
}

// Storage opens the named storage once.
func (s *Setup) Storage(ctx context.Context, name string) (storage.Storage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.storages[name]; ok {
		return st, nil
	}
	sc, ok := s.Cfg.Storages[name]
	if !ok {
		return nil, &UserError{Msg: fmt.Sprintf("no storage named %q", name), Hint: "storages in " + s.Cfg.File + ": " + fmt.Sprint(s.Cfg.StorageNames), Code: ExitUsage}
	}
	kind := storageKinds()[sc.Type]
	st, err := kind.open(ctx, name, sc.Spec, storage.Options{Logger: s.App.Logger().With("storage", name), Dir: s.Cfg.Dir, Env: s.App.Env})
	if err != nil {
		return nil, &UserError{Msg: fmt.Sprintf("open storage %s", name), Err: err, Hint: "check the storage's settings with `lifeboat doctor`"}
	}
	s.storages[name] = st
	return st, nil
}

// SourceStorages opens every storage of a source.
func (s *Setup) SourceStorages(ctx context.Context, src *config.Source) ([]storage.Storage, error) {
	var out []storage.Storage
	for _, n := range src.Storages {
		st, err := s.Storage(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// SourceConfig returns the named source's config or a usage error.
func (s *Setup) SourceConfig(name string) (*config.Source, error) {
	src, ok := s.Cfg.Sources[name]
	if !ok {
		return nil, &UserError{Msg: fmt.Sprintf("no source named %q", name), Hint: "sources in " + s.Cfg.File + ": " + fmt.Sprint(s.Cfg.SourceNames), Code: ExitUsage}
	}
	return src, nil
}

// Source builds the named source.
func (s *Setup) Source(name string) (source.Source, *config.Source, error) {
	sc, err := s.SourceConfig(name)
	if err != nil {
		return nil, nil, err
	}
	src, err := sourceKinds()[sc.Type].open(sc.Spec, source.Deps{Name: name, Dir: s.Cfg.Dir, Logger: s.App.Logger().With("source", name), Env: s.App.Env})
	if err != nil {
		return nil, nil, fmt.Errorf("set up source %s: %w", name, err)
	}
	return src, sc, nil
}

// EncodeStages returns the stages a source's backups go through.
func (s *Setup) EncodeStages(sc *config.Source) []pipeline.Stage {
	var st []pipeline.Stage
	switch c := sc.Compression; {
	case c == "none":
	case c == "" || c == "zstd":
		st = append(st, zstd.Stage{})
	default:
		var lvl int
		fmt.Sscanf(c, "zstd:%d", &lvl)
		st = append(st, zstd.Stage{Level: lvl})
	}
	return append(st, &agestage.Stage{Recipients: s.recipients})
}

// DecodeStages returns stages able to decode m. With needIdentity false and
// no identity available it returns nil (checksum-only verification).
func (s *Setup) DecodeStages(m *catalog.Manifest, needIdentity bool) ([]pipeline.Stage, error) {
	needsAge := false
	for _, n := range m.Stages {
		if n == "age" {
			needsAge = true
		}
	}
	var ids []age.Identity
	if needsAge {
		var err error
		ids, err = s.loadIdentities()
		if err != nil {
			if !needIdentity {
				return nil, nil
			}
			return nil, err
		}
	}
	var out []pipeline.Stage
	for _, n := range m.Stages {
		switch n {
		case "zst":
			out = append(out, zstd.Stage{})
		case "age":
			out = append(out, &agestage.Stage{Identities: ids})
		default:
			return nil, fmt.Errorf("backup %s uses stage %q that this lifeboat does not know; upgrade lifeboat", m.ID, n)
		}
	}
	return out, nil
}

func (s *Setup) loadIdentities() ([]age.Identity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.identities != nil {
		return s.identities, nil
	}
	p := s.identityPath()
	if p == "" {
		return nil, &UserError{Msg: "no identity (private key) to decrypt with",
			Hint: "pass --identity FILE, or set encryption.identity in " + s.Cfg.File}
	}
	ids, err := agestage.ReadIdentityFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &UserError{Msg: "identity file " + p + " not found",
			Hint: "restore needs the private key made by `lifeboat init`; pass --identity FILE where you keep it"}
	}
	if err != nil {
		return nil, &UserError{Msg: "cannot read identity", Err: err}
	}
	if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o077 != 0 {
		s.App.Logger().Warn("identity file is readable by others; chmod 600 it", "path", p)
	}
	s.identities = ids
	return ids, nil
}

// Entries lists committed backups of a source (all sources when empty) in
// the named storages (all configured storages when nil). Unreadable
// manifests and unreachable storages are returned as warnings.
func (s *Setup) Entries(ctx context.Context, src string, storageNames []string) ([]catalog.Entry, []string, error) {
	if storageNames == nil {
		// Every storage: `copy` may have put backups of a source in storages
		// it does not write to. The source's own storages come first, so a
		// restore prefers them.
		if sc, ok := s.Cfg.Sources[src]; ok {
			storageNames = append(storageNames, sc.Storages...)
		}
		for _, n := range s.Cfg.StorageNames {
			if !slices.Contains(storageNames, n) {
				storageNames = append(storageNames, n)
			}
		}
	}
	var all []catalog.Entry
	var warns []string
	for _, n := range storageNames {
		st, err := s.Storage(ctx, n)
		if err != nil {
			warns = append(warns, err.Error())
			continue
		}
		es, err := catalog.List(ctx, st, src, func(key string, err error) {
			warns = append(warns, fmt.Sprintf("%s: ignoring %s: %v", n, key, err))
		})
		if err != nil {
			warns = append(warns, err.Error())
			continue
		}
		all = append(all, es...)
	}
	catalog.Sort(all)
	return all, warns, nil
}
