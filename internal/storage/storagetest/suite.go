// Package storagetest is the conformance suite every storage backend runs.
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

// Run runs the suite against stores made by newStore; each call must return
// an empty store.
func Run(t *testing.T, newStore func(t *testing.T) storage.Storage) {
	t.Run("PutOpenStatDelete", func(t *testing.T) { testBasics(t, newStore(t)) })
	t.Run("List", func(t *testing.T) { testList(t, newStore(t)) })
	t.Run("Missing", func(t *testing.T) { testMissing(t, newStore(t)) })
	t.Run("NoOverwrite", func(t *testing.T) { testNoOverwrite(t, newStore(t)) })
	t.Run("FailedPutLeavesNothing", func(t *testing.T) { testFailedPut(t, newStore(t)) })
	t.Run("CancelledPutLeavesNothing", func(t *testing.T) { testCancelledPut(t, newStore(t)) })
	t.Run("LargeUnknownLength", func(t *testing.T) { testLarge(t, newStore(t)) })
}

func put(t *testing.T, st storage.Storage, key string, data []byte) storage.Object {
	t.Helper()
	obj, err := st.Put(t.Context(), key, onlyReader{bytes.NewReader(data)})
	if err != nil {
		t.Fatalf("Put(%s): %v", key, err)
	}
	if obj.Key != key || obj.Size != int64(len(data)) {
		t.Fatalf("Put(%s) = %+v, want size %d", key, obj, len(data))
	}
	return obj
}

func read(t *testing.T, st storage.Storage, key string) []byte {
	t.Helper()
	rc, err := st.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open(%s): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

func keys(t *testing.T, st storage.Storage, prefix string) []string {
	t.Helper()
	var ks []string
	if err := st.List(t.Context(), prefix, func(o storage.Object) error {
		ks = append(ks, o.Key)
		return nil
	}); err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	slices.Sort(ks)
	return ks
}

func testBasics(t *testing.T, st storage.Storage) {
	data := []byte("hello, lifeboat\n")
	before := time.Now().Add(-time.Minute)
	put(t, st, "src/a.txt", data)
	if got := read(t, st, "src/a.txt"); !bytes.Equal(got, data) {
		t.Fatalf("content = %q, want %q", got, data)
	}
	obj, err := st.Stat(t.Context(), "src/a.txt")
	if err != nil {
		t.Fatal(err)
	}
	if obj.Size != int64(len(data)) || obj.ModTime.Before(before) {
		t.Fatalf("Stat = %+v", obj)
	}
	put(t, st, "src/empty", nil)
	if got := read(t, st, "src/empty"); len(got) != 0 {
		t.Fatalf("empty object has %d bytes", len(got))
	}
	if err := st.Delete(t.Context(), "src/a.txt"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Stat(t.Context(), "src/a.txt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat after Delete: %v, want fs.ErrNotExist", err)
	}
}

func testList(t *testing.T, st storage.Storage) {
	for _, k := range []string{"a/1", "a/2", "ab/3", "b/4", "a/sub/5"} {
		put(t, st, k, []byte(k))
	}
	if got, want := keys(t, st, "a/"), []string{"a/1", "a/2", "a/sub/5"}; !slices.Equal(got, want) {
		t.Fatalf("List(a/) = %v, want %v", got, want)
	}
	if got, want := keys(t, st, ""), []string{"a/1", "a/2", "a/sub/5", "ab/3", "b/4"}; !slices.Equal(got, want) {
		t.Fatalf("List() = %v, want %v", got, want)
	}
	if got := keys(t, st, "nothing/"); len(got) != 0 {
		t.Fatalf("List(nothing/) = %v", got)
	}
	stop := errors.New("stop")
	n := 0
	err := st.List(t.Context(), "", func(storage.Object) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("List must stop at fn's first error: err=%v calls=%d", err, n)
	}
}

func testMissing(t *testing.T, st storage.Storage) {
	if _, err := st.Open(t.Context(), "no/such"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open missing: %v, want fs.ErrNotExist", err)
	}
	if _, err := st.Stat(t.Context(), "no/such"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat missing: %v, want fs.ErrNotExist", err)
	}
	if err := st.Delete(t.Context(), "no/such"); err != nil {
		t.Fatalf("Delete missing: %v", err)
	}
}

func testNoOverwrite(t *testing.T, st storage.Storage) {
	put(t, st, "x/obj", []byte("first"))
	_, err := st.Put(t.Context(), "x/obj", bytes.NewReader([]byte("second")))
	if err == nil {
		t.Fatal("Put over an existing key succeeded")
	}
	if got := read(t, st, "x/obj"); string(got) != "first" {
		t.Fatalf("existing object changed to %q", got)
	}
}

// failingReader returns n bytes then an error, like a dump that dies.
type failingReader struct {
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	k := min(len(p), f.n)
	for i := range p[:k] {
		p[i] = byte(i)
	}
	f.n -= k
	return k, nil
}

func assertNothing(t *testing.T, st storage.Storage, key string) {
	t.Helper()
	if _, err := st.Stat(context.Background(), key); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after a failed Put, Stat(%s) = %v, want fs.ErrNotExist", key, err)
	}
	if ks := keys(t, st, ""); len(ks) != 0 {
		t.Fatalf("after a failed Put, List shows %v", ks)
	}
}

func testFailedPut(t *testing.T, st storage.Storage) {
	boom := errors.New("dump died")
	_, err := st.Put(t.Context(), "f/obj", &failingReader{n: 3 << 20, err: boom})
	if err == nil {
		t.Fatal("Put of a failing reader succeeded")
	}
	assertNothing(t, st, "f/obj")
}

func testCancelledPut(t *testing.T, st storage.Storage) {
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	go func() {
		buf := make([]byte, 64<<10)
		for i := 0; i < 32; i++ {
			if _, err := pw.Write(buf); err != nil {
				return
			}
		}
		cancel()
		// Keep the stream open: only the cancellation may end it.
		time.Sleep(200 * time.Millisecond)
		pw.CloseWithError(context.Canceled)
	}()
	_, err := st.Put(ctx, "c/obj", pr)
	if err == nil {
		t.Fatal("cancelled Put succeeded")
	}
	assertNothing(t, st, "c/obj")
}

func testLarge(t *testing.T, st storage.Storage) {
	const size = 40 << 20
	h := sha256.New()
	rng := rand.NewChaCha8([32]byte{1})
	src := io.TeeReader(io.LimitReader(rng, size), h)
	obj, err := st.Put(t.Context(), "big/obj", onlyReader{src})
	if err != nil {
		t.Fatal(err)
	}
	if obj.Size != size {
		t.Fatalf("size %d, want %d", obj.Size, size)
	}
	want := h.Sum(nil)
	rc, err := st.Open(t.Context(), "big/obj")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h2 := sha256.New()
	if _, err := io.Copy(h2, rc); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h2.Sum(nil), want) {
		t.Fatal("content differs after round trip")
	}
}

// onlyReader hides any Seek/Len/WriteTo methods so backends see a stream of
// unknown length, as they do in a real backup.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }
