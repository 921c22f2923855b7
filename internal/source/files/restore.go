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
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-backup/lifeboat/internal/source"
)

// Inspect describes the folder target. Restoring writes TARGET/<base> for
// each configured path; the target is "the source" when one of those is a
// configured path, or when the target lies inside one.
func (s *Source) Inspect(ctx context.Context, target string) (source.TargetInfo, error) {
	abs, err := filepath.Abs(target)
	if err != nil {
		return source.TargetInfo{}, err
	}
	var outs []string
	for _, r := range s.roots {
		outs = append(outs, filepath.Join(abs, filepath.Base(r)))
	}
	info := source.TargetInfo{Identity: identity(outs), Describe: "folder " + abs}
	ct := canonical(abs)
	for _, r := range s.roots {
		cr := canonical(r)
		if ct == cr || strings.HasPrefix(ct, cr+string(filepath.Separator)) {
			info.IsSource = true
		}
		for _, o := range outs {
			if canonical(o) == cr {
				info.IsSource = true
			}
		}
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		info.Empty = true
		return info, nil
	case err != nil:
		return info, err
	case !fi.IsDir():
		return info, fmt.Errorf("%s exists and is not a folder", abs)
	}
	entries, err := os.ReadDir(abs)
	if err != nil {
		return info, err
	}
	info.Exists, info.Empty = true, len(entries) == 0
	if len(entries) > 0 {
		info.Describe = fmt.Sprintf("folder %s (%d entries)", abs, len(entries))
	}
	return info, nil
}

// Restore extracts the tar stream into the folder target. Entries may not
// leave the target: absolute names, ".." and writing through a symbolic link
// (one from the archive or one already there) are refused.
func (s *Source) Restore(ctx context.Context, r io.Reader, target string, meta *source.Meta) error {
	abs, err := filepath.Abs(target)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", abs, err)
	}
	return Extract(ctx, r, abs)
}

type dirTime struct {
	path  string
	mtime time.Time
	mode  fs.FileMode
}

// Extract unpacks a tar stream into dir (which must exist).
func Extract(ctx context.Context, r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	var dirs []dirTime
	amRoot := os.Geteuid() == 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		name := path.Clean(strings.TrimSuffix(h.Name, "/"))
		if name == "." || path.IsAbs(h.Name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("archive entry %q would be written outside %s: refused", h.Name, dir)
		}
		local := filepath.FromSlash(name)
		mode := fs.FileMode(h.Mode).Perm()
		if h.Mode&0o4000 != 0 {
			mode |= fs.ModeSetuid
		}
		if h.Mode&0o2000 != 0 {
			mode |= fs.ModeSetgid
		}
		if h.Mode&0o1000 != 0 {
			mode |= fs.ModeSticky
		}
		// os.Root refuses paths that escape through symbolic links, which
		// covers links planted by the archive itself.
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(local, 0o700); err != nil {
				return fmt.Errorf("create folder %s: %w", name, err)
			}
			dirs = append(dirs, dirTime{local, h.ModTime, mode})
		case tar.TypeReg:
			if err := mkParent(root, local); err != nil {
				return err
			}
			if err := root.Remove(local); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("replace %s: %w", name, err)
			}
			f, err := root.OpenFile(local, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("create %s: %w", name, err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				f.Close()
				return fmt.Errorf("write %s: %w", name, err)
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("write %s: %w", name, err)
			}
			if amRoot {
				_ = root.Lchown(local, h.Uid, h.Gid)
			}
			if err := root.Chmod(local, mode); err != nil {
				return err
			}
			if err := root.Chtimes(local, h.ModTime, h.ModTime); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := mkParent(root, local); err != nil {
				return err
			}
			if err := root.Remove(local); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("replace %s: %w", name, err)
			}
			if err := root.Symlink(h.Linkname, local); err != nil {
				return fmt.Errorf("create link %s: %w", name, err)
			}
			if amRoot {
				_ = root.Lchown(local, h.Uid, h.Gid)
			}
			// Symlink times: the parent is inside the root (checked above).
			ts := []unix.Timespec{unix.NsecToTimespec(h.ModTime.UnixNano()), unix.NsecToTimespec(h.ModTime.UnixNano())}
			_ = unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(dir, local), ts, unix.AT_SYMLINK_NOFOLLOW)
		default:
			// Hard links, devices, FIFOs are never written by Dump.
			return fmt.Errorf("archive entry %q has unsupported type %q", h.Name, h.Typeflag)
		}
	}
	// Folder modes and times last, deepest first, so creating their
	// contents does not change them again.
	slices.Reverse(dirs)
	for _, d := range dirs {
		if err := root.Chmod(d.path, d.mode); err != nil {
			return err
		}
		if err := root.Chtimes(d.path, d.mtime, d.mtime); err != nil {
			return err
		}
	}
	return nil
}

func mkParent(root *os.Root, local string) error {
	if p := filepath.Dir(local); p != "." {
		if err := root.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("create folder %s: %w", p, err)
		}
	}
	return nil
}

// Snapshot returns a source reading the whole target folder.
func (s *Source) Snapshot(target string) (source.Source, error) {
	abs, err := filepath.Abs(target)
	if err != nil {
		return nil, err
	}
	return &Source{roots: []string{abs}}, nil
}

// ManualRestore extracts the plaintext tar arriving on stdin.
func (s *Source) ManualRestore(target string, meta *source.Meta) []string {
	t := source.ShellQuote(target)
	return []string{"mkdir -p " + t, "| tar -x -p -C " + t}
}
