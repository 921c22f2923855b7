package files

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/source"
)

func TestMatches(t *testing.T) {
	for _, c := range []struct {
		glob, rel string
		want      bool
	}{
		{"*.tmp", "uploads/a.tmp", true},
		{"*.tmp", "uploads/deep/b.tmp", true},
		{"*.tmp", "uploads/a.tmpx", false},
		{"uploads/cache/**", "uploads/cache/x/y", true},
		{"uploads/cache/**", "uploads/cache", true},
		{"uploads/cache/**", "uploads/cached/x", false},
		{"**/thumbs/*.jpg", "uploads/a/b/thumbs/1.jpg", true},
		{"**/thumbs/*.jpg", "uploads/thumbs/1.png", false},
		{"uploads/*.log", "uploads/a/b.log", false},
	} {
		if got := matches(c.glob, c.rel); got != c.want {
			t.Errorf("matches(%q, %q) = %v, want %v", c.glob, c.rel, got, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "paths is required"},
		{Config{Paths: []string{"/"}}, "cannot be backed up as a whole"},
		{Config{Paths: []string{"a/uploads", "b/uploads"}}, "both end in"},
		{Config{Paths: []string{"x"}, Exclude: []string{"[a"}}, "bad glob"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want %q", c.cfg, err, c.want)
		}
	}
}

// A hostile archive cannot write outside the target.
func TestExtractRefusesEscapes(t *testing.T) {
	cases := map[string][]*tar.Header{
		"dotdot":   {{Name: "../escape.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}},
		"absolute": {{Name: "/tmp/escape.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}},
		"through symlink": {
			{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "..", Mode: 0o777},
			{Name: "link/escape.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1},
		},
		"through absolute symlink": {
			{Name: "abs", Typeflag: tar.TypeSymlink, Linkname: "/tmp", Mode: 0o777},
			{Name: "abs/escape.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1},
		},
	}
	for name, hdrs := range cases {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "target")
			os.Mkdir(dir, 0o755)
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, h := range hdrs {
				tw.WriteHeader(h)
				if h.Size > 0 {
					tw.Write([]byte("x"))
				}
			}
			tw.Close()
			if err := Extract(context.Background(), &buf, dir); err == nil {
				t.Fatal("hostile archive extracted without error")
			}
			if _, err := os.Stat(filepath.Join(parent, "escape.txt")); err == nil {
				t.Fatal("a file was written outside the target")
			}
			if _, err := os.Stat("/tmp/escape.txt"); err == nil {
				t.Fatal("a file was written to /tmp")
			}
		})
	}
}

// Files that change size while read do not corrupt the archive.
func TestDumpRoundTripKeepsMetadata(t *testing.T) {
	root := t.TempDir()
	up := filepath.Join(root, "up")
	os.MkdirAll(filepath.Join(up, "a/b"), 0o750)
	os.WriteFile(filepath.Join(up, "a/b/f.txt"), []byte("hello"), 0o640)
	os.WriteFile(filepath.Join(up, "x.tmp"), []byte("skip"), 0o644)
	os.Symlink("a/b/f.txt", filepath.Join(up, "link"))
	mt := time.Date(2020, 1, 2, 3, 4, 5, 123456789, time.UTC)
	os.Chtimes(filepath.Join(up, "a/b/f.txt"), mt, mt)
	s, err := New(&Config{Paths: []string{up}, Exclude: []string{"*.tmp"}}, source.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	var meta source.Meta
	if err := s.Dump(context.Background(), &buf, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Files != 1 {
		t.Fatalf("meta.Files = %d, want 1", meta.Files)
	}
	out := filepath.Join(root, "out")
	if err := s.Restore(context.Background(), &buf, out, &meta); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(out, "up/a/b/f.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(mt) {
		t.Fatalf("mode %v mtime %v", fi.Mode(), fi.ModTime())
	}
	if d, _ := os.Stat(filepath.Join(out, "up/a")); d.Mode().Perm() != 0o750 {
		t.Fatalf("folder mode %v, want 750", d.Mode().Perm())
	}
	if l, _ := os.Readlink(filepath.Join(out, "up/link")); l != "a/b/f.txt" {
		t.Fatalf("link = %q", l)
	}
	if _, err := os.Stat(filepath.Join(out, "up/x.tmp")); err == nil {
		t.Fatal("excluded file restored")
	}
}

// Cancelling stops a dump inside a large file, even one whose data (zeros)
// would never block on the output.
func TestDumpStopsInsideLargeFile(t *testing.T) {
	root := t.TempDir()
	f, err := os.Create(filepath.Join(root, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(1 << 40) // 1 TiB of holes
	f.Close()
	s, _ := New(&Config{Paths: []string{root}}, source.Deps{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Dump(ctx, io.Discard, &source.Meta{}) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("cancelled dump returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("dump did not stop within 5s of cancellation")
	}
}
