package s3

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
	"github.com/lifeboat-backup/lifeboat/internal/testutil/miniotest"
)

// BenchmarkPut streams 64 MiB of unknown length into a local MinIO with the
// default part size at several parallel_parts settings:
//
//	go test -run '^$' -bench Put ./internal/storage/s3/
func BenchmarkPut(b *testing.B) {
	const size = 64 << 20
	srv := miniotest.Start(b)
	bucket := "bench"
	srv.MakeBucket(b, bucket, false)
	for _, parallel := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("parallel_parts=%d", parallel), func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Endpoint, cfg.Bucket, cfg.PathStyle = srv.URL(), bucket, true
			cfg.AccessKey, cfg.SecretKey = config.NewSecret(srv.AccessKey), config.NewSecret(srv.SecretKey)
			cfg.ParallelParts = parallel
			st, err := New(context.Background(), "bench", cfg, storage.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(size)
			i := 0
			for b.Loop() {
				i++
				key := fmt.Sprintf("p%d/%d", parallel, i)
				src := onlyReader{io.LimitReader(rand.NewChaCha8([32]byte{byte(i)}), size)}
				if _, err := st.Put(context.Background(), key, src); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
