package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"testing"

	"github.com/lifeboat-backup/lifeboat/internal/pipeline"
	agestage "github.com/lifeboat-backup/lifeboat/internal/pipeline/age"
	"github.com/lifeboat-backup/lifeboat/internal/pipeline/zstd"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
	"github.com/lifeboat-backup/lifeboat/internal/storage/local"

	"filippo.io/age"
)

func stages(t *testing.T) ([]pipeline.Stage, []pipeline.Stage) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return []pipeline.Stage{zstd.Stage{}, &agestage.Stage{Recipients: []age.Recipient{id.Recipient()}}},
		[]pipeline.Stage{zstd.Stage{}, &agestage.Stage{Identities: []age.Identity{id}}}
}

func newLocal(t *testing.T, name string) *local.Store {
	st, err := local.New(name, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// failAfter wraps a real storage and fails Put reads after n bytes, like a
// disk that fills up or a server that goes away mid-upload.
type failAfter struct {
	storage.Storage
	n int64
}

func (f *failAfter) Put(ctx context.Context, key string, r io.Reader) (storage.Object, error) {
	return f.Storage.Put(ctx, key, &cutReader{r: r, n: f.n})
}

type cutReader struct {
	r io.Reader
	n int64
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, errors.New("storage went away")
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
}

func data(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{7})
	r.Read(b[:n/2]) // half random, half compressible
	return b
}

func TestRoundTripFanOut(t *testing.T) {
	enc, dec := stages(t)
	a, b := newLocal(t, "a"), newLocal(t, "b")
	in := data(8 << 20)
	res := pipeline.Run(t.Context(), func(w io.Writer) error { _, err := w.Write(in); return err }, enc,
		[]pipeline.Dest{{Storage: a, Key: "s/k"}, {Storage: b, Key: "s/k"}}, pipeline.Options{})
	if !res.OK() || res.Dests[0].Err != nil || res.Dests[1].Err != nil {
		t.Fatalf("run: %+v", res)
	}
	if res.PlainBytes != int64(len(in)) || res.StoredBytes >= res.PlainBytes {
		t.Fatalf("plain %d stored %d", res.PlainBytes, res.StoredBytes)
	}
	for _, st := range []storage.Storage{a, b} {
		rc, _ := st.Open(t.Context(), "s/k")
		hr := pipeline.NewHashReader(rc)
		d, err := pipeline.Decode(hr, dec)
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(d)
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("%s: round trip differs (err %v)", st.Name(), err)
		}
		io.Copy(io.Discard, hr)
		if hr.Sum() != res.SHA256 || hr.N != res.StoredBytes {
			t.Fatalf("%s: stored hash/size differ from the run's", st.Name())
		}
		rc.Close()
	}
}

// One storage failing midway does not stop the others.
func TestOneStorageFails(t *testing.T) {
	enc, _ := stages(t)
	good, bad := newLocal(t, "good"), newLocal(t, "bad")
	in := data(16 << 20)
	res := pipeline.Run(t.Context(), func(w io.Writer) error { _, err := w.Write(in); return err }, enc,
		[]pipeline.Dest{{Storage: good, Key: "s/k"}, {Storage: &failAfter{Storage: bad, n: 1 << 20}, Key: "s/k"}}, pipeline.Options{})
	if res.SourceErr != nil || res.Dests[0].Err != nil {
		t.Fatalf("the good storage failed too: %+v", res)
	}
	if res.Dests[1].Err == nil {
		t.Fatal("the failing storage reported success")
	}
	if _, err := bad.Stat(t.Context(), "s/k"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the failing storage has an object: %v", err)
	}
}

// A source that dies halfway leaves nothing in any storage.
func TestSourceFailureCommitsNothing(t *testing.T) {
	enc, _ := stages(t)
	a, b := newLocal(t, "a"), newLocal(t, "b")
	boom := errors.New("pg_dump died")
	res := pipeline.Run(t.Context(), func(w io.Writer) error {
		w.Write(data(4 << 20))
		return boom
	}, enc, []pipeline.Dest{{Storage: a, Key: "s/k"}, {Storage: b, Key: "s/k"}}, pipeline.Options{})
	if !errors.Is(res.SourceErr, boom) || res.OK() {
		t.Fatalf("res = %+v", res)
	}
	for _, st := range []storage.Storage{a, b} {
		if _, err := st.Stat(t.Context(), "s/k"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s has an object after the source failed", st.Name())
		}
		n := 0
		st.List(t.Context(), "", func(storage.Object) error { n++; return nil })
		if n != 0 {
			t.Fatalf("%s lists %d objects", st.Name(), n)
		}
	}
}

// When every storage fails the source is stopped (its writes fail).
func TestAllStoragesFailStopsSource(t *testing.T) {
	enc, _ := stages(t)
	bad := &failAfter{Storage: newLocal(t, "bad"), n: 1 << 20}
	written := 0
	res := pipeline.Run(t.Context(), func(w io.Writer) error {
		rng := rand.NewChaCha8([32]byte{9})
		chunk := make([]byte, 1<<20)
		for i := 0; i < 1000; i++ {
			rng.Read(chunk) // incompressible, so the storage's limit is reached
			if _, err := w.Write(chunk); err != nil {
				return err
			}
			written++
		}
		return nil
	}, enc, []pipeline.Dest{{Storage: bad, Key: "s/k"}}, pipeline.Options{})
	if res.SourceErr == nil || written >= 1000 {
		t.Fatalf("source ran to the end (%d MiB) although every storage failed: %+v", written, res)
	}
}

func TestDecodeTruncatedFails(t *testing.T) {
	enc, dec := stages(t)
	st := newLocal(t, "a")
	in := data(2 << 20)
	res := pipeline.Run(t.Context(), func(w io.Writer) error { _, err := w.Write(in); return err }, enc,
		[]pipeline.Dest{{Storage: st, Key: "s/k"}}, pipeline.Options{})
	if !res.OK() {
		t.Fatal(res.SourceErr)
	}
	rc, _ := st.Open(t.Context(), "s/k")
	full, _ := io.ReadAll(rc)
	rc.Close()
	for _, cut := range []int{len(full) - 1, len(full) - 1000, len(full) / 2} {
		d, err := pipeline.Decode(bytes.NewReader(full[:cut]), dec)
		if err == nil {
			_, err = io.ReadAll(d)
		}
		if err == nil {
			t.Fatalf("decoding %d of %d bytes succeeded", cut, len(full))
		}
	}
}
