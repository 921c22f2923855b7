package miniotest_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/lifeboat-backup/lifeboat/internal/testutil/miniotest"
)

func TestStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []miniotest.Option
	}{{"http", nil}, {"tls", []miniotest.Option{miniotest.WithTLS()}}} {
		t.Run(tc.name, func(t *testing.T) {
			s := miniotest.Start(t, tc.opts...)
			if !strings.HasPrefix(s.Endpoint(), "127.0.0.1:") {
				t.Fatalf("endpoint %s is not on loopback", s.Endpoint())
			}
			s.MakeBucket(t, "plain", false)
			s.MakeBucket(t, "locked", true)
			c := s.Client()
			if _, err := c.PutObject(t.Context(), "plain", "a/b", bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
			if vs := s.Versions(t, "plain", ""); len(vs) != 1 || vs[0].Key != "a/b" {
				t.Fatalf("versions %+v", vs)
			}
			state, _, _, _, err := c.GetObjectLockConfig(t.Context(), "locked")
			if err != nil || state != "Enabled" {
				t.Fatalf("object lock of the locked bucket: %q, %v", state, err)
			}
			v, err := c.GetBucketVersioning(t.Context(), "locked")
			if err != nil || !v.Enabled() {
				t.Fatalf("versioning of the locked bucket: %+v, %v", v, err)
			}
			if _, _, _, _, err := c.GetObjectLockConfig(t.Context(), "plain"); err == nil {
				t.Fatal("plain bucket has object lock")
			}
			if ups := s.IncompleteUploads(t, "plain", ""); len(ups) != 0 {
				t.Fatalf("incomplete uploads %+v", ups)
			}
			// Other credentials are refused.
			other, err := s.NewClient("nobody", "wrong-secret")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := other.BucketExists(t.Context(), "plain"); err == nil {
				t.Fatal("server accepted unknown credentials")
			}
		})
	}
}
