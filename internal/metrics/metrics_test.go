package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/lifeboat-backup/lifeboat/internal/report"
)

var t0 = time.Date(2027, 5, 1, 3, 0, 0, 0, time.UTC)

func parse(t *testing.T, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parse exposition: %v", err)
	}
	return fams
}

// value finds the sample of name whose labels are exactly labels
// ("k=v,k=v"); ok is false when there is none.
func value(fams map[string]*dto.MetricFamily, name, labels string) (float64, bool) {
	fam := fams[name]
	if fam == nil {
		return 0, false
	}
	for _, m := range fam.GetMetric() {
		var parts []string
		for _, lp := range m.GetLabel() {
			if lp.GetValue() != "" {
				parts = append(parts, lp.GetName()+"="+lp.GetValue())
			}
		}
		if strings.Join(parts, ",") != labels {
			continue
		}
		switch fam.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		case dto.MetricType_UNTYPED:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

func want(t *testing.T, fams map[string]*dto.MetricFamily, name, labels string, v float64) {
	t.Helper()
	got, ok := value(fams, name, labels)
	if !ok {
		t.Errorf("%s{%s} missing", name, labels)
		return
	}
	if got != v {
		t.Errorf("%s{%s} = %v, want %v", name, labels, got, v)
	}
}

func absent(t *testing.T, fams map[string]*dto.MetricFamily, name, labels string) {
	t.Helper()
	if v, ok := value(fams, name, labels); ok {
		t.Errorf("%s{%s} = %v, want no such series", name, labels, v)
	}
}

func backupRun(start time.Time, items ...report.Item) *report.Run {
	r := &report.Run{ID: "r", Kind: report.Backup, Host: "h", Started: start, Finished: start.Add(time.Hour), Items: items}
	r.Summarize()
	return r
}

func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape: %s, content type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	return parse(t, resp.Body)
}

func TestObserveOverHTTP(t *testing.T) {
	m := New()
	// Two parts; the second failed to reach "offsite".
	m.Observe(backupRun(t0,
		report.Item{Source: "files", Part: "a", Status: report.OK, Started: t0, Finished: t0.Add(10 * time.Minute),
			PlainSize: 1000, StoredSize: 400,
			Storages: []report.StorageResult{{Storage: "local", OK: true}, {Storage: "offsite", OK: true}}},
		report.Item{Source: "files", Part: "b", Status: report.Partial, Started: t0.Add(10 * time.Minute), Finished: t0.Add(30 * time.Minute),
			PlainSize: 500, StoredSize: 100,
			Storages: []report.StorageResult{{Storage: "local", OK: true}, {Storage: "offsite", OK: false, Error: "timeout"}}},
		report.Item{Source: "db", Status: report.OK, Started: t0, Finished: t0.Add(2 * time.Minute), PlainSize: 50, StoredSize: 20,
			Storages: []report.StorageResult{{Storage: "local", OK: true}}},
	))
	m.SetOverdue("db", false, t0)
	m.SetOverdue("files", true, time.Time{})
	m.SetNextRun(report.Backup, "db", t0.Add(24*time.Hour))
	fams := scrape(t, m)

	end := float64(t0.Add(30 * time.Minute).Unix())
	want(t, fams, "lifeboat_last_success_timestamp_seconds", "kind=backup,source=files,storage=local", end)
	absent(t, fams, "lifeboat_last_success_timestamp_seconds", "kind=backup,source=files,storage=offsite")
	want(t, fams, "lifeboat_last_size_bytes", "source=files,storage=local", 500)
	absent(t, fams, "lifeboat_last_size_bytes", "source=files,storage=offsite")
	want(t, fams, "lifeboat_storage_failures_total", "source=files,storage=offsite", 1)
	want(t, fams, "lifeboat_last_duration_seconds", "kind=backup,source=files", 1800)
	want(t, fams, "lifeboat_last_run_status", "kind=backup,source=files,status=partial", 1)
	absent(t, fams, "lifeboat_last_run_status", "kind=backup,source=files,status=ok")
	want(t, fams, "lifeboat_last_plain_size_bytes", "source=files", 1500)
	want(t, fams, "lifeboat_last_success_timestamp_seconds", "kind=backup,source=db,storage=local", float64(t0.Add(2*time.Minute).Unix()))
	want(t, fams, "lifeboat_last_size_bytes", "source=db,storage=local", 20)
	want(t, fams, "lifeboat_overdue", "source=db", 0)
	want(t, fams, "lifeboat_overdue", "source=files", 1)
	want(t, fams, "lifeboat_newest_backup_timestamp_seconds", "source=db", float64(t0.Unix()))
	absent(t, fams, "lifeboat_newest_backup_timestamp_seconds", "source=files")
	want(t, fams, "lifeboat_next_run_timestamp_seconds", "kind=backup,source=db", float64(t0.Add(24*time.Hour).Unix()))
	absent(t, fams, "lifeboat_failures_total", "kind=backup,source=db")

	// A failure next day: counted, and the last success stays.
	t1 := t0.Add(24 * time.Hour)
	m.Observe(backupRun(t1, report.Item{Source: "db", Status: report.Failed, Started: t1, Finished: t1.Add(time.Minute), Error: "pg_dump: exit 1"}))
	// A drill.
	m.Observe(&report.Run{Kind: report.Drill, Status: report.OK, Started: t1, Finished: t1.Add(5 * time.Minute),
		Items: []report.Item{{Source: "db", Status: report.OK, Started: t1, Finished: t1.Add(5 * time.Minute), RTOSeconds: 281.5}}})
	fams = scrape(t, m)
	want(t, fams, "lifeboat_failures_total", "kind=backup,source=db", 1)
	want(t, fams, "lifeboat_last_run_status", "kind=backup,source=db,status=failed", 1)
	want(t, fams, "lifeboat_last_run_timestamp_seconds", "kind=backup,source=db", float64(t1.Add(time.Minute).Unix()))
	want(t, fams, "lifeboat_last_success_timestamp_seconds", "kind=backup,source=db,storage=local", float64(t0.Add(2*time.Minute).Unix()))
	want(t, fams, "lifeboat_drill_rto_seconds", "source=db", 281.5)
	want(t, fams, "lifeboat_last_success_timestamp_seconds", "kind=drill,source=db", float64(t1.Add(5*time.Minute).Unix()))

	m.Forget("files")
	fams = scrape(t, m)
	absent(t, fams, "lifeboat_overdue", "source=files")
	absent(t, fams, "lifeboat_storage_failures_total", "source=files,storage=offsite")
}

func TestRuntimeCollectors(t *testing.T) {
	m := New()
	m.RegisterRuntime()
	if fams := scrape(t, m); fams["go_goroutines"] == nil || fams["process_start_time_seconds"] == nil && fams["go_info"] == nil {
		t.Fatal("runtime metrics missing")
	}
}

func TestTextfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lifeboat.prom")
	ok := backupRun(t0, report.Item{Source: "db", Status: report.OK, Started: t0, Finished: t0.Add(time.Minute), StoredSize: 42,
		Storages: []report.StorageResult{{Storage: "local", OK: true}}})
	if err := WriteTextfile(path, ok); err != nil {
		t.Fatal(err)
	}
	t1 := t0.Add(24 * time.Hour)
	failed := backupRun(t1, report.Item{Source: "db", Status: report.Failed, Started: t1, Finished: t1.Add(time.Minute)})
	other := backupRun(t1, report.Item{Source: "files", Status: report.OK, Started: t1, Finished: t1.Add(time.Minute), StoredSize: 7,
		Storages: []report.StorageResult{{Storage: "local", OK: true}}})
	for _, r := range []*report.Run{failed, other, failed} {
		if err := WriteTextfile(path, r); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fams := parse(t, f)
	want(t, fams, "lifeboat_failures_total", "kind=backup,source=db", 2)
	want(t, fams, "lifeboat_last_success_timestamp_seconds", "kind=backup,source=db,storage=local", float64(t0.Add(time.Minute).Unix()))
	want(t, fams, "lifeboat_last_size_bytes", "source=db,storage=local", 42)
	want(t, fams, "lifeboat_last_run_status", "kind=backup,source=db,status=failed", 1)
	absent(t, fams, "lifeboat_last_run_status", "kind=backup,source=db,status=ok")
	want(t, fams, "lifeboat_last_size_bytes", "source=files,storage=local", 7)

	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("folder holds %v, want only the metrics file", entries)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, want 0644 (node_exporter must read it)", fi.Mode())
	}

	// A file that is not in the text format is not silently replaced.
	if err := os.WriteFile(path, []byte("{not metrics\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteTextfile(path, ok); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("corrupt file: %v", err)
	}
}
