package cli_test

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/lifeboat-backup/lifeboat/internal/testutil"
)

const scheduledConfig = baseConfig + `    schedule: "30 2 * * 1-5"
    timezone: Europe/Berlin
    jitter: 10m
    drill: {schedule: "@weekly"}
    prune: {schedule: every 6h}
  big_files:
    type: files
    paths: [./uploads]
    schedule: every 7m
    catch_up_pass: true
summary:
  schedule: "0 8 * * *"
`

// scheduleOutput runs `schedule --print format` with a fixed binary path and
// the temp folder replaced by /DIR, for golden files.
func scheduleOutput(t *testing.T, e *env, format, binary string) string {
	t.Helper()
	out := e.mustRun("schedule", "--print", format, "--binary", binary, "--image", "example.org/lifeboat:1.0")
	return strings.ReplaceAll(out, e.dir, "/DIR")
}

// TestSchedulePrint pins the three formats (golden files, produced by
// `go test ./internal/cli -run TestSchedulePrint -update` and read through).
func TestSchedulePrint(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(scheduledConfig)
	for _, f := range []string{"systemd", "cron", "kubernetes"} {
		t.Run(f, func(t *testing.T) {
			golden(t, "schedule-"+f+".golden", scheduleOutput(t, e, f, "/usr/local/bin/lifeboat"))
		})
	}
}

func TestScheduleUsage(t *testing.T) {
	e := newEnv(t)
	if r := e.run("schedule"); r.code != 2 || !strings.Contains(r.stderr, "--print is required") {
		t.Fatalf("no --print: %d %s", r.code, r.stderr)
	}
	if r := e.run("schedule", "--print", "launchd"); r.code != 2 || !strings.Contains(r.stderr, `unknown format "launchd"`) {
		t.Fatalf("bad format: %d %s", r.code, r.stderr)
	}
	if r := e.run("schedule", "--print", "cron"); r.code != 2 || !strings.Contains(r.stderr, "nothing is scheduled") {
		t.Fatalf("no schedules: %d %s", r.code, r.stderr)
	}
	e.writeConfig(baseConfig + "    schedule: \"0 25 * * *\"\n")
	if r := e.run("schedule", "--print", "cron"); r.code != 2 || !strings.Contains(r.stderr, "lifeboat.yaml:19:15") {
		t.Fatalf("bad schedule: %d %s", r.code, r.stderr)
	}
}

// TestScheduleSystemdVerify checks the printed units with systemd itself:
// `systemd-analyze verify` parses every key and calendar expression.
func TestScheduleSystemdVerify(t *testing.T) {
	analyze := testutil.LookPath(t, "systemd", "systemd-analyze")
	e := newEnv(t)
	e.writeConfig(scheduledConfig)
	bin := testutil.LookPath(t, "systemd", "true")
	out := e.mustRun("schedule", "--print", "systemd", "--binary", bin)
	dir := t.TempDir()
	var files []string
	var cur *os.File
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, "# ==> "); ok {
			if cur != nil {
				cur.Close()
			}
			p := filepath.Join(dir, strings.TrimSuffix(name, " <=="))
			files = append(files, p)
			var err error
			if cur, err = os.Create(p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if cur != nil {
			io.WriteString(cur, line+"\n")
		}
	}
	cur.Close()
	if len(files) != 10 {
		t.Fatalf("%d unit files, want 10 (5 tasks)", len(files))
	}
	cmd := exec.Command(analyze, append([]string{"verify"}, files...)...)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0")
	res, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(res))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, res)
	}
}

