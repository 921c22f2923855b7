package sftptest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"

	pkgsftp "github.com/pkg/sftp"
)

// handler serves SFTP requests from the server's os.Root. Request paths are
// already cleaned absolute paths; rel turns them into names relative to the
// root, and os.Root refuses anything that would leave it (symlinks too).
type handler struct{ s *Server }

var errWritesOff = errors.New("sftptest: writes are failing (FailWrites)")

func rel(p string) string {
	p = path.Clean("/" + p)
	if p == "/" {
		return "."
	}
	return p[1:]
}

func (h *handler) writable() error {
	if h.s.failWrites.Load() {
		return errWritesOff
	}
	return nil
}

// Fileread opens a file for reading.
func (h *handler) Fileread(r *pkgsftp.Request) (io.ReaderAt, error) {
	f, err := h.s.root.Open(rel(r.Filepath))
	h.s.count("Get", err)
	return f, err
}

// Filewrite opens (and maybe creates) a file for writing.
func (h *handler) Filewrite(r *pkgsftp.Request) (io.WriterAt, error) {
	if err := h.writable(); err != nil {
		return nil, err
	}
	pf := r.Pflags()
	flag := os.O_WRONLY
	if pf.Read {
		flag = os.O_RDWR
	}
	if pf.Creat {
		flag |= os.O_CREATE
	}
	if pf.Trunc {
		flag |= os.O_TRUNC
	}
	if pf.Excl {
		flag |= os.O_EXCL
	}
	f, err := h.s.root.OpenFile(rel(r.Filepath), flag, 0o600)
	h.s.count("Put", err)
	if err != nil {
		return nil, err
	}
	return &writer{f: f, s: h.s}, nil
}

// writer checks FailWrites on every write, so a test can make an upload
// in progress fail.
type writer struct {
	f *os.File
	s *Server
}

func (w *writer) WriteAt(p []byte, off int64) (int, error) {
	if w.s.failWrites.Load() {
		return 0, errWritesOff
	}
	return w.f.WriteAt(p, off)
}

func (w *writer) Close() error { return w.f.Close() }

// Filecmd handles the commands that change the tree.
func (h *handler) Filecmd(r *pkgsftp.Request) error {
	err := h.filecmd(r)
	h.s.count(r.Method, err)
	return err
}

func (h *handler) filecmd(r *pkgsftp.Request) error {
	if r.Method != "Setstat" && r.Method != "Remove" && r.Method != "Rmdir" {
		if err := h.writable(); err != nil {
			return err
		}
	}
	root := h.s.root
	name := rel(r.Filepath)
	switch r.Method {
	case "Setstat":
		return h.setstat(r, name)
	case "Rename":
		// SSH_FXP_RENAME never replaces an existing file (draft-ietf-secsh-filexfer-02 6.5).
		if _, err := root.Lstat(rel(r.Target)); err == nil {
			return &os.PathError{Op: "rename", Path: r.Target, Err: fs.ErrExist}
		}
		return root.Rename(name, rel(r.Target))
	case "Rmdir":
		fi, err := root.Lstat(name)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return &os.PathError{Op: "rmdir", Path: r.Filepath, Err: syscall.ENOTDIR}
		}
		return root.Remove(name)
	case "Remove":
		fi, err := root.Lstat(name)
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return &os.PathError{Op: "remove", Path: r.Filepath, Err: syscall.EISDIR}
		}
		return root.Remove(name)
	case "Mkdir":
		return root.Mkdir(name, 0o700)
	case "Link":
		if h.s.opts.noHardlink {
			return pkgsftp.ErrSSHFxOpUnsupported
		}
		return root.Link(name, rel(r.Target))
	case "Symlink":
		return pkgsftp.ErrSSHFxOpUnsupported
	}
	return fmt.Errorf("sftptest: unsupported method %s", r.Method)
}

func (h *handler) setstat(r *pkgsftp.Request, name string) error {
	af, attrs := r.AttrFlags(), r.Attributes()
	if af.Size {
		if err := h.writable(); err != nil {
			return err
		}
		f, err := h.s.root.OpenFile(name, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		err = f.Truncate(int64(attrs.Size))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	if af.Permissions {
		if err := h.s.root.Chmod(name, attrs.FileMode().Perm()); err != nil {
			return err
		}
	}
	if af.Acmodtime {
		if err := h.s.root.Chtimes(name, attrs.AccessTime(), attrs.ModTime()); err != nil {
			return err
		}
	}
	return nil
}

// PosixRename renames, replacing an existing target
// (posix-rename@openssh.com).
func (h *handler) PosixRename(r *pkgsftp.Request) error {
	if h.s.opts.noPosixRename {
		return pkgsftp.ErrSSHFxOpUnsupported
	}
	if err := h.writable(); err != nil {
		return err
	}
	err := h.s.root.Rename(rel(r.Filepath), rel(r.Target))
	h.s.count("PosixRename", err)
	return err
}

// StatVFS reports the served folder's file system (statvfs@openssh.com).
func (h *handler) StatVFS(r *pkgsftp.Request) (*pkgsftp.StatVFS, error) {
	if h.s.opts.noStatVFS {
		return nil, pkgsftp.ErrSSHFxOpUnsupported
	}
	if _, err := h.s.root.Stat(rel(r.Filepath)); err != nil {
		return nil, err
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(h.s.Root, &st); err != nil {
		return nil, err
	}
	h.s.count("StatVFS", nil)
	return &pkgsftp.StatVFS{
		Bsize:   uint64(st.Bsize),
		Frsize:  uint64(st.Frsize),
		Blocks:  st.Blocks,
		Bfree:   st.Bfree,
		Bavail:  st.Bavail,
		Files:   st.Files,
		Ffree:   st.Ffree,
		Favail:  st.Ffree,
		Namemax: uint64(st.Namelen),
	}, nil
}

// Filelist lists a folder or describes one file.
func (h *handler) Filelist(r *pkgsftp.Request) (pkgsftp.ListerAt, error) {
	root := h.s.root
	name := rel(r.Filepath)
	switch r.Method {
	case "List":
		d, err := root.Open(name)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		ents, err := d.ReadDir(-1)
		if err != nil {
			return nil, err
		}
		out := make(lister, 0, len(ents))
		for _, e := range ents {
			fi, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			out = append(out, fi)
		}
		return out, nil
	case "Stat":
		fi, err := root.Stat(name)
		if err != nil {
			return nil, err
		}
		return lister{fi}, nil
	case "Lstat":
		fi, err := root.Lstat(name)
		if err != nil {
			return nil, err
		}
		return lister{fi}, nil
	}
	return nil, pkgsftp.ErrSSHFxOpUnsupported
}

type lister []os.FileInfo

func (l lister) ListAt(dst []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(dst, l[off:])
	if n < len(dst) {
		return n, io.EOF
	}
	return n, nil
}
