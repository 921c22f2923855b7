package job

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/report"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

// Copy replicates committed backups of the given sources (all when empty)
// from one storage to another: the artifact first, its SHA-256 checked as it
// streams (a damaged artifact is never spread: the Put aborts), then the
// manifest, then drill reports. Nothing in the destination is ever deleted
// or overwritten; a second run copies nothing.
func (r *Runner) Copy(ctx context.Context, from, to storage.Storage, sources []string) []report.Item {
	if len(sources) == 0 {
		sources = []string{""}
	}
	var items []report.Item
	for _, src := range sources {
		var bad []string
		entries, err := catalog.List(ctx, from, src, func(key string, err error) { bad = append(bad, key+": "+err.Error()) })
		if err != nil {
			items = append(items, report.Item{Source: src, Status: report.Failed, Error: err.Error()})
			continue
		}
		have, err := catalog.List(ctx, to, src, nil)
		if err != nil {
			items = append(items, report.Item{Source: src, Status: report.Failed, Error: err.Error()})
			continue
		}
		present := map[string]bool{}
		for _, e := range have {
			present[e.Key] = true
		}
		for _, e := range entries {
			if present[e.Key] {
				continue
			}
			items = append(items, r.copyOne(ctx, from, to, e))
		}
		for _, b := range bad {
			items = append(items, report.Item{Source: src, Status: report.Failed, Error: "unreadable manifest, not copied: " + b})
		}
	}
	return items
}

func (r *Runner) copyOne(ctx context.Context, from, to storage.Storage, e catalog.Entry) report.Item {
	it := report.Item{Source: e.Source, Part: e.Part, BackupID: e.ID, Artifact: e.Artifact, Started: r.now(), Status: report.Failed,
		StoredSize: e.StoredSize, PlainSize: e.PlainSize}
	fail := func(err error) report.Item {
		it.Error = err.Error()
		it.Finished = r.now()
		r.log().Error("copy failed", "source", e.Source, "key", e.Key, "storage", to.Name(), "err", err)
		return it
	}
	rc, err := from.Open(ctx, e.Key)
	if err != nil {
		return fail(fmt.Errorf("open %s in %s: %w", e.Key, from.Name(), err))
	}
	vr := newVerifyingReader(rc, e.Key, e.StoredSize, e.SHA256)
	_, err = to.Put(ctx, e.Key, vr)
	rc.Close()
	if errors.Is(err, fs.ErrExist) {
		// An earlier copy stored the artifact but not its manifest: accept
		// it only if it is intact.
		if verr := r.checkStored(ctx, to, e); verr != nil {
			return fail(fmt.Errorf("%s already exists in %s without a manifest and does not match: %w", e.Key, to.Name(), verr))
		}
		err = nil
	}
	if err != nil {
		var ce *ChecksumError
		if errors.As(err, &ce) {
			return fail(fmt.Errorf("not copied, the artifact in %s is damaged: %w", from.Name(), ce))
		}
		return fail(fmt.Errorf("copy %s to %s: %w", e.Key, to.Name(), err))
	}
	raw, err := readAll(ctx, from, catalog.ManifestKey(e.Key))
	if err != nil {
		return fail(err)
	}
	if _, err := to.Put(ctx, catalog.ManifestKey(e.Key), bytes.NewReader(raw)); err != nil && !errors.Is(err, fs.ErrExist) {
		return fail(fmt.Errorf("write manifest to %s: %w", to.Name(), err))
	}
	_ = from.List(ctx, e.Key+".", func(o storage.Object) error {
		if o.Key == catalog.ManifestKey(e.Key) {
			return nil
		}
		if b, err := readAll(ctx, from, o.Key); err == nil {
			_, _ = to.Put(ctx, o.Key, bytes.NewReader(b))
		}
		return nil
	})
	it.Status = report.OK
	it.Finished = r.now()
	it.Storages = []report.StorageResult{{Storage: to.Name(), Key: e.Key, OK: true}}
	r.log().Info("copied", "source", e.Source, "key", e.Key, "storage", to.Name(), "bytes", e.StoredSize)
	return it
}

func (r *Runner) checkStored(ctx context.Context, st storage.Storage, e catalog.Entry) error {
	rc, err := st.Open(ctx, e.Key)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, newVerifyingReader(rc, e.Key, e.StoredSize, e.SHA256))
	return err
}

func readAll(ctx context.Context, st storage.Storage, key string) ([]byte, error) {
	rc, err := st.Open(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("open %s in %s: %w", key, st.Name(), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s in %s: %w", key, st.Name(), err)
	}
	return b, nil
}
