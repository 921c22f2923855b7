package job

import (
	"context"
	"fmt"
	"io"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/pipeline"
)

// VerifyResult says how far a verify got.
type VerifyResult struct {
	// Decoded is set when the stream was decrypted and decompressed to its
	// end (an identity was available).
	Decoded bool
	// PlainSize is the decoded size (when Decoded).
	PlainSize int64
}

// Verify re-reads a stored artifact, checks its size and SHA-256 against the
// manifest and, when stages can decode (an identity is loaded), decrypts and
// decompresses it to the end. stages nil means checksum only.
func (r *Runner) Verify(ctx context.Context, e catalog.Entry, stages []pipeline.Stage) (VerifyResult, error) {
	var res VerifyResult
	obj, err := e.Storage.Stat(ctx, e.Key)
	if err != nil {
		return res, fmt.Errorf("%s in %s: %w", e.Key, e.Storage.Name(), err)
	}
	if obj.Size != e.StoredSize {
		return res, &ChecksumError{Key: e.Key, WantSize: e.StoredSize, GotSize: obj.Size}
	}
	rc, err := e.Storage.Open(ctx, e.Key)
	if err != nil {
		return res, fmt.Errorf("open %s in %s: %w", e.Key, e.Storage.Name(), err)
	}
	defer rc.Close()
	vr := newVerifyingReader(rc, e.Key, e.StoredSize, e.SHA256)
	if stages == nil {
		if _, err := io.Copy(io.Discard, vr); err != nil {
			return res, err
		}
		return res, nil
	}
	dec, err := pipeline.Decode(vr, stages)
	if err != nil {
		return res, err
	}
	defer dec.Close()
	n, err := io.Copy(io.Discard, dec)
	if err != nil {
		return res, fmt.Errorf("decode %s: %w", e.Key, err)
	}
	// Trailing bytes after the encrypted stream would not be read by the
	// decoder: make sure the checksum saw everything.
	if _, err := io.Copy(io.Discard, vr); err != nil {
		return res, err
	}
	res.Decoded, res.PlainSize = true, n
	if n != e.PlainSize {
		return res, fmt.Errorf("%s decodes to %d bytes, manifest says %d", e.Key, n, e.PlainSize)
	}
	return res, nil
}
