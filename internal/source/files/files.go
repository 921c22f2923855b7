// Package files backs up folders and files as a tar stream.
//
// Each configured path becomes a top-level entry named after its base name
// ("./uploads" -> "uploads/..."), so restoring into a folder recreates
// TARGET/uploads. Permissions, modification times (to the nanosecond, PAX
// headers), ownership and symbolic links are kept; symbolic links are stored
// as links, never followed. Sockets, devices and FIFOs are skipped with a
// warning.
package files

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/source"
)

// Config is the `type: files` source configuration.
type Config struct {
	Paths []string `yaml:"paths"`
	// Include, when set, keeps only files matching one of the globs.
	Include []string `yaml:"include"`
	// Exclude drops files and folders matching any glob.
	Exclude []string `yaml:"exclude"`
}

// Validate implements config.Spec.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Paths) == 0 {
		errs = append(errs, config.Errorf("paths", "for example `paths: [./uploads]`", "paths is required"))
	}
	seen := map[string]int{}
	for i, p := range c.Paths {
		b := filepath.Base(filepath.Clean(p))
		if p == "" || b == "/" || b == "." || b == ".." {
			errs = append(errs, config.Errorf(fmt.Sprintf("paths[%d]", i), "name a folder or file below it, such as ./uploads", "%q cannot be backed up as a whole", p))
			continue
		}
		if j, ok := seen[b]; ok {
			errs = append(errs, config.Errorf(fmt.Sprintf("paths[%d]", i), "each path becomes a top-level folder named after its last element; use a separate source", "paths[%d] and paths[%d] both end in %q", j, i, b))
		}
		seen[b] = i
	}
	for field, globs := range map[string][]string{"include": c.Include, "exclude": c.Exclude} {
		for i, g := range globs {
			if _, err := path.Match(strings.ReplaceAll(g, "**", "*"), ""); err != nil {
				errs = append(errs, config.Errorf(fmt.Sprintf("%s[%d]", field, i), "globs use *, ?, [abc] and ** (any depth)", "bad glob %q", g))
			}
		}
	}
	return errors.Join(errs...)
}

// Describe says what the source is, for `lifeboat explain`.
func (c *Config) Describe(dir string) string {
	var ps []string
	for _, p := range c.Paths {
		ps = append(ps, config.Abs(dir, p))
	}
	s := "files in " + strings.Join(ps, ", ") + " (as tar: modes, times and links kept)"
	if len(c.Include) > 0 {
		s += "; only " + strings.Join(c.Include, ", ")
	}
	if len(c.Exclude) > 0 {
		s += "; skipping " + strings.Join(c.Exclude, ", ")
	}
	return s
}

// Source is a set of paths.
type Source struct {
	cfg   Config
	roots []string // absolute
}

var (
	_ source.Source   = (*Source)(nil)
	_ source.Restorer = (*Source)(nil)
)

// New returns the source for cfg.
func New(cfg *Config, d source.Deps) (*Source, error) {
	s := &Source{cfg: *cfg}
	for _, p := range cfg.Paths {
		abs, err := filepath.Abs(d.Path(p))
		if err != nil {
			return nil, err
		}
		s.roots = append(s.roots, abs)
	}
	return s, nil
}

func (s *Source) Format() string { return "tar" }

// Identity is the sorted set of canonical root paths.
func identity(roots []string) string {
	var ps []string
	for _, r := range roots {
		ps = append(ps, canonical(r))
	}
	sort.Strings(ps)
	return "files:" + strings.Join(ps, ";")
}

func canonical(p string) string {
	if c, err := filepath.EvalSymlinks(p); err == nil {
		return c
	}
	return filepath.Clean(p)
}