// TestScheduleKubernetesParses decodes every printed CronJob.
func TestScheduleKubernetesParses(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(scheduledConfig)
	out := e.mustRun("schedule", "--print", "kubernetes")
	dec := yaml.NewDecoder(strings.NewReader(out))
	type cronJob struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Spec struct {
			Schedule          string `yaml:"schedule"`
			TimeZone          string `yaml:"timeZone"`
			ConcurrencyPolicy string `yaml:"concurrencyPolicy"`
			JobTemplate       struct {
				Spec struct {
					Template struct {
						Spec struct {
							Containers []struct {
								Image string   `yaml:"image"`
								Args  []string `yaml:"args"`
							} `yaml:"containers"`
						} `yaml:"spec"`
					} `yaml:"template"`
				} `yaml:"spec"`
			} `yaml:"jobTemplate"`
		} `yaml:"spec"`
	}
	var jobs []cronJob
	for {
		var j cronJob
		err := dec.Decode(&j)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("decode: %v\n%s", err, out)
		}
		if j.Kind != "" {
			jobs = append(jobs, j)
		}
	}
	// every 7m is not a cron expression: 4 of the 5 tasks.
	if len(jobs) != 4 {
		t.Fatalf("%d CronJobs, want 4:\n%s", len(jobs), out)
	}
	j := jobs[0]
	args := j.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Args
	if j.APIVersion != "batch/v1" || j.Metadata.Name != "lifeboat-backup-uploads" || j.Spec.Schedule != "30 2 * * 1-5" ||
		j.Spec.TimeZone != "Europe/Berlin" || j.Spec.ConcurrencyPolicy != "Forbid" ||
		strings.Join(args, " ") != "--config /etc/lifeboat/lifeboat.yaml --log-level info backup uploads" {
		t.Fatalf("first CronJob: %+v", j)
	}
	if last := jobs[3]; last.Metadata.Name != "lifeboat-summary" || last.Spec.Schedule != "0 8 * * *" {
		t.Fatalf("summary CronJob: %+v", last)
	}
}

// TestDeployExamples checks the files in deploy/: systemd accepts the units,
// the Kubernetes manifests parse, and the example config in the ConfigMap is
// valid and scheduled.
func TestDeployExamples(t *testing.T) {
	t.Run("systemd", func(t *testing.T) {
		analyze := testutil.LookPath(t, "systemd", "systemd-analyze")
		bin := testutil.LookPath(t, "systemd", "true")
		dir := t.TempDir()
		src, err := filepath.Glob("../../deploy/systemd/*")
		if err != nil || len(src) != 3 {
			t.Fatalf("deploy/systemd holds %v", src)
		}
		var units []string
		for _, p := range src {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			name := strings.Replace(filepath.Base(p), "@.", "@app-db.", 1) // instantiate templates
			b = []byte(strings.ReplaceAll(string(b), "/usr/local/bin/lifeboat", bin))
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
			units = append(units, filepath.Join(dir, name))
		}
		res, err := exec.Command(analyze, append([]string{"verify"}, units...)...).CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(res))) > 0 {
			t.Fatalf("systemd-analyze verify: %v\n%s", err, res)
		}
	})
	t.Run("kubernetes", func(t *testing.T) {
		var config string
		kinds := map[string]int{}
		for _, f := range []string{"cronjob.yaml", "daemon.yaml"} {
			b, err := os.ReadFile(filepath.Join("../../deploy/kubernetes", f))
			if err != nil {
				t.Fatal(err)
			}
			dec := yaml.NewDecoder(strings.NewReader(string(b)))
			for {
				var doc struct {
					Kind string            `yaml:"kind"`
					Data map[string]string `yaml:"data"`
				}
				err := dec.Decode(&doc)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				kinds[doc.Kind]++
				if doc.Kind == "ConfigMap" {
					config = doc.Data["lifeboat.yaml"]
				}
			}
		}
		if kinds["CronJob"] != 1 || kinds["Deployment"] != 1 || kinds["ConfigMap"] != 1 || config == "" {
			t.Fatalf("manifests hold %v", kinds)
		}
		e := newEnv(t)
		e.vars["PGPASSWORD"], e.vars["AWS_ACCESS_KEY_ID"], e.vars["AWS_SECRET_ACCESS_KEY"] = "x", "y", "z"
		if err := os.WriteFile(e.path("lifeboat.yaml"), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
		e.mustRun("validate")
		if out := e.mustRun("schedule", "--print", "kubernetes"); !strings.Contains(out, "name: lifeboat-backup-app-db") ||
			!strings.Contains(out, "name: lifeboat-prune-app-db") {
			t.Fatalf("the example config does not schedule app-db:\n%s", out)
		}
	})
}
