// Package pipeline streams a dump through reversible stages into storages.
//
// # One pass
//
// Run connects the source's output through the stages (compression, then
// encryption), a SHA-256 and byte counter, and a fan-out to every destination
// storage at once. Nothing is staged on disk. Each destination reads from its
// own bounded queue, so a slow storage holds the others back only once its
// queue is full, and a failed storage is dropped without stopping the rest.
// If the source fails, or every destination has failed, the stream ends with
// an error and every Put in flight aborts (nothing is left behind).
package pipeline

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"sync/atomic"

	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

// Stage is one reversible transform (compression, encryption).
type Stage interface {
	// Name is recorded in the manifest and is the format suffix ("zst", "age").
	Name() string
	// NewWriter returns a writer encoding into dst. Its Close flushes the
	// stage's trailer but does not close dst.
	NewWriter(dst io.Writer) (io.WriteCloser, error)
	// NewReader decodes src. Truncated or corrupt input is an error, never a
	// clean io.EOF.
	NewReader(src io.Reader) (io.ReadCloser, error)
}

// Dest is one place the stream is stored.
type Dest struct {
	Storage storage.Storage
	Key     string
}

// DestResult is what happened at one destination.
type DestResult struct {
	Dest
	Object storage.Object
	Err    error
}

// Result is the outcome of Run.
type Result struct {
	PlainBytes  int64  // bytes the source wrote
	StoredBytes int64  // bytes after the stages
	SHA256      string // hex, of the stored bytes
	SourceErr   error  // the source's (or a stage's) error, if any
	Dests       []DestResult
}

// OK reports whether the source succeeded and at least one destination stored
// the stream.
func (r Result) OK() bool {
	if r.SourceErr != nil {
		return false
	}
	for _, d := range r.Dests {
		if d.Err == nil {
			return true
		}
	}
	return false
}

// Options tune Run. The zero value is usable.
type Options struct {
	// ChunkSize is the unit handed to destinations (default 1 MiB).
	ChunkSize int
	// QueueChunks is how many chunks each destination may lag behind (default 8).
	QueueChunks int
	// Progress, if set, is called after each chunk with running totals.
	Progress func(plain, stored int64)
}

// errAllFailed ends the stream when no destination is left.
var errAllFailed = errors.New("every storage failed")

// Run streams dump's output through stages into every destination.
func Run(ctx context.Context, dump func(w io.Writer) error, stages []Stage, dests []Dest, opt Options) Result {
	if opt.ChunkSize <= 0 {
		opt.ChunkSize = 1 << 20
	}
	if opt.QueueChunks <= 0 {
		opt.QueueChunks = 8
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	fo := &fanout{h: sha256.New(), progress: opt.Progress}
	res := Result{Dests: make([]DestResult, len(dests))}
	var wg sync.WaitGroup
	for i, d := range dests {
		q := &queue{ch: make(chan []byte, opt.QueueChunks), done: make(chan struct{})}
		fo.queues = append(fo.queues, q)
		res.Dests[i].Dest = d
		wg.Add(1)
		go func() {
			defer wg.Done()
			obj, err := d.Storage.Put(ctx, d.Key, q)
			if err == nil && q.err != nil {
				err = q.err // Put must not succeed on a failed stream; be sure
			}
			if err != nil {
				q.fail(fmt.Errorf("store %s in %s: %w", d.Key, d.Storage.Name(), err))
			}
			res.Dests[i].Object, res.Dests[i].Err = obj, err
		}()
	}

	err := runStages(dump, stages, fo, opt.ChunkSize, &res.PlainBytes, opt.Progress, fo)
	if err != nil {
		fo.closeAll(err)
	} else {
		fo.closeAll(nil)
	}
	wg.Wait()
	if err != nil {
		// Report the source's failure, not the destinations' echo of it.
		if errors.Is(err, errAllFailed) {
			for _, d := range res.Dests {
				if d.Err != nil {
					err = fmt.Errorf("%w: %w", errAllFailed, d.Err)
					break
				}
			}
		}
		res.SourceErr = err
		for i := range res.Dests {
			if res.Dests[i].Err == nil {
				// Cannot happen with a conforming storage; never report success.
				res.Dests[i].Err = fmt.Errorf("stream failed: %w", err)
			}
		}
	}
	res.StoredBytes = fo.n
	res.SHA256 = hex.EncodeToString(fo.h.Sum(nil))
	return res
}

// runStages runs dump into stage[0] -> ... -> stage[n] -> bufio -> out and
// closes the stages in reverse order so each flushes its trailer.
func runStages(dump func(io.Writer) error, stages []Stage, out io.Writer, chunk int, plain *int64, progress func(int64, int64), fo *fanout) error {
	buf := bufio.NewWriterSize(out, chunk)
	var w io.Writer = buf
	var closers []io.Closer
	for i := len(stages) - 1; i >= 0; i-- {
		sw, err := stages[i].NewWriter(w)
		if err != nil {
			return fmt.Errorf("start %s: %w", stages[i].Name(), err)
		}
		closers = append(closers, sw)
		w = sw
	}
	cw := &countWriter{w: w}
	fo.plain = &cw.n
	err := dump(cw)
	*plain = cw.n
	// Close innermost-first: the first stage (compression) flushes into the
	// second (encryption), which then writes its final chunk.
	for i := len(closers) - 1; i >= 0; i-- {
		if cerr := closers[i].Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close %s: %w", stages[len(stages)-1-i].Name(), cerr)
		}
	}
	if err != nil {
		return err
	}
	if err := buf.Flush(); err != nil {
		return err
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	atomic.AddInt64(&c.n, int64(n))
	return n, err
}

// fanout hashes and counts the stored stream and hands copies of each chunk
// to every live destination queue.
type fanout struct {
	h        hash.Hash
	n        int64
	plain    *int64
	queues   []*queue
	progress func(plain, stored int64)
}

func (f *fanout) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	f.h.Write(p)
	f.n += int64(len(p))
	chunk := append([]byte(nil), p...) // shared, read-only, by all queues
	live := 0
	for _, q := range f.queues {
		if q.send(chunk) {
			live++
		}
	}
	if live == 0 {
		return 0, errAllFailed
	}
	if f.progress != nil {
		f.progress(atomic.LoadInt64(f.plain), f.n)
	}
	return len(p), nil
}

