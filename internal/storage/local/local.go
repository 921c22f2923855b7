// Package local stores backups in a folder of the local file system.
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

// Config is the `type: local` storage configuration.
type Config struct {
	Path string `yaml:"path"`
}

// Validate implements config.Spec.
func (c *Config) Validate() error {
	if c.Path == "" {
		return config.Errorf("path", "for example `path: /var/backups/lifeboat`", "path is required")
	}
	return nil
}

// Describe says what the storage is, for `lifeboat explain`.
func (c *Config) Describe(dir string) string {
	return "a folder on this machine, " + config.Abs(dir, c.Path)
}

// Store is a folder. Objects are files below Root; an object in progress is
// a hidden ".*.part" temp file, never listed.
type Store struct {
	name string
	root string
}

var (
	_ storage.Storage       = (*Store)(nil)
	_ storage.SpaceReporter = (*Store)(nil)
)

const partSuffix = ".part"

// New returns a Store rooted at root, creating it if needed.
func New(name, root string) (*Store, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("create storage folder %s: %w", root, err)
	}
	return &Store{name: name, root: root}, nil
}

func (s *Store) Name() string { return s.name }

// Root returns the folder.
func (s *Store) Root() string { return s.root }

func (s *Store) path(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") {
		return "", fmt.Errorf("invalid key %q", key)
	}
	for _, part := range strings.Split(key, "/") {
		if part == "" || part == "." || part == ".." || strings.HasPrefix(part, ".") {
			return "", fmt.Errorf("invalid key %q", key)
		}
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Put writes to a temp file in the target folder, fsyncs it, renames it into
// place and fsyncs the folder, so a crash leaves either nothing or the whole
// object. ENOSPC and EACCES are permanent.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (storage.Object, error) {
	final, err := s.path(key)
	if err != nil {
		return storage.Object{}, err
	}
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return storage.Object{}, classify(fmt.Errorf("create folder: %w", err))
	}
	if _, err := os.Lstat(final); err == nil {
		return storage.Object{}, fmt.Errorf("%s: %w", key, fs.ErrExist)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, "."+filepath.Base(final)+"."+hex.EncodeToString(rnd[:])+partSuffix)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return storage.Object{}, classify(fmt.Errorf("create temp file: %w", err))
	}
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, ctxReader{ctx, r})
	if err != nil {
		return storage.Object{}, classify(err)
	}
	if err := f.Sync(); err != nil {
		return storage.Object{}, classify(fmt.Errorf("fsync: %w", err))
	}
	if err := f.Close(); err != nil {
		return storage.Object{}, classify(fmt.Errorf("close: %w", err))
	}
	if err := ctx.Err(); err != nil {
		return storage.Object{}, err
	}
	// Link+remove instead of rename so that an existing final name is never
	// replaced: two writers of the same key cannot clobber each other.
	if err := os.Link(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return storage.Object{}, fmt.Errorf("%s: %w", key, fs.ErrExist)
		}
		if err := os.Rename(tmp, final); err != nil { // file systems without hard links
			return storage.Object{}, classify(fmt.Errorf("rename: %w", err))
		}
	} else {
		_ = os.Remove(tmp)
	}
	ok = true
	if err := syncDir(dir); err != nil {
		return storage.Object{}, classify(err)
	}
	fi, err := os.Stat(final)
	if err != nil {
		return storage.Object{}, err
	}
	if fi.Size() != n {
		return storage.Object{}, fmt.Errorf("%s: wrote %d bytes but file has %d", key, n, fi.Size())
	}
	return storage.Object{Key: key, Size: n, ModTime: fi.ModTime()}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("fsync folder: %w", err)
	}
	return nil
}

func classify(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EDQUOT) {
		return &storage.PermanentError{Err: err}
	}
	return err
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	return os.Open(p)
}

func (s *Store) Stat(ctx context.Context, key string) (storage.Object, error) {
	p, err := s.path(key)
	if err != nil {
		return storage.Object{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return storage.Object{}, err
	}
	if !fi.Mode().IsRegular() {
		return storage.Object{}, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
	}
	return storage.Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

func (s *Store) List(ctx context.Context, prefix string, fn func(storage.Object) error) error {
	// Walk only the folder part of the prefix.
	start := s.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = filepath.Join(s.root, filepath.FromSlash(prefix[:i]))
	}
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == start {
				return filepath.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && p != start {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		return fn(storage.Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
	})
	return err
}

func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return classify(err)
	}
	return nil
}

// Space reports the free bytes of the file system holding the folder.
func (s *Store) Space(ctx context.Context) (storage.Space, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.root, &st); err != nil {
		return storage.Space{Free: -1}, err
	}
	return storage.Space{Free: int64(st.Bavail) * int64(st.Bsize)}, nil
}

// Partials lists leftover temp files older than the given age, for prune's
// garbage collection (a crash between create and rename leaves them).
func (s *Store) Partials(fn func(path string, info fs.FileInfo) error) error {
	return filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(d.Name(), partSuffix) {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		return fn(p, fi)
	})
}
