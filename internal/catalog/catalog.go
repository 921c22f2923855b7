package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

// Entry is a committed backup found in a storage.
type Entry struct {
	*Manifest
	Storage storage.Storage
	// ManifestModTime is the storage's own modification time of the manifest,
	// to cross-check the manifest's clock.
	ManifestModTime time.Time
	// Drill is the newest drill report, if any.
	Drill *DrillReport
}

// maxManifestSize bounds what is read as a manifest.
const maxManifestSize = 4 << 20

// List returns the committed backups of source (all sources when empty) in
// st, oldest first (by sequence, then time). Manifests that cannot be read
// are reported through bad, which may be nil, and skipped.
func List(ctx context.Context, st storage.Storage, src string, bad func(key string, err error)) ([]Entry, error) {
	prefix := ""
	if src != "" {
		prefix = src + "/"
	}
	var metas []storage.Object
	drills := map[string]string{} // artifact key -> newest drill report key
	err := st.List(ctx, prefix, func(o storage.Object) error {
		switch {
		case strings.HasSuffix(o.Key, ManifestSuffix):
			metas = append(metas, o)
		case strings.HasSuffix(o.Key, DrillSuffix):
			if a, ok := drillArtifact(o.Key); ok && o.Key > drills[a] {
				drills[a] = o.Key
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", st.Name(), err)
	}
	var out []Entry
	for _, o := range metas {
		m, err := ReadManifest(ctx, st, o.Key)
		if err != nil {
			if bad != nil {
				bad(o.Key, err)
			}
			continue
		}
		if m.Key != strings.TrimSuffix(o.Key, ManifestSuffix) {
			if bad != nil {
				bad(o.Key, fmt.Errorf("manifest names artifact %s but is stored as %s", m.Key, o.Key))
			}
			continue
		}
		e := Entry{Manifest: m, Storage: st, ManifestModTime: o.ModTime}
		if dk, ok := drills[m.Key]; ok {
			if d, err := ReadDrill(ctx, st, dk); err == nil {
				e.Drill = d
			} else if bad != nil {
				bad(dk, err)
			}
		}
		out = append(out, e)
	}
	Sort(out)
	return out, nil
}

// Sort orders entries oldest first: by source, part, sequence, then start time.
func Sort(es []Entry) {
	slices.SortStableFunc(es, func(a, b Entry) int {
		if c := strings.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		if c := strings.Compare(a.Part, b.Part); c != 0 {
			return c
		}
		if a.Sequence != b.Sequence {
			if a.Sequence < b.Sequence {
				return -1
			}
			return 1
		}
		return a.Started.Compare(b.Started)
	})
}

// ReadManifest reads and decodes the manifest at key.
func ReadManifest(ctx context.Context, st storage.Storage, key string) (*Manifest, error) {
	b, err := readSmall(ctx, st, key)
	if err != nil {
		return nil, err
	}
	return Decode(b)
}

func readSmall(ctx context.Context, st storage.Storage, key string) ([]byte, error) {
	rc, err := st.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if len(b) > maxManifestSize {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a manifest", key, maxManifestSize)
	}
	return b, nil
}

// Find returns the entries whose id starts with idPrefix (at least 4
// characters), across entries.
func Find(entries []Entry, idPrefix string) ([]Entry, error) {
	if len(idPrefix) < 4 {
		return nil, errors.New("give at least 4 characters of the backup id")
	}
	var out []Entry
	for _, e := range entries {
		if strings.HasPrefix(e.ID, idPrefix) {
			out = append(out, e)
		}
	}
	return out, nil
}
