package retention

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/config"
)

const stamp = "2006-01-02T15:04"

func at(s string) time.Time {
	t, err := time.Parse(stamp, s)
	if err != nil {
		panic(err)
	}
	return t
}

// hourly returns one backup per hour at :30 from first to last inclusive,
// with sequence numbers counting from seq0+1.
func hourly(first, last string, seq0 int64) []Backup {
	var out []Backup
	for t, s := at(first), seq0+1; !t.After(at(last)); t, s = t.Add(time.Hour), s+1 {
		out = append(out, Backup{ID: fmt.Sprintf("b%06d", s), Time: t, Sequence: s})
	}
	return out
}

// twoYears is hourly backups through 2025 and 2026: 17520 of them.
func twoYears() []Backup { return hourly("2025-01-01T00:30", "2026-12-31T23:30", 0) }

func kept(ds []Decision) []string {
	var out []string
	for _, d := range ds {
		if d.Keep {
			out = append(out, d.Time.UTC().Format(stamp))
		}
	}
	return out
}

func TestRules(t *testing.T) {
	gappy := slices.DeleteFunc(twoYears(), func(b Backup) bool {
		return !b.Time.Before(at("2026-12-20T00:00")) && b.Time.Before(at("2026-12-27T00:00"))
	})
	newYork, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		backups  []Backup
		policy   Policy
		want     []string // kept backups' times, newest first
		wantN    int      // or: how many are kept ...
		wantEnds [2]string
	}{
		{name: "last 3", backups: twoYears(), policy: Policy{Keep: config.Keep{Last: 3}},
			want: []string{"2026-12-31T23:30", "2026-12-31T22:30", "2026-12-31T21:30"}},
		{name: "hourly 4", backups: twoYears(), policy: Policy{Keep: config.Keep{Hourly: 4}},
			want: []string{"2026-12-31T23:30", "2026-12-31T22:30", "2026-12-31T21:30", "2026-12-31T20:30"}},
		{name: "daily 7", backups: twoYears(), policy: Policy{Keep: config.Keep{Daily: 7}},
			want: []string{"2026-12-31T23:30", "2026-12-30T23:30", "2026-12-29T23:30", "2026-12-28T23:30",
				"2026-12-27T23:30", "2026-12-26T23:30", "2026-12-25T23:30"}},
		// 2026-12-31 is a Thursday in ISO week 2026-W53, which began on Monday 12-28.
		{name: "weekly 3", backups: twoYears(), policy: Policy{Keep: config.Keep{Weekly: 3}},
			want: []string{"2026-12-31T23:30", "2026-12-27T23:30", "2026-12-20T23:30"}},
		{name: "monthly 13", backups: twoYears(), policy: Policy{Keep: config.Keep{Monthly: 13}},
			want: []string{"2026-12-31T23:30", "2026-11-30T23:30", "2026-10-31T23:30", "2026-09-30T23:30",
				"2026-08-31T23:30", "2026-07-31T23:30", "2026-06-30T23:30", "2026-05-31T23:30", "2026-04-30T23:30",
				"2026-03-31T23:30", "2026-02-28T23:30", "2026-01-31T23:30", "2025-12-31T23:30"}},
		{name: "yearly 5 with two years of backups keeps two", backups: twoYears(), policy: Policy{Keep: config.Keep{Yearly: 5}},
			want: []string{"2026-12-31T23:30", "2025-12-31T23:30"}},
		{name: "within 2d of the newest backup", backups: twoYears(), policy: Policy{Keep: config.Keep{Within: config.Duration(48 * time.Hour)}},
			wantN: 48, wantEnds: [2]string{"2026-12-31T23:30", "2026-12-30T00:30"}},
		{name: "daily -1 keeps one per day for ever", backups: twoYears(), policy: Policy{Keep: config.Keep{Daily: -1}},
			wantN: 730, wantEnds: [2]string{"2026-12-31T23:30", "2025-01-01T23:30"}},
		{name: "rules combine", backups: twoYears(), policy: Policy{Keep: config.Keep{Last: 2, Daily: 3, Monthly: 2}},
			want: []string{"2026-12-31T23:30", "2026-12-31T22:30", "2026-12-30T23:30", "2026-12-29T23:30", "2026-11-30T23:30"}},
		{name: "daily 7 over a one-week gap reaches back past it", backups: gappy, policy: Policy{Keep: config.Keep{Daily: 7}},
			want: []string{"2026-12-31T23:30", "2026-12-30T23:30", "2026-12-29T23:30", "2026-12-28T23:30",
				"2026-12-27T23:30", "2026-12-19T23:30", "2026-12-18T23:30"}},
		{name: "weekly 3 over a gap skips the empty week", backups: gappy, policy: Policy{Keep: config.Keep{Weekly: 3}},
			want: []string{"2026-12-31T23:30", "2026-12-27T23:30", "2026-12-19T23:30"}},
		{name: "within counts from the newest backup, not now", backups: hourly("2020-03-01T00:30", "2020-03-02T23:30", 0),
			policy: Policy{Keep: config.Keep{Within: config.Duration(3 * time.Hour)}},
			want:   []string{"2020-03-02T23:30", "2020-03-02T22:30", "2020-03-02T21:30"}},
		// Local days in New York (UTC-5 in winter) end at 05:00 UTC.
		{name: "daily 3 in America/New_York", backups: twoYears(), policy: Policy{Keep: config.Keep{Daily: 3}, Location: newYork},
			want: []string{"2026-12-31T23:30", "2026-12-31T04:30", "2026-12-30T04:30"}},
		// In July New York is UTC-4.
		{name: "daily 2 in New York in summer", backups: hourly("2026-07-01T00:30", "2026-07-10T12:30", 0),
			policy: Policy{Keep: config.Keep{Daily: 2}, Location: newYork},
			want:   []string{"2026-07-10T12:30", "2026-07-10T03:30"}},
		// 2026-12-31T23:30Z is already 2027-01-01 in Berlin.
		{name: "monthly 3 in Europe/Berlin", backups: twoYears(), policy: Policy{Keep: config.Keep{Monthly: 3}, Location: berlin},
			want: []string{"2026-12-31T23:30", "2026-12-31T22:30", "2026-11-30T22:30"}},
		// On 2026-10-25 Berlin leaves summer time: 02:00-03:00 local happens
		// twice (00:30Z and 01:30Z), and is one hourly period.
		{name: "hourly over the repeated hour in Berlin", backups: hourly("2026-10-24T22:30", "2026-10-25T02:30", 0),
			policy: Policy{Keep: config.Keep{Hourly: -1}, Location: berlin},
			want:   []string{"2026-10-25T02:30", "2026-10-25T01:30", "2026-10-24T23:30", "2026-10-24T22:30"}},
		{name: "empty policy keeps everything", backups: hourly("2026-01-01T00:30", "2026-01-01T05:30", 0),
			policy: Policy{}, wantN: 6, wantEnds: [2]string{"2026-01-01T05:30", "2026-01-01T00:30"}},
		{name: "no backups", policy: Policy{Keep: config.Keep{Last: 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := Apply(tt.backups, tt.policy)
			if len(ds) != len(tt.backups) {
				t.Fatalf("%d decisions for %d backups", len(ds), len(tt.backups))
			}
			got := kept(ds)
			if tt.wantN > 0 {
				if len(got) != tt.wantN || got[0] != tt.wantEnds[0] || got[len(got)-1] != tt.wantEnds[1] {
					t.Fatalf("kept %d from %v to %v, want %d from %v to %v", len(got), first(got), last(got), tt.wantN, tt.wantEnds[0], tt.wantEnds[1])
				}
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("kept\n  %v\nwant\n  %v", got, tt.want)
			}
			for _, d := range ds {
				if d.Keep != (len(d.Reasons) > 0) {
					t.Errorf("%s: keep=%v with reasons %q", d.ID, d.Keep, d.Reasons)
				}
			}
		})
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

// TestClockJumpBackwards: at sequence 6 the clock went back three hours.
// Order follows the sequence numbers, so the newest backup in each period is
// the one written last, not the one with the latest time stamp.
func TestClockJumpBackwards(t *testing.T) {
	bs := append(hourly("2026-11-20T20:30", "2026-11-21T00:30", 0), // seq 1-5
		hourly("2026-11-20T22:30", "2026-11-21T02:30", 5)...) // seq 6-10, 3h behind
	seqs := func(ds []Decision) []int64 {
		var out []int64
		for _, d := range ds {
			if d.Keep {
				out = append(out, d.Sequence)
			}
		}
		return out
	}
	for _, tt := range []struct {
		name string
		keep config.Keep
		want []int64
	}{
		{"last 3", config.Keep{Last: 3}, []int64{10, 9, 8}},
		// 20T22 (seq 6) is a new period; 21T00 (seq 5) was already seen at seq 8.
		{"hourly 5", config.Keep{Hourly: 5}, []int64{10, 9, 8, 7, 6}},
		{"hourly all", config.Keep{Hourly: -1}, []int64{10, 9, 8, 7, 6, 2, 1}},
		{"daily 2", config.Keep{Daily: 2}, []int64{10, 7}},
		{"within 2h of the newest", config.Keep{Within: config.Duration(2 * time.Hour)}, []int64{10, 9}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ds := Apply(bs, Policy{Keep: tt.keep})
			if got := seqs(ds); !slices.Equal(got, tt.want) {
				t.Fatalf("kept sequences %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTagged(t *testing.T) {
	bs := twoYears()
	tag := func(when string, tags ...string) {
		for i := range bs {
			if bs[i].Time.Equal(at(when)) {
				bs[i].Tags = tags
				return
			}
		}
		t.Fatalf("no backup at %s", when)
	}
	tag("2025-03-03T10:30", "pre-deploy")
	tag("2026-06-01T10:30", "pre-deploy", "pre-migration")
	tag("2026-09-01T10:30", "pre-migration")
	tag("2026-10-01T10:30", "pre-migration")
	tag("2026-12-01T10:30", "release")
	tag("2026-12-31T10:30", "release")
	p := Policy{Keep: config.Keep{Last: 1}, Tagged: []config.TagRule{
		{Tag: "pre-deploy"},
		{Tag: "pre-migration", Last: 2},
		{Tag: "release", Within: config.Duration(7 * 24 * time.Hour)},
	}}
	ds := Apply(bs, p)
	reasons := map[string][]string{}
	for _, d := range ds {
		if d.Keep {
			reasons[d.Time.Format(stamp)] = d.Reasons
		}
	}
	want := map[string][]string{
		"2026-12-31T23:30": {"last 1"},
		"2025-03-03T10:30": {"tag pre-deploy"},
		"2026-06-01T10:30": {"tag pre-deploy"}, // third pre-migration: not by that rule
		"2026-09-01T10:30": {"tag pre-migration last 2"},
		"2026-10-01T10:30": {"tag pre-migration last 2"},
		"2026-12-31T10:30": {"tag release within 7d"},
	}
	if len(reasons) != len(want) {
		t.Errorf("kept %v, want %v", reasons, want)
	}
	for k, w := range want {
		if !slices.Equal(reasons[k], w) {
			t.Errorf("%s: reasons %q, want %q", k, reasons[k], w)
		}
	}
}

func TestNewestGoodBackupIsKept(t *testing.T) {
	bs := hourly("2026-01-01T00:30", "2026-01-01T09:30", 0)
	bs[3].Good = true // the only good one, old
	bs[1].Good = true
	ds := Apply(bs, Policy{Keep: config.Keep{Last: 2}})
	got := map[int64][]string{}
	for _, d := range ds {
		if d.Keep {
			got[d.Sequence] = d.Reasons
		}
	}
	want := map[int64][]string{10: {"last 2"}, 9: {"last 2"}, 4: {"newest good backup"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("kept %v, want %v", got, want)
	}
	// A good backup kept by rules anyway lists both reasons.
	bs[9].Good = true
	ds = Apply(bs, Policy{Keep: config.Keep{Last: 2, Daily: 1}})
	if r := ds[0].Reasons; !slices.Equal(r, []string{"last 2", "daily 2026-01-01", "newest good backup"}) {
		t.Fatalf("newest reasons %q", r)
	}
}

func TestPolicy(t *testing.T) {
	p, err := NewPolicy(&config.Keep{Last: 3, Daily: 7, Weekly: -1, Within: config.Duration(48 * time.Hour)},
		[]config.TagRule{{Tag: "pre-deploy"}, {Tag: "release", Last: 2}}, "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.String(), "last 3, daily 7, weekly all, within 2d, tag pre-deploy, tag release last 2 (Europe/Berlin)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if _, err := NewPolicy(nil, nil, "Mars/Olympus"); err == nil || !strings.Contains(err.Error(), "Mars/Olympus") {
		t.Errorf("bad time zone: err = %v", err)
	}
	e, err := NewPolicy(nil, nil, "")
	if err != nil || !e.Empty() || e.String() != "no keep rules" {
		t.Errorf("empty policy: %v %v %q", err, e.Empty(), e.String())
	}
}

func TestGood(t *testing.T) {
	m := &catalog.Manifest{}
	for _, tt := range []struct {
		name  string
		m     *catalog.Manifest
		drill *catalog.DrillReport
		want  bool
	}{
		{"checks passed, never drilled", m, nil, true},
		{"suspect", &catalog.Manifest{Suspect: true}, nil, false},
		{"drill passed", m, &catalog.DrillReport{OK: true}, true},
		{"drill failed", m, &catalog.DrillReport{OK: false}, false},
		{"suspect but drill passed", &catalog.Manifest{Suspect: true}, &catalog.DrillReport{OK: true}, false},
	} {
		if got := Good(tt.m, tt.drill); got != tt.want {
			t.Errorf("%s: Good = %v", tt.name, got)
		}
	}
}

func BenchmarkApplyTwoYears(b *testing.B) {
	bs := twoYears()
	p := Policy{Keep: config.Keep{Last: 24, Hourly: 48, Daily: 30, Weekly: 12, Monthly: 24, Yearly: 5}}
	for b.Loop() {
		Apply(bs, p)
	}
}
