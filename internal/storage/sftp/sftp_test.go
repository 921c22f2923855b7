package sftp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/doctor"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
	"github.com/lifeboat-backup/lifeboat/internal/storage/sftp"
	"github.com/lifeboat-backup/lifeboat/internal/storage/storagetest"
	"github.com/lifeboat-backup/lifeboat/internal/testutil/sftptest"
)

// baseConfig logs in to srv with its key and known_hosts file.
func baseConfig(srv *sftptest.Server, path string) *sftp.Config {
	return &sftp.Config{
		Host:       srv.Host,
		Port:       srv.Port,
		User:       srv.User,
		KeyFile:    srv.KeyFile,
		KnownHosts: srv.KnownHosts,
		Path:       path,
	}
}

func options(t *testing.T, env map[string]string) storage.Options {
	return storage.Options{
		Dir: t.TempDir(),
		Env: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
	}
}

func open(t *testing.T, cfg *sftp.Config, opt storage.Options) *sftp.Store {
	t.Helper()
	st, err := sftp.New(t.Context(), "test", cfg, opt)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// diskFiles lists every file (hidden ones too) below dir on the server's
// disk, as slash paths relative to dir.
func diskFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// conformance runs the suite; commit is the method the server must have
// seen commits use ("Link", "PosixRename" or "Rename").
func conformance(t *testing.T, commit string, opts ...sftptest.Option) {
	srv := sftptest.Start(t, opts...)
	n := 0
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		n++
		// Alternate relative (login folder) and absolute paths.
		p := fmt.Sprintf("stores/s%d", n)
		if n%2 == 0 {
			p = "/" + p
		}
		return open(t, baseConfig(srv, p), options(t, nil))
	})
	if left := diskFiles(t, srv.Root); slices.ContainsFunc(left, func(f string) bool { return strings.HasSuffix(f, ".part") }) {
		t.Fatalf("temp files left on the server: %v", left)
	}
	for _, m := range []string{"Link", "PosixRename", "Rename"} {
		if n := srv.Calls(m); (n > 0) != (m == commit) {
			t.Errorf("server saw %d successful %s requests; commits should use %s only", n, m, commit)
		}
	}
}

func TestConformance(t *testing.T) { conformance(t, "Link") }

// The server offers hardlink@openssh.com but the file system refuses hard
// links: commits fall back to a checked posix-rename.
func TestConformanceWithoutHardlink(t *testing.T) {
	conformance(t, "PosixRename", sftptest.WithoutHardlink())
}

// Neither hard links nor posix-rename: commits use SSH_FXP_RENAME.
func TestConformancePlainRename(t *testing.T) {
	conformance(t, "Rename", sftptest.WithoutHardlink(), sftptest.WithoutPosixRename())
}

// Many writers of one key: exactly one wins, and its content stays.
func TestConcurrentPutsOfOneKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []sftptest.Option
	}{{"hardlink", nil}, {"rename", []sftptest.Option{sftptest.WithoutHardlink()}}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := sftptest.Start(t, tc.opts...)
			st := open(t, baseConfig(srv, "b"), options(t, nil))
			var wg sync.WaitGroup
			var ok, exist atomic.Int32
			winner := make(chan byte, 8)
			for i := range 8 {
				wg.Go(func() {
					_, err := st.Put(t.Context(), "k/obj", bytes.NewReader(bytes.Repeat([]byte{byte('a' + i)}, 100<<10)))
					switch {
					case err == nil:
						ok.Add(1)
						winner <- byte('a' + i)
					case errors.Is(err, fs.ErrExist):
						exist.Add(1)
					default:
						t.Errorf("Put: %v", err)
					}
				})
			}
			wg.Wait()
			// Without hard links the check-then-rename has a window, which
			// the package doc admits; with them exactly one must win.
			if tc.name == "hardlink" && (ok.Load() != 1 || exist.Load() != 7) {
				t.Fatalf("%d Puts succeeded and %d saw fs.ErrExist; want 1 and 7", ok.Load(), exist.Load())
			}
			if ok.Load() < 1 {
				t.Fatal("no Put succeeded")
			}
			rc, err := st.Open(t.Context(), "k/obj")
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, _ := io.ReadAll(rc)
			if len(got) != 100<<10 || bytes.Count(got, got[:1]) != len(got) {
				t.Fatalf("object is a mix of writers (len %d)", len(got))
			}
			if tc.name == "hardlink" && got[0] != <-winner {
				t.Fatal("object content is not the winner's")
			}
		})
	}
}

