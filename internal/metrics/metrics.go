// Package metrics exposes what lifeboat did as Prometheus metrics, on a
// private registry (never the global one): over HTTP for the daemon
// (`lifeboat daemon --metrics-listen`), and as a node_exporter textfile for
// cron users (`lifeboat backup --metrics-file F`).
//
// # Metrics
//
//	lifeboat_last_success_timestamp_seconds{kind,source,storage}  end of the last successful run; storage is "" for runs not tied to one
//	lifeboat_last_run_timestamp_seconds{kind,source}              end of the last run, whatever its outcome
//	lifeboat_last_run_status{kind,source,status}                  1 for the last run's status (ok, suspect, partial, failed, skipped)
//	lifeboat_last_duration_seconds{kind,source}                   how long the last run took
//	lifeboat_last_size_bytes{source,storage}                      stored size of the last successful backup in that storage
//	lifeboat_last_plain_size_bytes{source}                        its size before compression and encryption
//	lifeboat_failures_total{kind,source}                          failed runs
//	lifeboat_storage_failures_total{source,storage}               failed writes to a storage (partial runs included)
//	lifeboat_overdue{source}                                      1 when the newest good backup is older than the source's rpo
//	lifeboat_newest_backup_timestamp_seconds{source}              start of the newest good backup, as found in storage
//	lifeboat_drill_rto_seconds{source}                            time the last successful drill took to restore
//	lifeboat_next_run_timestamp_seconds{kind,source}              when the daemon will next run it (daemon only)
//
// A source backed up in several parts (one artifact per part) counts once
// per run: sizes are summed over parts, the duration spans all of them, and
// the run succeeded in a storage only if every part did.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lifeboat-backup/lifeboat/internal/report"
)

// Metrics holds lifeboat's metrics on a private registry. Its methods are
// safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	lastSuccess     *prometheus.GaugeVec
	lastRun         *prometheus.GaugeVec
	lastStatus      *prometheus.GaugeVec
	lastDuration    *prometheus.GaugeVec
	lastSize        *prometheus.GaugeVec
	lastPlainSize   *prometheus.GaugeVec
	failures        *prometheus.CounterVec
	storageFailures *prometheus.CounterVec
	overdue         *prometheus.GaugeVec
	newest          *prometheus.GaugeVec
	drillRTO        *prometheus.GaugeVec
	nextRun         *prometheus.GaugeVec
}

var statuses = []report.Status{report.OK, report.Suspect, report.Partial, report.Failed, report.Skipped}

// New returns empty metrics on a new registry.
func New() *Metrics {
	g := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "lifeboat", Name: name, Help: help}, labels)
	}
	c := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "lifeboat", Name: name, Help: help}, labels)
	}
	m := &Metrics{
		reg:             prometheus.NewRegistry(),
		lastSuccess:     g("last_success_timestamp_seconds", "Unix time the last successful run ended.", "kind", "source", "storage"),
		lastRun:         g("last_run_timestamp_seconds", "Unix time the last run ended, whatever its outcome.", "kind", "source"),
		lastStatus:      g("last_run_status", "1 for the status of the last run.", "kind", "source", "status"),
		lastDuration:    g("last_duration_seconds", "How long the last run took.", "kind", "source"),
		lastSize:        g("last_size_bytes", "Stored size of the last successful backup in the storage.", "source", "storage"),
		lastPlainSize:   g("last_plain_size_bytes", "Size of the last successful backup before compression and encryption.", "source"),
		failures:        c("failures_total", "Runs that failed.", "kind", "source"),
		storageFailures: c("storage_failures_total", "Backups that could not be written to the storage.", "source", "storage"),
		overdue:         g("overdue", "1 when the newest good backup is older than the source's rpo.", "source"),
		newest:          g("newest_backup_timestamp_seconds", "Unix time the newest good backup started.", "source"),
		drillRTO:        g("drill_rto_seconds", "Time the last successful restore drill took.", "source"),
		nextRun:         g("next_run_timestamp_seconds", "Unix time the daemon will next run it.", "kind", "source"),
	}
	m.reg.MustRegister(m.lastSuccess, m.lastRun, m.lastStatus, m.lastDuration, m.lastSize, m.lastPlainSize,
		m.failures, m.storageFailures, m.overdue, m.newest, m.drillRTO, m.nextRun)
	return m
}

// RegisterRuntime adds the Go runtime and process collectors, for a
// long-running daemon.
func (m *Metrics) RegisterRuntime() {
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// Registry returns the private registry, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, ErrorHandling: promhttp.ContinueOnError})
}