func (f *fanout) closeAll(err error) {
	for _, q := range f.queues {
		q.close(err)
	}
}

// queue is one destination's bounded buffer and its io.Reader side.
type queue struct {
	ch       chan []byte
	done     chan struct{} // closed when the destination failed
	failOnce sync.Once
	err      error // stream error set by close, read after ch is closed
	cur      []byte
}

func (q *queue) send(b []byte) bool {
	select {
	case <-q.done:
		return false
	default:
	}
	select {
	case q.ch <- b:
		return true
	case <-q.done:
		return false
	}
}

func (q *queue) fail(err error) { q.failOnce.Do(func() { close(q.done) }) }

func (q *queue) close(err error) {
	q.err = err
	close(q.ch)
}

// Read implements io.Reader for the destination's Put.
func (q *queue) Read(p []byte) (int, error) {
	for len(q.cur) == 0 {
		b, ok := <-q.ch
		if !ok {
			if q.err != nil {
				return 0, q.err
			}
			return 0, io.EOF
		}
		q.cur = b
	}
	n := copy(p, q.cur)
	q.cur = q.cur[n:]
	return n, nil
}

// Decode returns a reader that undoes stages (applied in order) on r.
// Closing it closes every stage reader, not r.
func Decode(r io.Reader, stages []Stage) (io.ReadCloser, error) {
	var closers []io.Closer
	cur := r
	for i := len(stages) - 1; i >= 0; i-- {
		rc, err := stages[i].NewReader(cur)
		if err != nil {
			for _, c := range closers {
				c.Close()
			}
			return nil, fmt.Errorf("open %s: %w", stages[i].Name(), err)
		}
		closers = append(closers, rc)
		cur = rc
	}
	return &multiCloser{Reader: cur, closers: closers}, nil
}

type multiCloser struct {
	io.Reader
	closers []io.Closer
}

func (m *multiCloser) Close() error {
	var err error
	for i := len(m.closers) - 1; i >= 0; i-- {
		if e := m.closers[i].Close(); e != nil && err == nil {
			err = e
		}
	}
	return err
}

// HashReader counts and hashes what is read through it.
type HashReader struct {
	R io.Reader
	h hash.Hash
	N int64
}

// NewHashReader wraps r.
func NewHashReader(r io.Reader) *HashReader { return &HashReader{R: r, h: sha256.New()} }

func (h *HashReader) Read(p []byte) (int, error) {
	n, err := h.R.Read(p)
	h.h.Write(p[:n])
	h.N += int64(n)
	return n, err
}

// Sum returns the hex SHA-256 of what was read.
func (h *HashReader) Sum() string { return hex.EncodeToString(h.h.Sum(nil)) }
