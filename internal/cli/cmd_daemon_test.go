package cli_test

import (
	"bufio"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// daemonProc is `lifeboat daemon` running as a real process.
type daemonProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  strings.Builder
	done chan struct{}
	err  error
}

func startDaemon(t *testing.T, e *env, args ...string) *daemonProc {
	t.Helper()
	bin := lifeboatBinary(t)
	cmd := exec.Command(bin, append([]string{"-c", e.path("lifeboat.yaml"), "daemon"}, args...)...)
	cmd.Dir = e.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.dir}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &daemonProc{t: t, cmd: cmd, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", p.logs())
		}
	})
	return p
}

func (p *daemonProc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// waitLog waits for a log line matching re and returns its submatches.
func (p *daemonProc) waitLog(re string) []string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := rx.FindStringSubmatch(p.logs()); m != nil {
			return m
		}
		select {
		case <-p.done:
			if m := rx.FindStringSubmatch(p.logs()); m != nil {
				return m
			}
			p.t.Fatalf("daemon exited (%v) before logging %q", p.err, re)
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no log line matching %q", re)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *daemonProc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *daemonProc) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(90 * time.Second):
		p.t.Fatal("daemon did not exit")
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatal(p.err)
	}
	return 0
}

func scrapeMetrics(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	return fams
}

// nextRun returns lifeboat_next_run_timestamp_seconds for a backup of source.
func nextRun(fams map[string]*dto.MetricFamily, source string) (float64, bool) {
	for _, m := range fams["lifeboat_next_run_timestamp_seconds"].GetMetric() {
		var kind, src string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "kind":
				kind = l.GetValue()
			case "source":
				src = l.GetValue()
			}
		}
		if kind == "backup" && src == source {
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// TestDaemonSIGHUP: a broken config on SIGHUP is logged with its position
// and the daemon keeps running with the old one; a good one is taken.
// Metrics are scraped over HTTP throughout.
func TestDaemonSIGHUP(t *testing.T) {
	e := newEnv(t)
	good := baseConfig + "    schedule: \"@daily\"\ndaemon:\n  state_dir: ./state\n"
	e.writeConfig(good)
	p := startDaemon(t, e, "--metrics-listen", "127.0.0.1:0")
	addr := p.waitLog(`msg="serving metrics" addr=(\S+)`)[1]
	p.waitLog(`msg="daemon started" tasks=1`)
	fams := scrapeMetrics(t, addr)
	before, ok := nextRun(fams, "uploads")
	if !ok || fams["go_goroutines"] == nil {
		t.Fatalf("metrics lack the next uploads backup or runtime metrics: %v", fams)
	}

	// A schedule that does not parse.
	e.writeConfig(baseConfig + "    schedule: \"61 * * * *\"\ndaemon:\n  state_dir: ./state\n")
	p.signal(syscall.SIGHUP)
	p.waitLog(`msg="reload failed; keeping the previous configuration" err=".*lifeboat.yaml:19:15: source uploads: schedule \\"61 \* \* \* \*\\" is not valid`)
	// A file that is not YAML at all.
	if err := os.WriteFile(e.path("lifeboat.yaml"), []byte("sources: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	if n := strings.Count(p.waitLog(`(?s).*reload failed.*reload failed[^\n]*`)[0], "reload failed"); n != 2 {
		t.Fatalf("%d reload failures logged", n)
	}
	if after, ok := nextRun(scrapeMetrics(t, addr), "uploads"); !ok || after != before {
		t.Fatalf("schedule changed after a failed reload: %v -> %v (%v)", before, after, ok)
	}

	// A good change: app-db gets a schedule too.
	e.writeConfig(strings.Replace(good, "    schema_version:", "    schedule: \"@hourly\"\n    schema_version:", 1))
	p.signal(syscall.SIGHUP)
	p.waitLog(`msg="configuration reloaded" tasks=2`)
	if _, ok := nextRun(scrapeMetrics(t, addr), "app-db"); !ok {
		t.Fatal("app-db not scheduled after the reload")
	}

	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	if !strings.Contains(p.logs(), `msg="daemon stopped"`) {
		t.Fatal("no clean stop logged")
	}
}

// TestDaemonSIGTERMDuringBackup: SIGTERM while a long backup of a files
// source is being written: the backup gets shutdown_grace, is cancelled, the
// daemon exits, and nothing half-written is listed or left behind.
func TestDaemonSIGTERMDuringBackup(t *testing.T) {
	e := newEnv(t)
	// A 1 TiB sparse file reads as zeros: a backup that would take hours.
	// Without compression every chunk reaches the storage at once, so the
	// artifact grows only until the cancellation (grace 200ms) stops it.
	// (With zstd the zeros shrink to nearly nothing, and the files source
	// notices the cancellation only when it writes to the pipe.)
	if err := os.MkdirAll(e.path("big"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(e.path("big/sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		t.Skipf("file system has no sparse files: %v", err)
	}
	f.Close()
	e.writeConfig(baseConfig + `  big:
    type: files
    paths: [./big]
    compression: none
    schedule: every 1s
daemon:
  state_dir: ./state
  shutdown_grace: 200ms
`)
	p := startDaemon(t, e)
	p.waitLog(`msg="run started" job=backup source=big`)
	deadline := time.Now().Add(60 * time.Second)
	for len(partFiles(t, e.path("backups"))) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the backup never started writing")
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	log := p.logs()
	for _, want := range []string{
		`msg="shutting down: waiting for runs in progress" runs=1 grace=200ms`,
		`msg="shutdown grace over: cancelling runs in progress`,
		`msg="run finished" job=backup source=big`,
		`status=failed`,
		`msg="daemon stopped"`,
	} {
		if !strings.Contains(log, want) {
			t.Fatalf("log lacks %q", want)
		}
	}
	if parts := partFiles(t, e.path("backups")); len(parts) != 0 {
		t.Fatalf("temp files left: %v", parts)
	}
	if ls := e.list("big"); len(ls) != 0 {
		t.Fatalf("a cancelled backup is listed: %+v", ls)
	}
	// The lock was released, not left to expire.
	var locks []string
	filepath.WalkDir(e.path("backups/locks"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(path)
			locks = append(locks, filepath.Base(path)+": "+string(b))
		}
		return nil
	})
	if len(locks) != 1 || !strings.Contains(locks[0], `"released":true`) {
		t.Fatalf("lock after shutdown: %q, want one released generation", locks)
	}
}
