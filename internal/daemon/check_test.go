package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/config"
)

func TestCheck(t *testing.T) {
	y := `encryption:
  recipients: [age1qqq]
storages:
  shared: {type: local, path: ./store}
defaults:
  jitter: -5m
sources:
  db:
    type: fake
    storages: [shared]
    schedule: "0 3 * * *"
    timezone: Europe/Atlantis
    rpo: 26h
    drill:
      schedule: "0 4 31 2 *"
    prune:
      schedule: every 6h
  files:
    type: fake
    storages: [shared]
    schedule: "@weekly"
summary:
  schedule: "0 8 * *"
daemon:
  max_parallel: -1
  lock_ttl: 2s
  metrics_listen: "localhost"
`
	cfg, err := config.Parse("lifeboat.yaml", t.TempDir(), []byte(y), testRegistry, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	ps := Check(cfg, time.UTC)
	var got []string
	for _, p := range ps {
		got = append(got, p.Error())
	}
	want := []string{
		`lifeboat.yaml:12:15: source db: unknown time zone "Europe/Atlantis"`,
		`lifeboat.yaml:15:17: drill of db: schedule "0 4 31 2 *" never runs`,
		`lifeboat.yaml:6:11: source files: jitter -5m0s is negative`,
		`lifeboat.yaml:23:13: summary: schedule "0 8 * *" is not valid`,
		`lifeboat.yaml:25:17: daemon.max_parallel must not be negative`,
		`lifeboat.yaml:26:13: daemon.lock_ttl 2s is too short`,
		`lifeboat.yaml:27:19: daemon.metrics_listen "localhost" is not an address`,
	}
	if len(got) != len(want) {
		t.Fatalf("problems:\n%s", strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d:\n got %s\nwant %s...", i, got[i], want[i])
		}
	}
	if _, err := New(cfg, Services{Runner: newFakeRunner(newFakeClock(T))}, Options{Clock: newFakeClock(T)}); err == nil {
		t.Fatal("New accepted a config with schedule problems")
	}
}

func TestDrillAndPruneTakeTheSourceZone(t *testing.T) {
	dir := t.TempDir()
	cfg := parseConfig(t, dir, `  db: {type: fake, storages: [shared], schedule: "@daily", timezone: Asia/Tokyo,
        drill: {schedule: "@weekly"}, prune: {schedule: "@daily", timezone: UTC}}`, "")
	tasks, ps := Tasks(cfg, time.UTC)
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	var got []string
	for _, tk := range tasks {
		got = append(got, string(tk.Kind)+"="+tk.Schedule.Location().String())
	}
	if strings.Join(got, " ") != "backup=Asia/Tokyo drill=Asia/Tokyo prune=UTC" {
		t.Fatalf("zones: %v", got)
	}
}
