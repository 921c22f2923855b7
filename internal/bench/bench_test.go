package bench

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/lifeboat-backup/lifeboat/internal/pipeline"
	agestage "github.com/lifeboat-backup/lifeboat/internal/pipeline/age"
	"github.com/lifeboat-backup/lifeboat/internal/pipeline/zstd"
	"github.com/lifeboat-backup/lifeboat/internal/source"
	"github.com/lifeboat-backup/lifeboat/internal/source/postgres"
	"github.com/lifeboat-backup/lifeboat/internal/storage/local"
	"github.com/lifeboat-backup/lifeboat/internal/testutil"
	"github.com/lifeboat-backup/lifeboat/internal/testutil/pgtest"
)

// dumpLike writes n bytes of pg_dump-like text (COPY rows) to path.
func dumpLike(t testing.TB, path string, n int64) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var w int64
	for i := 0; w < n; i++ {
		line := fmt.Sprintf("%d\tcustomer-%d@example.com\t%d.%02d\t2026-11-%02d 12:%02d:00+00\t{\"plan\": \"pro\", \"seats\": %d}\n",
			i, i*7919%100000, i%9999, i%100, 1+i%28, i%60, i%50)
		k, _ := io.WriteString(f, line)
		w += int64(k)
	}
}

type memWatch struct {
	stop chan struct{}
	peak uint64
	done chan struct{}
}

func watchMem() *memWatch {
	runtime.GC()
	m := &memWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			m.peak = max(m.peak, ms.HeapInuse+ms.StackInuse)
			select {
			case <-m.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return m
}

func (m *memWatch) Stop() uint64 { close(m.stop); <-m.done; return m.peak }

// BenchmarkPipelineVsShell: `zstd -T2 | age -r KEY > file` against lifeboat's
// pipeline (zstd, age, SHA-256, local storage) on the same 256 MiB dump.
func BenchmarkPipelineVsShell(b *testing.B) {
	for _, tool := range []string{"zstd", "age", "sh"} {
		testutil.LookPath(b, "tools", tool)
	}
	dir := b.TempDir()
	in := filepath.Join(dir, "dump.sql")
	dumpLike(b, in, 256<<20)
	id, _ := age.GenerateX25519Identity()
	rcp := id.Recipient().String()
	st, err := local.New("bench", filepath.Join(dir, "store"))
	if err != nil {
		b.Fatal(err)
	}
	stages := []pipeline.Stage{zstd.Stage{}, &agestage.Stage{Recipients: []age.Recipient{id.Recipient()}}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		cmd := exec.Command("sh", "-c", fmt.Sprintf("zstd -q -T2 -3 -c %s | age -r %s > %s", in, rcp, filepath.Join(dir, "shell.out")))
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		shell := time.Since(t0)

		f, _ := os.Open(in)
		mw := watchMem()
		t1 := time.Now()
		res := pipeline.Run(b.Context(), func(w io.Writer) error { _, err := io.Copy(w, f); return err }, stages,
			[]pipeline.Dest{{Storage: st, Key: fmt.Sprintf("k/%d", i)}}, pipeline.Options{})
		ours := time.Since(t1)
		peak := mw.Stop()
		f.Close()
		if !res.OK() {
			b.Fatal(res.SourceErr, res.Dests[0].Err)
		}
		b.ReportMetric(ours.Seconds()/shell.Seconds(), "x_tools")
		b.ReportMetric(float64(256<<20)/ours.Seconds()/(1<<20), "MiB/s")
		b.ReportMetric(float64(peak)/(1<<20), "peak_heap_MiB")
		b.Logf("256 MiB dump: zstd|age %v, lifeboat %v (%.2fx), ratio %.2f, peak heap %.0f MiB",
			shell.Round(time.Millisecond), ours.Round(time.Millisecond), ours.Seconds()/shell.Seconds(),
			float64(res.PlainBytes)/float64(res.StoredBytes), float64(peak)/(1<<20))
	}
}

// BenchmarkPostgresVsPgDump: `pg_dump -Fc > file` (pg_dump's own
// compression) against a lifeboat backup of the same database (pg_dump -Fc
// -Z0 -> zstd -> age -> SHA-256 -> local storage), pgbench scale 20.
func BenchmarkPostgresVsPgDump(b *testing.B) {
	srv := pgtest.Start(b)
	srv.CreateDB(b, "bench")
	if out, err := exec.Command(srv.Bin("pgbench"), "-i", "-s", "20", "-q", srv.URL("bench")).CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v: %s", err, out)
	}
	dir := b.TempDir()
	id, _ := age.GenerateX25519Identity()
	st, _ := local.New("bench", filepath.Join(dir, "store"))
	stages := []pipeline.Stage{zstd.Stage{}, &agestage.Stage{Recipients: []age.Recipient{id.Recipient()}}}
	src, err := postgres.New(&postgres.Config{URL: srv.URL("bench")}, source.Deps{Dir: dir, Env: os.LookupEnv})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		var stderr bytes.Buffer
		cmd := exec.Command(srv.Bin("pg_dump"), "-Fc", "-f", filepath.Join(dir, "plain.dump"), srv.URL("bench"))
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("pg_dump: %v %s", err, stderr.String())
		}
		tool := time.Since(t0)
		fi, _ := os.Stat(filepath.Join(dir, "plain.dump"))

		var meta source.Meta
		t1 := time.Now()
		res := pipeline.Run(b.Context(), func(w io.Writer) error { return src.Dump(b.Context(), w, &meta) }, stages,
			[]pipeline.Dest{{Storage: st, Key: fmt.Sprintf("k/%d", i)}}, pipeline.Options{})
		ours := time.Since(t1)
		if !res.OK() {
			b.Fatal(res.SourceErr)
		}
		b.ReportMetric(ours.Seconds()/tool.Seconds(), "x_tools")
		b.ReportMetric(float64(res.StoredBytes)/float64(fi.Size()), "x_size")
		b.Logf("pgbench scale 20: pg_dump -Fc %v (%s), lifeboat %v (%s, row counts in the same snapshot): %.2fx time, %.2fx size",
			tool.Round(time.Millisecond), mib(fi.Size()), ours.Round(time.Millisecond), mib(res.StoredBytes),
			ours.Seconds()/tool.Seconds(), float64(res.StoredBytes)/float64(fi.Size()))
	}
}

func mib(n int64) string {
	return strings.TrimSuffix(fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)), ".0")
}
