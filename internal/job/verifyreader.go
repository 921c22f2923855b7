package job

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
)

// ChecksumError is a stored artifact whose bytes differ from its manifest.
type ChecksumError struct {
	Key               string
	WantSize, GotSize int64
	WantHash, GotHash string
}

func (e *ChecksumError) Error() string {
	if e.WantSize != e.GotSize {
		return fmt.Sprintf("%s has %d bytes, manifest says %d: the artifact is truncated or damaged", e.Key, e.GotSize, e.WantSize)
	}
	return fmt.Sprintf("%s fails its SHA-256 check (got %s…, manifest says %s…): the artifact is damaged", e.Key, short(e.GotHash), short(e.WantHash))
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// verifyingReader passes r through and, instead of io.EOF, returns a
// *ChecksumError when the bytes read do not match size and sha256. Consumers
// (decoders, restorers, a storage Put) therefore fail before they commit.
type verifyingReader struct {
	r    io.Reader
	key  string
	size int64
	sum  string
	h    hash.Hash
	n    int64
	done error
}

func newVerifyingReader(r io.Reader, key string, size int64, sum string) *verifyingReader {
	return &verifyingReader{r: r, key: key, size: size, sum: sum, h: sha256.New()}
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.done != nil {
		return 0, v.done
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n > v.size {
		v.done = &ChecksumError{Key: v.key, WantSize: v.size, GotSize: v.n}
		return n, v.done
	}
	if err == io.EOF {
		got := hex.EncodeToString(v.h.Sum(nil))
		if v.n != v.size || got != v.sum {
			v.done = &ChecksumError{Key: v.key, WantSize: v.size, GotSize: v.n, WantHash: v.sum, GotHash: got}
			return n, v.done
		}
		v.done = io.EOF
	}
	return n, err
}
