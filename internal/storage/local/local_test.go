package local_test

import (
	"testing"

	"github.com/lifeboat-backup/lifeboat/internal/storage"
	"github.com/lifeboat-backup/lifeboat/internal/storage/local"
	"github.com/lifeboat-backup/lifeboat/internal/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		st, err := local.New("test", t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}
