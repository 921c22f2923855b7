// Package sftp stores backups in a folder of an SSH server, over SFTP.
//
// # Writing
//
// [Store.Put] streams into a hidden temp file ".NAME.RANDOM.part" beside the
// final name, with up to 64 write requests in flight (bounded memory, full
// speed over long round trips), asks the server to fsync it when it offers
// fsync@openssh.com, and then commits without ever replacing an existing
// object: a hard link (hardlink@openssh.com) to the final name and removal of
// the temp file, or, where hard links are unavailable, a check that the name
// is free followed by a rename. A failed or cancelled Put removes its temp
// file; one that cannot (the server went away) leaves a hidden file that is
// never listed and that prune collects through [Store.Partials].
//
// # Host keys
//
// The server's host key is always checked, against known_hosts or a pinned
// host_key. An unknown or changed key is a [*HostKeyError] that prints the
// server's fingerprint and the exact known_hosts line to add.
//
// # Connections
//
// One SSH connection is shared by all operations of a Store. When it has
// dropped between operations, the next operation reconnects once. An upload
// in progress is never retried: its stream cannot be rewound.
package sftp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"

	pkgsftp "github.com/pkg/sftp"

	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

// Store is a folder on an SFTP server.
type Store struct {
	name string
	cfg  Config
	d    *dialer
	log  *slog.Logger

	mu     sync.Mutex
	c      *conn
	dir    string // absolute remote folder, known after the first connect
	closed bool

	noHardlink atomic.Bool // the server offered hardlink but it failed
}

var (
	_ storage.Storage       = (*Store)(nil)
	_ storage.SpaceReporter = (*Store)(nil)
)

const partSuffix = ".part"

// New connects to the server, checks its host key, logs in and creates the
// folder if needed. opt.Prune selects prune_credentials.
func New(ctx context.Context, name string, cfg *Config, opt storage.Options) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sftp storage %s: invalid config: %w", name, err)
	}
	d, err := newDialer(name, cfg, opt)
	if err != nil {
		return nil, fmt.Errorf("sftp storage %s: %w", name, err)
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{name: name, cfg: *cfg, d: d, log: log} // the caller tags it with "storage"
	if _, err := s.get(ctx); err != nil {
		d.close()
		return nil, fmt.Errorf("sftp storage %s: %w", name, err)
	}
	return s, nil
}

// Name returns the storage's name from the config.
func (s *Store) Name() string { return s.name }

// Dir returns the remote folder as an absolute path.
func (s *Store) Dir() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dir
}

// Close ends the connection. The Store cannot be used afterwards.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.c != nil {
		s.c.close()
		s.c = nil
	}
	s.d.close()
	return nil
}

// get returns the live connection, dialling a new one if there is none or
// the last one died.
func (s *Store) get(ctx context.Context) (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("storage is closed")
	}
	if s.c != nil && !s.c.isDead() {
		return s.c, nil
	}
	if s.c != nil {
		s.c.close()
		s.c = nil
		s.log.Warn("sftp connection lost, reconnecting")
	}
	c, err := s.d.dial(ctx)
	if err != nil {
		return nil, err
	}
	if s.dir == "" {
		dir, err := resolveDir(c, s.cfg.Path)
		if err != nil {
			c.close()
			return nil, err
		}
		s.dir = dir
	}
	s.c = c
	return c, nil
}

// drop forgets c so that the next get reconnects.
func (s *Store) drop(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c == c {
		c.close()
		s.c = nil
	}
}

// do runs op, and once more on a new connection if the connection was lost.
// Only for operations that are safe to repeat.
func (s *Store) do(ctx context.Context, op func(c *conn) error) error {
	c, err := s.get(ctx)
	if err != nil {
		return err
	}
	err = op(c)
	if !connLost(c, err) || ctx.Err() != nil {
		return err
	}
	s.drop(c)
	c, err2 := s.get(ctx)
	if err2 != nil {
		return fmt.Errorf("%w (and reconnecting failed: %w)", err, err2)
	}
	return op(c)
}

// resolveDir creates the configured folder and returns its absolute path.
func resolveDir(c *conn, p string) (string, error) {
	p = strings.TrimPrefix(p, "~/")
	if p == "" || p == "~" {
		p = "."
	}
	if err := c.sftp.MkdirAll(p); err != nil {
		return "", classify(fmt.Errorf("create folder %s: %w", p, err))
	}
	fi, err := c.sftp.Stat(p)
	if err != nil {
		return "", classify(fmt.Errorf("stat folder %s: %w", p, err))
	}
	if !fi.IsDir() {
		return "", &storage.PermanentError{Err: fmt.Errorf("path %s is not a folder", p)}
	}
	if abs, err := c.sftp.RealPath(p); err == nil && path.IsAbs(abs) {
		return abs, nil
	}
	if !path.IsAbs(p) {
		if wd, err := c.sftp.Getwd(); err == nil && path.IsAbs(wd) {
			return path.Join(wd, p), nil
		}
	}
	return path.Clean(p), nil
}

