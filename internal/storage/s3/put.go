package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

// abortTimeout bounds the clean-up of a failed upload, which runs on a fresh
// context because the caller's is usually the cancelled one.
const abortTimeout = 30 * time.Second

// Put implements storage.Storage. See the package documentation for how the
// stream is uploaded.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (storage.Object, error) {
	name, err := s.objectName(key)
	if err != nil {
		return storage.Object{}, err
	}
	// Fail early rather than after uploading the whole stream. The commit
	// request's If-None-Match closes the race with a concurrent writer.
	if _, err := s.Stat(ctx, key); err == nil {
		return storage.Object{}, fmt.Errorf("upload %s to storage %s: %w", key, s.name, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return storage.Object{}, err
	}

	start := s.now()
	pool := newBufPool(s.parallel+1, s.partSize)
	first := pool.get()
	src := ctxReader{ctx: ctx, r: r}
	n, rerr := io.ReadFull(src, first)
	switch rerr {
	case nil: // a full part: more may follow
	case io.EOF, io.ErrUnexpectedEOF:
		return s.putSmall(ctx, key, name, first[:n], start)
	default:
		return storage.Object{}, s.readErr(ctx, key, rerr)
	}
	return s.putMultipart(ctx, key, name, src, pool, first, start)
}

// putOptions are the options of the request that creates the object.
func (s *Store) putOptions(start time.Time) minio.PutObjectOptions {
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream"}
	if s.lock != nil {
		opts.Mode = s.lock.mode
		opts.RetainUntilDate = start.Add(time.Duration(s.lock.days) * 24 * time.Hour).UTC().Truncate(time.Second)
	}
	return opts
}

func (s *Store) putSmall(ctx context.Context, key, name string, data []byte, start time.Time) (storage.Object, error) {
	sum := md5.Sum(data)
	opts := s.putOptions(start)
	opts.SetMatchETagExcept("*")
	first := true
	err := s.retry.do(ctx, s, "put", key, func() error {
		_, err := s.core.PutObject(ctx, s.bucket, name, bytes.NewReader(data), int64(len(data)),
			base64.StdEncoding.EncodeToString(sum[:]), "", opts)
		if err != nil && !first && isPreconditionFailed(err) {
			// An earlier try may have succeeded with its answer lost.
			if s.hasETag(ctx, name, hex.EncodeToString(sum[:])) {
				return nil
			}
		}
		first = false
		return err
	})
	if err != nil {
		return storage.Object{}, s.putErr(key, err)
	}
	return s.committed(ctx, key, int64(len(data)), start)
}

// committed returns the Object of a key just written, with the server's
// modification time.
func (s *Store) committed(ctx context.Context, key string, size int64, start time.Time) (storage.Object, error) {
	obj, err := s.Stat(ctx, key)
	if err != nil {
		// Stored, but we can't read back the time: use ours.
		s.log.Warn("stat after upload failed", "storage", s.name, "key", key, "error", err)
		return storage.Object{Key: key, Size: size, ModTime: start}, nil
	}
	if obj.Size != size {
		return obj, fmt.Errorf("upload %s to storage %s: stored %d bytes, sent %d", key, s.name, obj.Size, size)
	}
	s.log.Debug("uploaded", "storage", s.name, "key", key, "bytes", size, "duration", s.now().Sub(start))
	return obj, nil
}

func isPreconditionFailed(err error) bool {
	resp := errResponse(err)
	return resp.StatusCode == http.StatusPreconditionFailed || resp.Code == "PreconditionFailed" ||
		resp.Code == "ConditionalRequestConflict"
}

func (s *Store) hasETag(ctx context.Context, name, etag string) bool {
	info, err := s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
	return err == nil && strings.Trim(info.ETag, `"`) == etag
}

func (s *Store) putErr(key string, err error) error {
	if isPreconditionFailed(err) {
		return fmt.Errorf("upload %s to storage %s: %w", key, s.name, fs.ErrExist)
	}
	return s.wrap("upload", key, err)
}

func (s *Store) readErr(ctx context.Context, key string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("upload %s to storage %s: %w", key, s.name, cerr)
	}
	return fmt.Errorf("upload %s to storage %s: read backup stream: %w", key, s.name, err)
}

func (s *Store) putMultipart(ctx context.Context, key, name string, src io.Reader, pool *bufPool, buf []byte, start time.Time) (obj storage.Object, err error) {
	var uploadID string
	err = s.retry.do(ctx, s, "start upload", key, func() error {
		var err error
		uploadID, err = s.core.NewMultipartUpload(ctx, s.bucket, name, s.putOptions(start))
		return err
	})
	if err != nil {
		return storage.Object{}, s.wrap("start upload", key, err)
	}
	committed := false
	defer func() {
		if !committed {
			s.abort(ctx, key, name, uploadID)
		}
	}()

	uctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		parts []minio.CompletePart
		total int64
		slots = make(chan struct{}, s.parallel)
	)
	upload := func(num int, data []byte) {
		defer wg.Done()
		defer func() { <-slots; pool.put(data) }()
		etag, err := s.putPart(uctx, key, name, uploadID, num, data)
		if err != nil {
			cancel(err)
			return
		}
		mu.Lock()
		parts = append(parts, minio.CompletePart{PartNumber: num, ETag: etag})
		mu.Unlock()
	}

	src = ctxReader{ctx: uctx, r: src}
	var readErr error
	last := false // buf is the stream's last, short part
