package catalog_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/storage/local"
)

func TestNames(t *testing.T) {
	ts := time.Date(2026, 11, 21, 3, 0, 0, 0, time.FixedZone("CET", 3600))
	if got, want := catalog.ArtifactName("web1", ts, "app-db", "", "sqlite.zst.age"), "web1.20261121T020000Z.app-db.sqlite.zst.age"; got != want {
		t.Errorf("ArtifactName = %q, want %q (UTC)", got, want)
	}
	if got := catalog.ArtifactName("web1", ts, "pg", "shop", "pgdump.zst.age"); got != "web1.20261121T020000Z.pg.shop.pgdump.zst.age" {
		t.Errorf("part name: %q", got)
	}
	if got := catalog.SafeHost("Web_1.Example.COM/x y"); got != "web_1.example.com-x-y" {
		t.Errorf("SafeHost = %q", got)
	}
	if id := catalog.NewID(); len(id) != 12 || id == catalog.NewID() {
		t.Errorf("NewID = %q", id)
	}
}

func manifest(id string, seq int64, started time.Time) *catalog.Manifest {
	art := catalog.ArtifactName("h", started, "db", "", "sqlite.zst.age")
	return &catalog.Manifest{FormatVersion: catalog.FormatVersion, ID: id, Source: "db", Sequence: seq, Started: started,
		Artifact: art, Key: catalog.ArtifactKey("db", art), SHA256: strings.Repeat("a", 64), Tags: []string{}}
}

func TestDecodeRejects(t *testing.T) {
	for name, mutate := range map[string]func(m map[string]any){
		"future format": func(m map[string]any) { m["format_version"] = catalog.FormatVersion + 1 },
		"no sha256":     func(m map[string]any) { delete(m, "sha256") },
		"no key":        func(m map[string]any) { delete(m, "key") },
	} {
		b, _ := manifest("abcdef123456", 1, time.Now()).Encode()
		var m map[string]any
		json.Unmarshal(b, &m)
		mutate(m)
		b, _ = json.Marshal(m)
		if _, err := catalog.Decode(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	b, _ := manifest("abcdef123456", 1, time.Now()).Encode()
	if bytes.Contains(b, []byte(`\u003e`)) {
		t.Error("manifest JSON escapes HTML characters")
	}
}

// List reads manifests only, skips unreadable ones (reporting them), orders
// by sequence, and attaches the newest drill report.
func TestList(t *testing.T) {
	ctx := t.Context()
	st, err := local.New("s", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	// Sequence order differs from time order (a clock jumped back): sequence wins.
	for _, m := range []*catalog.Manifest{manifest("second000000", 2, t0), manifest("first0000000", 1, t0.Add(time.Hour))} {
		b, _ := m.Encode()
		st.Put(ctx, m.Key, strings.NewReader("artifact"))
		st.Put(ctx, catalog.ManifestKey(m.Key), bytes.NewReader(b))
	}
	st.Put(ctx, "db/h.20261101T050000Z.db.sqlite.zst.age", strings.NewReader("no manifest: garbage"))
	st.Put(ctx, "db/broken.meta.json", strings.NewReader("{not json"))
	first := manifest("first0000000", 1, t0.Add(time.Hour))
	for i, ok := range []bool{false, true} {
		d, _ := json.Marshal(catalog.DrillReport{BackupID: first.ID, OK: ok})
		st.Put(ctx, catalog.DrillKey(first.Key, t0.Add(time.Duration(i+2)*time.Hour)), bytes.NewReader(d))
	}
	var bad []string
	es, err := catalog.List(ctx, st, "db", func(key string, err error) { bad = append(bad, key) })
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].ID != "first0000000" || es[1].ID != "second000000" {
		t.Fatalf("List = %+v", es)
	}
	if len(bad) != 1 || bad[0] != "db/broken.meta.json" {
		t.Fatalf("bad = %v", bad)
	}
	if es[0].Drill == nil || !es[0].Drill.OK {
		t.Fatalf("newest drill report not attached: %+v", es[0].Drill)
	}
	if es[0].ManifestModTime.IsZero() {
		t.Fatal("storage time of the manifest not read")
	}
	found, _ := catalog.Find(es, "firs")
	if len(found) != 1 {
		t.Fatalf("Find = %v", found)
	}
	if _, err := catalog.Find(es, "fi"); err == nil {
		t.Fatal("Find accepted a 2-character prefix")
	}
}