// remote maps a key to its remote path.
func (s *Store) remote(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") {
		return "", fmt.Errorf("invalid key %q", key)
	}
	for _, part := range strings.Split(key, "/") {
		if part == "" || part == "." || part == ".." || strings.HasPrefix(part, ".") {
			return "", fmt.Errorf("invalid key %q", key)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return path.Join(s.dir, key), nil
}

// Put implements [storage.Storage.Put]; see the package doc for how.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (storage.Object, error) {
	final, err := s.remote(key)
	if err != nil {
		return storage.Object{}, err
	}
	obj, err := s.put(ctx, key, final, r)
	if err != nil {
		return storage.Object{}, fmt.Errorf("upload %s to %s: %w", key, s.name, err)
	}
	return obj, nil
}

func (s *Store) put(ctx context.Context, key, final string, r io.Reader) (storage.Object, error) {
	dir := path.Dir(final)
	var (
		c   *conn
		f   *pkgsftp.File
		tmp string
	)
	// Nothing of r is read until the temp file is open, so this part may be
	// retried on a new connection.
	err := s.do(ctx, func(cc *conn) error {
		if err := cc.sftp.MkdirAll(dir); err != nil {
			return classify(fmt.Errorf("create folder: %w", err))
		}
		if _, err := cc.sftp.Lstat(final); err == nil {
			return fmt.Errorf("%s: %w", key, fs.ErrExist)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		tmp = path.Join(dir, "."+path.Base(final)+"."+randomHex()+partSuffix)
		var err error
		f, err = cc.sftp.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		if err != nil {
			return classify(fmt.Errorf("create temp file: %w", err))
		}
		c = cc
		return nil
	})
	if err != nil {
		return storage.Object{}, err
	}

	n, err := f.ReadFromWithConcurrency(ctxReader{ctx, r}, maxConcurrent)
	if err != nil {
		return storage.Object{}, s.abort(ctx, c, f, tmp, classify(fmt.Errorf("write after %d bytes: %w", n, err)))
	}
	if c.fsync {
		if err := f.Sync(); err != nil && !isUnsupported(err) {
			return storage.Object{}, s.abort(ctx, c, f, tmp, classify(fmt.Errorf("fsync: %w", err)))
		}
	}
	if err := f.Close(); err != nil {
		return storage.Object{}, s.abort(ctx, c, nil, tmp, classify(fmt.Errorf("close: %w", err)))
	}
	if err := ctx.Err(); err != nil {
		return storage.Object{}, s.abort(ctx, c, nil, tmp, err)
	}
	fi, err := c.sftp.Stat(tmp)
	if err != nil {
		return storage.Object{}, s.abort(ctx, c, nil, tmp, fmt.Errorf("stat temp file: %w", err))
	}
	if fi.Size() != n {
		return storage.Object{}, s.abort(ctx, c, nil, tmp, fmt.Errorf("wrote %d bytes but the server has %d", n, fi.Size()))
	}
	if err := s.commit(c, tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			err = fmt.Errorf("%s: %w", key, fs.ErrExist)
		}
		return storage.Object{}, s.abort(ctx, c, nil, tmp, classify(err))
	}
	return storage.Object{Key: key, Size: n, ModTime: fi.ModTime()}, nil
}

// commit makes tmp visible as final without replacing an existing final.
func (s *Store) commit(c *conn, tmp, final string) error {
	if c.hardlink && !s.noHardlink.Load() {
		err := c.sftp.Link(tmp, final)
		if err == nil {
			if err := c.sftp.Remove(tmp); err != nil {
				s.log.Warn("remove temp file after commit; prune collects it", "key", final, "err", err)
			}
			return nil
		}
		if connLost(c, err) {
			return fmt.Errorf("commit: %w", err)
		}
		if _, serr := c.sftp.Lstat(final); serr == nil {
			return fs.ErrExist
		}
		// The server offers hard links but the file system has none.
		s.noHardlink.Store(true)
		s.log.Debug("hard link failed, committing by rename", "err", err)
	}
	// Without hard links there is a small window between this check and the
	// rename in which another writer could create final; keys are unique per
	// backup, so only a misconfiguration (two hosts, one name) gets there.
	if _, err := c.sftp.Lstat(final); err == nil {
		return fs.ErrExist
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("commit: %w", err)
	}
	if c.posixRename {
		err := c.sftp.PosixRename(tmp, final)
		if err == nil || !isUnsupported(err) {
			if err != nil {
				return fmt.Errorf("commit: rename: %w", err)
			}
			return nil
		}
	}
	// SSH_FXP_RENAME refuses an existing target by the protocol's definition.
	if err := c.sftp.Rename(tmp, final); err != nil {
		if _, serr := c.sftp.Lstat(final); serr == nil {
			return fs.ErrExist
		}
		return fmt.Errorf("commit: rename: %w", err)
	}
	return nil
}

