package sftp

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

// Space reports the free bytes of the server's file system holding the
// folder, through statvfs@openssh.com. Free is -1 when the server cannot
// tell (no such extension, as on many hosted SFTP services).
func (s *Store) Space(ctx context.Context) (storage.Space, error) {
	free := int64(-1)
	err := s.do(ctx, func(c *conn) error {
		if !c.statvfs {
			return nil
		}
		st, err := c.sftp.StatVFS(s.Dir())
		if err != nil {
			if isUnsupported(err) {
				return nil
			}
			return err
		}
		unit := st.Frsize
		if unit == 0 {
			unit = st.Bsize
		}
		free = int64(st.Bavail * unit)
		return nil
	})
	if err != nil {
		return storage.Space{Free: -1}, fmt.Errorf("free space of %s: %w", s.name, err)
	}
	return storage.Space{Free: free}, nil
}

// Used returns the bytes taken by the objects in the storage (what List
// shows; temp files are not counted).
func (s *Store) Used(ctx context.Context) (int64, error) {
	var n int64
	err := s.List(ctx, "", func(o storage.Object) error {
		n += o.Size
		return nil
	})
	return n, err
}

// isPartial reports whether a file name is a temp file of [Store.Put].
func isPartial(name string) bool {
	return strings.HasPrefix(name, ".") && strings.HasSuffix(name, partSuffix) && len(name) > 1+len(partSuffix)
}

// Partials calls fn for every leftover temp file of an upload (a crash or a
// lost connection between writing and committing leaves them). path is
// relative to the storage's folder, for [Store.RemovePartial]; info.ModTime
// is the server's, so prune can skip temp files of uploads still running.
func (s *Store) Partials(ctx context.Context, fn func(path string, info fs.FileInfo) error) error {
	descend := func(string) bool { return true }
	visit := func(rel string, fi os.FileInfo) error {
		if !fi.Mode().IsRegular() || !isPartial(fi.Name()) {
			return nil
		}
		return fn(rel, fi)
	}
	c, err := s.get(ctx)
	if err != nil {
		return err
	}
	return s.walk(ctx, c, "", descend, visit)
}

// RemovePartial deletes a temp file reported by [Store.Partials]. It
// refuses any other name, so it cannot delete a backup.
func (s *Store) RemovePartial(ctx context.Context, rel string) error {
	if !isPartial(path.Base(rel)) || strings.HasPrefix(rel, "/") || strings.Contains("/"+rel+"/", "/../") {
		return fmt.Errorf("remove temp file %q: not a temp file name", rel)
	}
	p := path.Join(s.Dir(), rel)
	err := s.do(ctx, func(c *conn) error { return c.sftp.Remove(p) })
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove temp file %s from %s: %w", rel, s.name, classify(err))
	}
	return nil
}
