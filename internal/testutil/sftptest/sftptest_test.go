package sftptest_test

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pkgsftp "github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/lifeboat-backup/lifeboat/internal/testutil/sftptest"
)

func dial(t *testing.T, srv *sftptest.Server) *pkgsftp.Client {
	t.Helper()
	pem, err := os.ReadFile(srv.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	hk, err := knownhosts.New(srv.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", srv.Addr, &ssh.ClientConfig{User: srv.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: hk})
	if err != nil {
		t.Fatalf("ssh dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	sc, err := pkgsftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sc.Close() })
	return sc
}

func TestServesRootOnly(t *testing.T) {
	srv := sftptest.Start(t)
	c := dial(t, srv)
	outside := filepath.Join(filepath.Dir(srv.Root), "secret")
	if err := os.WriteFile(outside, []byte("outside"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(srv.Root), filepath.Join(srv.Root, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../secret", filepath.Join(srv.Root, "rel-escape")); err != nil {
		t.Fatal(err)
	}
	// ".." is cleaned away at "/": these name root/secret, not the file outside.
	for _, p := range []string{"/../secret", "../secret", "/a/../../secret"} {
		if f, err := c.Open(p); err == nil {
			b, _ := io.ReadAll(f)
			f.Close()
			t.Errorf("Open(%q) found a file: %q", p, b)
		}
	}
	// Symlinks out of the root are refused.
	for _, p := range []string{"/escape/secret", "rel-escape"} {
		if f, err := c.Open(p); err == nil {
			b, _ := io.ReadAll(f)
			f.Close()
			t.Errorf("Open(%q) reached outside the root: %q", p, b)
		}
		if f, err := c.Create(p); err == nil {
			f.Close()
			t.Errorf("Create(%q) succeeded", p)
		}
	}
	if f, err := c.Create("/../secret"); err != nil {
		t.Fatal(err)
	} else {
		_, _ = f.Write([]byte("inside"))
		f.Close()
	}
	if b, _ := os.ReadFile(outside); string(b) != "outside" {
		t.Fatalf("file outside the root changed: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(srv.Root, "secret")); string(b) != "inside" {
		t.Fatalf("Create(/../secret) did not land in the root: %q", b)
	}

	// Inside works, and lands in Root.
	f, err := c.Create("/in/side.txt")
	if err == nil {
		t.Fatal("Create in a missing folder succeeded")
	}
	if err := c.MkdirAll("/in"); err != nil {
		t.Fatal(err)
	}
	if f, err = c.Create("/in/side.txt"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if b, err := os.ReadFile(filepath.Join(srv.Root, "in", "side.txt")); err != nil || string(b) != "hi" {
		t.Fatalf("file in root: %q, %v", b, err)
	}
	if _, err := c.Stat("/in/nothing"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat missing: %v", err)
	}
}

func TestExtensionsAndFailures(t *testing.T) {
	srv := sftptest.Start(t)
	c := dial(t, srv)
	for _, ext := range []string{"hardlink@openssh.com", "posix-rename@openssh.com", "statvfs@openssh.com"} {
		if _, ok := c.HasExtension(ext); !ok {
			t.Errorf("server does not offer %s", ext)
		}
	}
	write := func(p, s string) error {
		f, err := c.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		if err != nil {
			return err
		}
		_, err = f.Write([]byte(s))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	if err := write("/a", "a"); err != nil {
		t.Fatal(err)
	}
	if err := write("/a", "again"); err == nil {
		t.Fatal("O_EXCL create over an existing file succeeded")
	}
	if err := write("/b", "b"); err != nil {
		t.Fatal(err)
	}
	if err := c.Link("/a", "/b"); err == nil {
		t.Fatal("hard link over an existing file succeeded")
	}
	if err := c.Rename("/a", "/b"); err == nil {
		t.Fatal("SSH_FXP_RENAME over an existing file succeeded")
	}
	if err := c.Link("/a", "/c"); err != nil {
		t.Fatal(err)
	}
	if err := c.PosixRename("/a", "/b"); err != nil {
		t.Fatal(err)
	}
	if st, err := c.StatVFS("/"); err != nil || st.Bavail == 0 {
		t.Fatalf("StatVFS = %+v, %v", st, err)
	}
	if srv.Calls("Link") != 1 || srv.Calls("PosixRename") != 1 || srv.Calls("Rename") != 0 {
		t.Fatalf("Calls: link %d posix-rename %d rename %d", srv.Calls("Link"), srv.Calls("PosixRename"), srv.Calls("Rename"))
	}

	srv.FailWrites(true)
	if err := write("/d", "d"); err == nil || !strings.Contains(err.Error(), "FailWrites") {
		t.Fatalf("write with FailWrites: %v", err)
	}
	srv.FailWrites(false)
	if err := write("/d", "d"); err != nil {
		t.Fatal(err)
	}

	srv.CloseConns()
	if _, err := c.Stat("/d"); err == nil {
		t.Fatal("connection still works after CloseConns")
	}
	c2 := dial(t, srv)
	if _, err := c2.Stat("/d"); err != nil {
		t.Fatalf("new connection after CloseConns: %v", err)
	}
	srv.Kill()
	if _, err := c2.Stat("/d"); err == nil {
		t.Fatal("connection still works after Kill")
	}
	if _, err := ssh.Dial("tcp", srv.Addr, &ssh.ClientConfig{User: srv.User, HostKeyCallback: ssh.InsecureIgnoreHostKey()}); err == nil {
		t.Fatal("killed server accepted a connection")
	}
}

func TestOptions(t *testing.T) {
	srv := sftptest.Start(t, sftptest.WithoutHardlink(), sftptest.WithoutPosixRename(), sftptest.WithoutStatVFS())
	c := dial(t, srv)
	f, err := c.Create("/a")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	unsupported := func(err error) bool {
		var se *pkgsftp.StatusError
		return errors.As(err, &se) && se.FxCode() == pkgsftp.ErrSSHFxOpUnsupported
	}
	if err := c.Link("/a", "/b"); !unsupported(err) {
		t.Errorf("Link: %v", err)
	}
	if err := c.PosixRename("/a", "/b"); !unsupported(err) {
		t.Errorf("PosixRename: %v", err)
	}
	if _, err := c.StatVFS("/"); !unsupported(err) {
		t.Errorf("StatVFS: %v", err)
	}
	if err := c.Rename("/a", "/b"); err != nil {
		t.Errorf("Rename: %v", err)
	}
}