// abort closes f, removes tmp (on a new connection if c died) and returns
// cause.
func (s *Store) abort(ctx context.Context, c *conn, f *pkgsftp.File, tmp string, cause error) error {
	if f != nil {
		_ = f.Close()
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dialTimeout)
	defer cancel()
	err := c.sftp.Remove(tmp)
	if connLost(c, err) {
		s.drop(c)
		var c2 *conn
		if c2, err = s.get(cctx); err == nil {
			err = c2.sftp.Remove(tmp)
		}
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("could not remove temp file of a failed upload; it is never listed, and prune removes it",
			"key", tmp, "err", err)
	}
	return cause
}

func randomHex() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func isUnsupported(err error) bool {
	var se *pkgsftp.StatusError
	return errors.Is(err, pkgsftp.ErrSSHFxOpUnsupported) ||
		(errors.As(err, &se) && se.FxCode() == pkgsftp.ErrSSHFxOpUnsupported)
}

// classify marks errors that retrying will not fix.
func classify(err error) error {
	if errors.Is(err, fs.ErrPermission) {
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

// Open implements [storage.Storage.Open]. The returned file reads with
// several requests in flight when copied with io.Copy (it has WriteTo).
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := s.remote(key)
	if err != nil {
		return nil, err
	}
	var f *pkgsftp.File
	err = s.do(ctx, func(c *conn) error {
		var err error
		f, err = c.sftp.Open(p)
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err != nil {
			_ = f.Close()
			return err
		}
		if !fi.Mode().IsRegular() {
			_ = f.Close()
			return fs.ErrNotExist
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open %s on %s: %w", key, s.name, classify(err))
	}
	return f, nil
}

// Stat implements [storage.Storage.Stat].
func (s *Store) Stat(ctx context.Context, key string) (storage.Object, error) {
	p, err := s.remote(key)
	if err != nil {
		return storage.Object{}, err
	}
	var fi os.FileInfo
	err = s.do(ctx, func(c *conn) error {
		var err error
		fi, err = c.sftp.Stat(p)
		return err
	})
	if err == nil && !fi.Mode().IsRegular() {
		err = fs.ErrNotExist
	}
	if err != nil {
		return storage.Object{}, fmt.Errorf("stat %s on %s: %w", key, s.name, classify(err))
	}
	return storage.Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete implements [storage.Storage.Delete].
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.remote(key)
	if err != nil {
		return err
	}
	err = s.do(ctx, func(c *conn) error { return c.sftp.Remove(p) })
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		if errors.Is(err, fs.ErrPermission) && s.cfg.PruneCredentials != nil {
			err = fmt.Errorf("%w (backup logins may not delete: prune uses prune_credentials)", err)
		}
		return fmt.Errorf("delete %s from %s: %w", key, s.name, classify(err))
	}
	return nil
}

// List implements [storage.Storage.List]. Hidden files and folders (temp
// files of uploads in progress among them) are skipped.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.Object) error) error {
	start := ""
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = prefix[:i]
	}
	calls := 0
	visit := func(rel string, fi os.FileInfo) error {
		if strings.HasPrefix(fi.Name(), ".") || !fi.Mode().IsRegular() || !strings.HasPrefix(rel, prefix) {
			return nil
		}
		calls++
		return fn(storage.Object{Key: rel, Size: fi.Size(), ModTime: fi.ModTime()})
	}
	descend := func(rel string) bool {
		if strings.HasPrefix(path.Base(rel), ".") {
			return false
		}
		return strings.HasPrefix(rel+"/", prefix) || strings.HasPrefix(prefix, rel+"/")
	}
	c, err := s.get(ctx)
	for attempt := 0; err == nil; attempt++ {
		err = s.walk(ctx, c, start, descend, visit)
		// Repeat only if fn saw nothing yet, or it would see objects twice.
		if attempt > 0 || calls > 0 || !connLost(c, err) || ctx.Err() != nil {
			break
		}
		s.drop(c)
		c, err = s.get(ctx)
	}
	return err
}

// walk visits the entries below the folder rel (relative to the store's
// folder; "" is the folder itself), depth first. A missing start folder is
// empty.
func (s *Store) walk(ctx context.Context, c *conn, rel string, descend func(string) bool, visit func(string, os.FileInfo) error) error {
	dir := s.Dir()
	var rec func(rel string, top bool) error
	rec = func(rel string, top bool) error {
		ents, err := c.sftp.ReadDirContext(ctx, path.Join(dir, rel))
		if err != nil {
			if top && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if !top && errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile
			}
			return fmt.Errorf("list %s on %s: %w", rel, s.name, classify(err))
		}
		for _, fi := range ents {
			if fi.Name() == "." || fi.Name() == ".." {
				continue
			}
			k := fi.Name()
			if rel != "" {
				k = rel + "/" + k
			}
			if fi.IsDir() {
				if descend(k) {
					if err := rec(k, false); err != nil {
						return err
					}
				}
				continue
			}
			if err := visit(k, fi); err != nil {
				return err
			}
		}
		return nil
	}
	return rec(rel, true)
}