func TestReconnectBetweenOperations(t *testing.T) {
	srv := sftptest.Start(t)
	st := open(t, baseConfig(srv, "r"), options(t, nil))
	if _, err := st.Put(t.Context(), "a", strings.NewReader("one")); err != nil {
		t.Fatal(err)
	}
	srv.CloseConns()
	if _, err := st.Stat(t.Context(), "a"); err != nil {
		t.Fatalf("Stat after the connection dropped: %v", err)
	}
	srv.CloseConns()
	if _, err := st.Put(t.Context(), "b", strings.NewReader("two")); err != nil {
		t.Fatalf("Put after the connection dropped: %v", err)
	}
	srv.CloseConns()
	var keys []string
	if err := st.List(t.Context(), "", func(o storage.Object) error { keys = append(keys, o.Key); return nil }); err != nil {
		t.Fatalf("List after the connection dropped: %v", err)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"a", "b"}) {
		t.Fatalf("List = %v", keys)
	}
	if n := srv.Logins(); n != 4 {
		t.Fatalf("%d logins, want 4 (one per dropped connection)", n)
	}
}

// hookReader yields n bytes of zeros, calling hook once after `at` bytes.
type hookReader struct {
	n, at, done int
	hook        func()
	fired       bool
}

func (h *hookReader) Read(p []byte) (int, error) {
	if h.done >= h.n {
		return 0, io.EOF
	}
	if !h.fired && h.done >= h.at {
		h.fired = true
		h.hook()
	}
	k := min(len(p), h.n-h.done)
	clear(p[:k])
	h.done += k
	return k, nil
}

func assertNothingStored(t *testing.T, srv *sftptest.Server, allowTemp bool) {
	t.Helper()
	for _, f := range diskFiles(t, srv.Root) {
		if !allowTemp || !strings.HasPrefix(filepath.Base(f), ".") || !strings.HasSuffix(f, ".part") {
			t.Fatalf("file left on the server: %s", f)
		}
	}
}

func TestConnectionDroppedMidUpload(t *testing.T) {
	srv := sftptest.Start(t)
	st := open(t, baseConfig(srv, "d"), options(t, nil))
	_, err := st.Put(t.Context(), "x/obj", &hookReader{n: 64 << 20, at: 8 << 20, hook: srv.CloseConns})
	if err == nil {
		t.Fatal("Put succeeded although the connection dropped mid-upload")
	}
	t.Logf("Put error: %v", err)
	// The temp file is removed on a new connection.
	assertNothingStored(t, srv, false)
	if _, err := st.Stat(t.Context(), "x/obj"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat = %v, want fs.ErrNotExist", err)
	}
}

func TestServerKilledMidUpload(t *testing.T) {
	srv := sftptest.Start(t)
	st := open(t, baseConfig(srv, "k"), options(t, nil))
	_, err := st.Put(t.Context(), "x/obj", &hookReader{n: 64 << 20, at: 8 << 20, hook: srv.Kill})
	if err == nil {
		t.Fatal("Put succeeded although the server died mid-upload")
	}
	t.Logf("Put error: %v", err)
	// The temp file cannot be removed (no server), but nothing is committed.
	assertNothingStored(t, srv, true)
	if _, err := st.Stat(t.Context(), "x/obj"); err == nil {
		t.Fatal("Stat succeeded against a dead server")
	}
}