// Dump writes a tar stream of every configured path.
func (s *Source) Dump(ctx context.Context, w io.Writer, meta *source.Meta) error {
	tw := tar.NewWriter(w)
	st := &dumpState{ctx: ctx, tw: tw, cfg: &s.cfg, meta: meta, buf: make([]byte, 256<<10)}
	for _, root := range s.roots {
		fi, err := os.Lstat(root)
		if err != nil {
			return fmt.Errorf("read %s: %w", root, err)
		}
		if err := st.walk(root, filepath.Base(root), fi, true); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	meta.Identity = identity(s.roots)
	meta.Files = st.files
	meta.Extra = map[string]string{"bytes": fmt.Sprint(st.bytes)}
	return nil
}

type dumpState struct {
	ctx          context.Context
	tw           *tar.Writer
	cfg          *Config
	meta         *source.Meta
	files, bytes int64
	buf          []byte
}

// matches reports whether glob matches rel (slash path from the archive
// root) : a glob without "/" matches any base name, one with "/" the whole
// path, and "**" matches across folders.
func matches(glob, rel string) bool {
	if !strings.Contains(glob, "/") {
		ok, _ := path.Match(glob, path.Base(rel))
		return ok
	}
	return matchPath(strings.Split(strings.TrimPrefix(glob, "/"), "/"), strings.Split(rel, "/"))
}

func matchPath(g, p []string) bool {
	for len(g) > 0 {
		if g[0] == "**" {
			if len(g) == 1 {
				return true
			}
			for i := 0; i <= len(p); i++ {
				if matchPath(g[1:], p[i:]) {
					return true
				}
			}
			return false
		}
		if len(p) == 0 {
			return false
		}
		if ok, _ := path.Match(g[0], p[0]); !ok {
			return false
		}
		g, p = g[1:], p[1:]
	}
	return len(p) == 0
}

func anyMatch(globs []string, rel string) bool {
	for _, g := range globs {
		if matches(g, rel) {
			return true
		}
	}
	return false
}

func (st *dumpState) warn(format string, args ...any) {
	if len(st.meta.Warnings) < 100 {
		st.meta.Warnings = append(st.meta.Warnings, fmt.Sprintf(format, args...))
	}
}

func (st *dumpState) walk(abs, rel string, fi fs.FileInfo, isRoot bool) error {
	if err := st.ctx.Err(); err != nil {
		return err
	}
	if !isRoot && anyMatch(st.cfg.Exclude, rel) {
		return nil
	}
	mode := fi.Mode()
	switch {
	case mode.IsDir():
		if err := st.header(abs, rel+"/", fi, ""); err != nil {
			return err
		}
		entries, err := os.ReadDir(abs)
		if err != nil {
			return fmt.Errorf("read folder %s: %w", abs, err)
		}
		for _, e := range entries {
			child := filepath.Join(abs, e.Name())
			cfi, err := os.Lstat(child)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // deleted while we walked
				}
				return fmt.Errorf("read %s: %w", child, err)
			}
			if err := st.walk(child, rel+"/"+e.Name(), cfi, false); err != nil {
				return err
			}
		}
		return nil
	case mode&fs.ModeSymlink != 0:
		if len(st.cfg.Include) > 0 && !anyMatch(st.cfg.Include, rel) {
			return nil
		}
		target, err := os.Readlink(abs)
		if err != nil {
			return fmt.Errorf("read link %s: %w", abs, err)
		}
		return st.header(abs, rel, fi, target)
	case mode.IsRegular():
		if len(st.cfg.Include) > 0 && !anyMatch(st.cfg.Include, rel) {
			return nil
		}
		return st.file(abs, rel, fi)
	default:
		st.warn("skipped %s: not a regular file, folder or link (%s)", abs, mode.Type())
		return nil
	}
}

func (st *dumpState) header(abs, name string, fi fs.FileInfo, link string) error {
	h, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return fmt.Errorf("describe %s: %w", abs, err)
	}
	h.Name = name
	h.Format = tar.FormatPAX
	h.Uname, h.Gname = "", ""
	// Access and change times churn on every read; they are not data.
	h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
	return st.tw.WriteHeader(h)
}

// file copies exactly the size recorded in the header: a file that grows
// while being read is cut at that size, one that shrinks is padded with
// zeros, and both are reported as warnings rather than corrupting the tar.
func (st *dumpState) file(abs, rel string, fi fs.FileInfo) error {
	f, err := os.Open(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("open %s: %w", abs, err)
	}
	defer f.Close()
	if err := st.header(abs, rel, fi, ""); err != nil {
		return err
	}
	// Check for cancellation while reading: a large file that compresses to
	// almost nothing rarely blocks on the pipe, so it would not notice.
	n, err := io.CopyBuffer(st.tw, ctxReader{st.ctx, io.LimitReader(f, fi.Size())}, st.buf)
	if err != nil {
		return fmt.Errorf("read %s: %w", abs, err)
	}
	if n < fi.Size() {
		st.warn("%s shrank while being read (%d of %d bytes); padded with zeros", abs, n, fi.Size())
		if _, err := io.CopyN(st.tw, zeros{}, fi.Size()-n); err != nil {
			return err
		}
	} else if fi2, err := f.Stat(); err == nil && (fi2.Size() != fi.Size() || !fi2.ModTime().Equal(fi.ModTime())) {
		st.warn("%s changed while being read", abs)
	}
	st.files++
	st.bytes += fi.Size()
	return nil
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
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