// sourceRun is one source's share of a run.
type sourceRun struct {
	status            report.Status
	started, finished time.Time
	plain             int64
	stored            map[string]int64 // storage -> summed stored size
	storageOK         map[string]bool  // false if any part failed there
	rto               float64
}

// Observe records a finished run. A nil run is ignored.
func (m *Metrics) Observe(run *report.Run) {
	if run == nil {
		return
	}
	kind := string(run.Kind)
	var order []string
	bySource := map[string]*sourceRun{}
	for _, it := range run.Items {
		s := bySource[it.Source]
		if s == nil {
			s = &sourceRun{status: report.OK, started: it.Started, finished: it.Finished,
				stored: map[string]int64{}, storageOK: map[string]bool{}}
			bySource[it.Source] = s
			order = append(order, it.Source)
		}
		s.status = worse(s.status, it.Status)
		if !it.Started.IsZero() && (s.started.IsZero() || it.Started.Before(s.started)) {
			s.started = it.Started
		}
		if it.Finished.After(s.finished) {
			s.finished = it.Finished
		}
		s.plain += it.PlainSize
		if it.RTOSeconds > 0 {
			s.rto = max(s.rto, it.RTOSeconds)
		}
		for _, sr := range it.Storages {
			ok, seen := s.storageOK[sr.Storage]
			s.storageOK[sr.Storage] = sr.OK && (ok || !seen)
			if sr.OK {
				s.stored[sr.Storage] += it.StoredSize
			}
		}
	}
	for _, src := range order {
		s := bySource[src]
		end := s.finished
		if end.IsZero() {
			end = run.Finished
		}
		m.lastRun.WithLabelValues(kind, src).Set(unix(end))
		for _, st := range statuses {
			if st == s.status {
				m.lastStatus.WithLabelValues(kind, src, string(st)).Set(1)
			} else {
				m.lastStatus.DeleteLabelValues(kind, src, string(st))
			}
		}
		if !s.started.IsZero() && !s.finished.IsZero() {
			m.lastDuration.WithLabelValues(kind, src).Set(s.finished.Sub(s.started).Seconds())
		}
		if s.status == report.Failed {
			m.failures.WithLabelValues(kind, src).Inc()
		}
		committed := s.status == report.OK || s.status == report.Suspect || s.status == report.Partial
		for st, ok := range s.storageOK {
			if !ok {
				m.storageFailures.WithLabelValues(src, st).Inc()
				continue
			}
			if s.status != report.OK && s.status != report.Partial {
				continue
			}
			m.lastSuccess.WithLabelValues(kind, src, st).Set(unix(end))
			if run.Kind == report.Backup {
				m.lastSize.WithLabelValues(src, st).Set(float64(s.stored[st]))
			}
		}
		if len(s.storageOK) == 0 && s.status == report.OK {
			m.lastSuccess.WithLabelValues(kind, src, "").Set(unix(end))
		}
		if run.Kind == report.Backup && committed && s.status != report.Suspect {
			m.lastPlainSize.WithLabelValues(src).Set(float64(s.plain))
		}
		if run.Kind == report.Drill && s.status == report.OK && s.rto > 0 {
			m.drillRTO.WithLabelValues(src).Set(s.rto)
		}
	}
}

// SetOverdue records whether source is overdue and, when known, when its
// newest good backup started.
func (m *Metrics) SetOverdue(source string, overdue bool, newest time.Time) {
	v := 0.0
	if overdue {
		v = 1
	}
	m.overdue.WithLabelValues(source).Set(v)
	if !newest.IsZero() {
		m.newest.WithLabelValues(source).Set(unix(newest))
	}
}

// SetNextRun records when the daemon will next run kind for source; the
// zero time removes it.
func (m *Metrics) SetNextRun(kind report.Kind, source string, at time.Time) {
	if at.IsZero() {
		m.nextRun.DeleteLabelValues(string(kind), source)
		return
	}
	m.nextRun.WithLabelValues(string(kind), source).Set(unix(at))
}

// Forget removes every series of source (after it left the config).
func (m *Metrics) Forget(source string) {
	l := prometheus.Labels{"source": source}
	for _, v := range []*prometheus.GaugeVec{m.lastSuccess, m.lastRun, m.lastStatus, m.lastDuration, m.lastSize,
		m.lastPlainSize, m.overdue, m.newest, m.drillRTO, m.nextRun} {
		v.DeletePartialMatch(l)
	}
	m.failures.DeletePartialMatch(l)
	m.storageFailures.DeletePartialMatch(l)
}

func worse(a, b report.Status) report.Status {
	rank := map[report.Status]int{report.OK: 0, report.Skipped: 1, report.Suspect: 2, report.Partial: 3, report.Failed: 4}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
