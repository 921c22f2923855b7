// Package zstd is the zstd compression stage (klauspost/compress).
package zstd

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"

	"github.com/lifeboat-backup/lifeboat/internal/pipeline"
)

// Stage compresses with zstd at a level from 1 (fastest) to 22 (smallest),
// mapped to klauspost's four encoder speeds.
type Stage struct {
	Level int
}

var _ pipeline.Stage = Stage{}

func (Stage) Name() string { return "zst" }

// NewWriter uses two encoder goroutines: on two cores this pipelines
// compression with the dump tool without the memory cost of concurrent
// blocks (see DEPENDENCIES.md).
func (s Stage) NewWriter(dst io.Writer) (io.WriteCloser, error) {
	level := zstd.SpeedDefault
	if s.Level > 0 {
		level = zstd.EncoderLevelFromZstd(s.Level)
	}
	return zstd.NewWriter(dst, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(2))
}

// NewReader caps decoder memory so a hostile artifact cannot exhaust RAM.
func (Stage) NewReader(src io.Reader) (io.ReadCloser, error) {
	d, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxMemory(1<<30))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return &reader{d}, nil
}

type reader struct{ d *zstd.Decoder }

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.d.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("zstd: %w (the artifact is truncated or corrupt)", err)
	}
	return n, err
}

func (r *reader) Close() error { r.d.Close(); return nil }
