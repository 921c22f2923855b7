package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/minio/minio-go/v7"
)

// maxResumes is how many times in a row a download may resume after its
// connection broke; a resumed connection that delivered resumeProgress bytes
// before breaking again starts the count anew, so a long download over a
// flaky link goes on as long as it makes progress.
const (
	maxResumes     = 5
	resumeProgress = 1 << 20
)

// reader is an object's content that resumes where it broke off.
type reader struct {
	s    *Store
	ctx  context.Context
	key  string
	name string

	body     io.ReadCloser
	etag     string // pins resumes to the same content
	version  string // and, on versioned buckets, the same version
	size     int64
	off      int64
	resumes  int   // in a row
	resumeAt int64 // offset of the last resume
	err      error // sticky
}

// open sends a GET from off. The first open learns the ETag and size; later
// ones must match them.
func (r *reader) open(off int64) error {
	opts := minio.GetObjectOptions{VersionID: r.version}
	if off > 0 {
		if err := opts.SetRange(off, 0); err != nil {
			return err
		}
	}
	if r.etag != "" {
		if err := opts.SetMatchETag(r.etag); err != nil {
			return err
		}
	}
	body, info, _, err := r.s.core.GetObject(r.ctx, r.s.bucket, r.name, opts)
	if err != nil {
		return err
	}
	if r.etag == "" {
		r.etag, r.version, r.size = info.ETag, info.VersionID, info.Size
	}
	r.body = body
	return nil
}

func (r *reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for {
		n, err := r.body.Read(p)
		r.off += int64(n)
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, io.EOF) && r.off >= r.size:
			r.err = io.EOF
			return n, io.EOF
		case errors.Is(err, io.EOF):
			// The server closed a response that should have been longer.
			err = io.ErrUnexpectedEOF
		}
		if rerr := r.resume(err); rerr != nil {
			r.err = rerr
			return n, rerr
		}
		if n > 0 {
			return n, nil
		}
	}
}

// resume reopens the object at the current offset after cause broke the
// body, or returns the error to report.
func (r *reader) resume(cause error) error {
	_ = r.body.Close()
	if r.off-r.resumeAt >= resumeProgress {
		r.resumes = 0
	}
	r.resumeAt = r.off
	if !retryable(r.ctx, cause) || r.resumes >= maxResumes {
		return r.s.wrap("read", r.key, fmt.Errorf("at offset %d of %d: %w", r.off, r.size, cause))
	}
	r.resumes++
	r.s.log.Warn("s3 download broke off, resuming", "storage", r.s.name, "key", r.key,
		"bytes", r.off, "attempt", r.resumes, "error", cause)
	t := time.NewTimer(time.Duration(r.resumes) * r.s.retry.base)
	select {
	case <-r.ctx.Done():
		t.Stop()
		return r.s.wrap("read", r.key, r.ctx.Err())
	case <-t.C:
	}
	err := r.s.retry.do(r.ctx, r.s, "get", r.key, func() error { return r.open(r.off) })
	if err != nil {
		return r.s.wrap("resume reading", r.key, err)
	}
	return nil
}

// Close implements io.Closer.
func (r *reader) Close() error {
	if r.err == nil {
		r.err = errors.New("read after close")
	}
	return r.body.Close()
}