parts:
	for num := 1; ; num++ {
		if num > maxParts {
			pool.put(buf)
			readErr = &storage.PermanentError{Err: fmt.Errorf("the backup is larger than %d parts of %d bytes: raise part_size", maxParts, s.partSize)}
			break
		}
		select {
		case slots <- struct{}{}:
		case <-uctx.Done():
			pool.put(buf)
			break parts
		}
		total += int64(len(buf))
		wg.Add(1)
		go upload(num, buf)
		if last {
			break
		}

		buf = pool.get()
		n, rerr := io.ReadFull(src, buf)
		switch rerr {
		case nil:
		case io.ErrUnexpectedEOF:
			last = true
		case io.EOF: // the previous part was the last
			pool.put(buf)
			break parts
		default:
			pool.put(buf)
			readErr = rerr
			break parts
		}
		buf = buf[:n]
	}
	if readErr != nil {
		cancel(readErr)
	}
	wg.Wait()
	if cause := context.Cause(uctx); cause != nil {
		switch {
		case ctx.Err() != nil:
			return storage.Object{}, fmt.Errorf("upload %s to storage %s: %w", key, s.name, ctx.Err())
		case cause == readErr:
			var pe *storage.PermanentError
			if errors.As(readErr, &pe) {
				return storage.Object{}, fmt.Errorf("upload %s to storage %s: %w", key, s.name, readErr)
			}
			return storage.Object{}, s.readErr(ctx, key, readErr)
		default:
			return storage.Object{}, s.wrap("upload", key, cause)
		}
	}

	slices.SortFunc(parts, func(a, b minio.CompletePart) int { return a.PartNumber - b.PartNumber })
	if err := s.complete(ctx, key, name, uploadID, parts); err != nil {
		return storage.Object{}, err
	}
	committed = true
	return s.committed(ctx, key, total, start)
}

// putPart uploads one part, retrying with the bytes still in hand, and
// returns its ETag.
func (s *Store) putPart(ctx context.Context, key, name, uploadID string, num int, data []byte) (string, error) {
	sum := md5.Sum(data)
	// Content-MD5 lets the server reject a corrupted part, and AWS requires
	// a checksum on every write to an object lock bucket.
	opts := minio.PutObjectPartOptions{Md5Base64: base64.StdEncoding.EncodeToString(sum[:])}
	var etag string
	err := s.retry.do(ctx, s, fmt.Sprintf("upload part %d", num), key, func() error {
		p, err := s.core.PutObjectPart(ctx, s.bucket, name, uploadID, num, bytes.NewReader(data), int64(len(data)), opts)
		etag = p.ETag
		return err
	})
	if err != nil {
		return "", fmt.Errorf("part %d: %w", num, err)
	}
	return etag, nil
}

// complete commits the upload. If-None-Match: * makes it fail rather than
// replace an object a concurrent writer stored meanwhile.
func (s *Store) complete(ctx context.Context, key, name, uploadID string, parts []minio.CompletePart) error {
	var opts minio.PutObjectOptions
	opts.SetMatchETagExcept("*")
	first := true
	err := s.retry.do(ctx, s, "complete upload", key, func() error {
		_, err := s.core.CompleteMultipartUpload(ctx, s.bucket, name, uploadID, parts, opts)
		if err != nil && !first && (isPreconditionFailed(err) || isCode(err, "NoSuchUpload")) {
			// An earlier try may have succeeded with its answer lost.
			if s.hasETag(ctx, name, multipartETag(parts)) {
				return nil
			}
		}
		first = false
		return err
	})
	if err != nil {
		return s.putErr(key, err)
	}
	return nil
}

// multipartETag is the ETag S3 gives a multipart object: the MD5 of the
// parts' binary MD5s, then "-" and the number of parts.
func multipartETag(parts []minio.CompletePart) string {
	h := md5.New()
	for _, p := range parts {
		b, err := hex.DecodeString(strings.Trim(p.ETag, `"`))
		if err != nil {
			return ""
		}
		h.Write(b)
	}
	return fmt.Sprintf("%x-%d", h.Sum(nil), len(parts))
}

// abort removes an unfinished multipart upload and its parts. It runs on a
// fresh context: the caller's is usually cancelled already.
func (s *Store) abort(ctx context.Context, key, name, uploadID string) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	err := s.retry.do(actx, s, "abort upload", key, func() error {
		err := s.core.AbortMultipartUpload(actx, s.bucket, name, uploadID)
		if isCode(err, "NoSuchUpload") {
			return nil
		}
		return err
	})
	if err != nil {
		s.log.Warn("abort multipart upload failed; prune removes it later", "storage", s.name, "key", key, "error", err)
	}
}

// ctxReader stops reading once ctx is done, so a cancelled upload ends at
// the next Read of the stream.
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

// bufPool hands out at most n part buffers, allocating them on first use.
type bufPool struct {
	size  int64
	free  chan []byte
	mu    sync.Mutex
	alloc int
	max   int
}

func newBufPool(n int, size int64) *bufPool {
	return &bufPool{size: size, free: make(chan []byte, n), max: n}
}

// get returns a buffer of the full part size, waiting for one to be put
// back when n are in use.
func (p *bufPool) get() []byte {
	select {
	case b := <-p.free:
		return b[:p.size]
	default:
	}
	p.mu.Lock()
	if p.alloc < p.max {
		p.alloc++
		p.mu.Unlock()
		return make([]byte, p.size)
	}
	p.mu.Unlock()
	return (<-p.free)[:p.size]
}

func (p *bufPool) put(b []byte) { p.free <- b[:cap(b)] }
