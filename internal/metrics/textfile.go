package metrics

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/lifeboat-backup/lifeboat/internal/report"
)

// WriteTextfile records run in the node_exporter textfile at path, for
// `lifeboat backup --metrics-file`. Series already in the file (other
// sources, earlier successes, failure counts) are carried over, so a failed
// run does not erase the last success and counters keep counting across
// cron invocations. Two processes writing one file at the same moment may
// lose one update; give each cron entry its own file to avoid that.
func WriteTextfile(path string, run *report.Run) error {
	m := New()
	if f, err := os.Open(path); err == nil {
		err = m.Load(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("read metrics file %s: %w (delete it to start afresh)", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read metrics file %s: %w", path, err)
	}
	m.Observe(run)
	return m.WriteFile(path)
}

// Load sets the metrics from text-format exposition r (a textfile written
// earlier). Series of unknown metrics or with unexpected labels are ignored.
func (m *Metrics) Load(r io.Reader) error {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return err
	}
	for name, fam := range fams {
		for _, mt := range fam.GetMetric() {
			labels := map[string]string{}
			for _, lp := range mt.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			m.set(name, fam.GetType(), labels, mt)
		}
	}
	return nil
}

func (m *Metrics) set(name string, typ dto.MetricType, labels map[string]string, mt *dto.Metric) {
	if typ == dto.MetricType_COUNTER {
		var c prometheus.Counter
		var err error
		switch name {
		case "lifeboat_failures_total":
			c, err = m.failures.GetMetricWith(labels)
		case "lifeboat_storage_failures_total":
			c, err = m.storageFailures.GetMetricWith(labels)
		default:
			return
		}
		if err == nil {
			c.Add(mt.GetCounter().GetValue())
		}
		return
	}
	if typ != dto.MetricType_GAUGE {
		return
	}
	vecs := map[string]*prometheus.GaugeVec{
		"lifeboat_last_success_timestamp_seconds":  m.lastSuccess,
		"lifeboat_last_run_timestamp_seconds":      m.lastRun,
		"lifeboat_last_run_status":                 m.lastStatus,
		"lifeboat_last_duration_seconds":           m.lastDuration,
		"lifeboat_last_size_bytes":                 m.lastSize,
		"lifeboat_last_plain_size_bytes":           m.lastPlainSize,
		"lifeboat_overdue":                         m.overdue,
		"lifeboat_newest_backup_timestamp_seconds": m.newest,
		"lifeboat_drill_rto_seconds":               m.drillRTO,
	}
	v, ok := vecs[name]
	if !ok {
		return
	}
	if g, err := v.GetMetricWith(labels); err == nil {
		g.Set(mt.GetGauge().GetValue())
	}
}

// WriteFile writes the metrics to path in the text format through a temporary
// file in the same folder, renamed into place, so node_exporter never reads
// a half-written file. The temporary name does not end in .prom, so the
// textfile collector ignores it.
func (m *Metrics) WriteFile(path string) error {
	fams, err := m.reg.Gather()
	if err != nil {
		return fmt.Errorf("gather metrics: %w", err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write metrics file: %w", err)
	}
	defer os.Remove(tmp.Name())
	for _, f := range fams {
		if _, err := expfmt.MetricFamilyToText(tmp, f); err != nil {
			tmp.Close()
			return fmt.Errorf("write metrics file %s: %w", path, err)
		}
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write metrics file %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write metrics file %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write metrics file %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write metrics file %s: %w", path, err)
	}
	return nil
}