func TestWritesFailMidUpload(t *testing.T) {
	srv := sftptest.Start(t)
	st := open(t, baseConfig(srv, "w"), options(t, nil))
	_, err := st.Put(t.Context(), "x/obj", &hookReader{n: 32 << 20, at: 4 << 20, hook: func() { srv.FailWrites(true) }})
	if err == nil {
		t.Fatal("Put succeeded although the server refused writes")
	}
	if !strings.Contains(err.Error(), "x/obj") {
		t.Fatalf("error does not name the key: %v", err)
	}
	assertNothingStored(t, srv, false)
	srv.FailWrites(false)
	if _, err := st.Put(t.Context(), "x/obj", strings.NewReader("ok")); err != nil {
		t.Fatalf("Put after writes work again: %v", err)
	}
}

func TestSpace(t *testing.T) {
	srv := sftptest.Start(t)
	st := open(t, baseConfig(srv, "sp"), options(t, nil))
	sp, err := st.Space(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var fsst syscall.Statfs_t
	if err := syscall.Statfs(srv.Root, &fsst); err != nil {
		t.Fatal(err)
	}
	total := int64(fsst.Blocks) * int64(fsst.Bsize)
	if sp.Free <= 0 || sp.Free > total {
		t.Fatalf("Free = %d, want within (0, %d]", sp.Free, total)
	}
	t.Logf("free %d MiB of %d MiB", sp.Free>>20, total>>20)

	srv2 := sftptest.Start(t, sftptest.WithoutStatVFS())
	st2 := open(t, baseConfig(srv2, "sp"), options(t, nil))
	sp, err = st2.Space(t.Context())
	if err != nil || sp.Free != -1 {
		t.Fatalf("without statvfs: Space = %+v, %v; want Free -1 and no error", sp, err)
	}
}

func TestUsedAndPartials(t *testing.T) {
	srv := sftptest.Start(t)
	st := open(t, baseConfig(srv, "/u"), options(t, nil))
	for k, v := range map[string]string{"src/a": "12345", "src/b": "678", "other/c": "9"} {
		if _, err := st.Put(t.Context(), k, strings.NewReader(v)); err != nil {
			t.Fatal(err)
		}
	}
	// A temp file a crash left behind.
	left := filepath.Join(srv.Root, "u", "src", ".a.deadbeef.part")
	if err := os.WriteFile(left, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	if err := os.Chtimes(left, old, old); err != nil {
		t.Fatal(err)
	}
	used, err := st.Used(t.Context())
	if err != nil || used != 9 {
		t.Fatalf("Used = %d, %v; want 9", used, err)
	}
	var got []string
	err = st.Partials(t.Context(), func(p string, fi fs.FileInfo) error {
		got = append(got, p)
		if !fi.ModTime().Equal(old) {
			t.Errorf("partial mod time %v, want %v", fi.ModTime(), old)
		}
		return nil
	})
	if err != nil || !slices.Equal(got, []string{"src/.a.deadbeef.part"}) {
		t.Fatalf("Partials = %v, %v", got, err)
	}
	if err := st.RemovePartial(t.Context(), "src/a"); err == nil {
		t.Fatal("RemovePartial accepted an object's name")
	}
	if err := st.RemovePartial(t.Context(), got[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("partial still there: %v", err)
	}
	if _, err := st.Stat(t.Context(), "src/a"); err != nil {
		t.Fatalf("object gone: %v", err)
	}
}

func TestDoctor(t *testing.T) {
	srv := sftptest.Start(t)
	st := open(t, baseConfig(srv, "doc"), options(t, nil))
	fs := st.Doctor(t.Context())
	for _, f := range fs {
		t.Logf("%s: %s (%s)", f.Level, f.Msg, f.Hint)
		if f.Level == doctor.Fail {
			t.Errorf("unexpected failure: %s", f.Msg)
		}
	}
	if len(fs) == 0 || fs[0].Level != doctor.OK || !strings.Contains(fs[0].Msg, sshFingerprint(srv)) {
		t.Fatalf("first finding should confirm the host key: %+v", fs)
	}
	if !slices.ContainsFunc(fs, func(f doctor.Finding) bool { return strings.Contains(f.Msg, "fsync@openssh.com") }) {
		t.Error("no warning about the missing fsync extension")
	}
	assertNothingStored(t, srv, false)

	srv.FailWrites(true)
	fs = st.Doctor(t.Context())
	if !slices.ContainsFunc(fs, func(f doctor.Finding) bool { return f.Level == doctor.Fail && strings.Contains(f.Msg, "cannot write") }) {
		t.Fatalf("no failure for a read-only folder: %+v", fs)
	}
	srv.Kill()
	fs = st.Doctor(t.Context())
	if len(fs) != 1 || fs[0].Level != doctor.Fail {
		t.Fatalf("dead server: %+v", fs)
	}
}

func TestValidate(t *testing.T) {
	ok := func() *sftp.Config {
		c := sftp.DefaultConfig()
		c.Host, c.User, c.Path, c.KeyFile = "backup.example.com", "bk", "backups", "id"
		return c
	}
	for _, tc := range []struct {
		name   string
		change func(c *sftp.Config)
		field  string // "" means valid
	}{
		{"valid", func(*sftp.Config) {}, ""},
		{"no host", func(c *sftp.Config) { c.Host = "" }, "host"},
		{"url host", func(c *sftp.Config) { c.Host = "sftp://x" }, "host"},
		{"host with port", func(c *sftp.Config) { c.Host = "x:2222" }, "host"},
		{"ipv6 host", func(c *sftp.Config) { c.Host = "::1" }, ""},
		{"no user", func(c *sftp.Config) { c.User = "" }, "user"},
		{"no path", func(c *sftp.Config) { c.Path = "" }, "path"},
		{"bad port", func(c *sftp.Config) { c.Port = 70000 }, "port"},
		{"no auth", func(c *sftp.Config) { c.KeyFile = "" }, "key_file"},
		{"password only", func(c *sftp.Config) { c.KeyFile = ""; c.Password = config.NewSecret("pw") }, ""},
		{"agent only", func(c *sftp.Config) { c.KeyFile = ""; c.UseAgent = true }, ""},
		{"passphrase without key", func(c *sftp.Config) {
			c.KeyFile, c.UseAgent, c.KeyPassphrase = "", true, config.NewSecret("x")
		}, "key_passphrase"},
		{"bad host_key", func(c *sftp.Config) { c.HostKey = "nope" }, "host_key"},
		{"short fingerprint", func(c *sftp.Config) { c.HostKey = "SHA256:abc" }, "host_key"},
		{"fingerprint", func(c *sftp.Config) { c.HostKey = "SHA256:" + strings.Repeat("A", 43) }, ""},
		{"host_key and known_hosts", func(c *sftp.Config) {
			c.HostKey, c.KnownHosts = "SHA256:"+strings.Repeat("A", 43), "kh"
		}, "known_hosts"},
		{"prune creds empty", func(c *sftp.Config) { c.PruneCredentials = &sftp.Credentials{User: "p"} }, "prune_credentials"},
		{"prune creds", func(c *sftp.Config) { c.PruneCredentials = &sftp.Credentials{KeyFile: "p"} }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok()
			tc.change(c)
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var fe *config.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || fe.Hint == "" {
				t.Fatalf("Validate = %v, want a field error for %s with a hint", err, tc.field)
			}
		})
	}
}

func TestNewFailsFast(t *testing.T) {
	srv := sftptest.Start(t)
	srv.Kill()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err := sftp.New(ctx, "gone", baseConfig(srv, "p"), options(t, nil))
	if err == nil || !strings.Contains(err.Error(), srv.Addr) {
		t.Fatalf("New against a dead server: %v", err)
	}
}
