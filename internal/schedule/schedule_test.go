package schedule

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/config"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load zone %s: %v", name, err)
	}
	return loc
}

func mustParse(t *testing.T, expr, tz string) *Schedule {
	t.Helper()
	s, err := Parse(expr, tz, time.UTC)
	if err != nil {
		t.Fatalf("Parse(%q, %q): %v", expr, tz, err)
	}
	return s
}

// runs lists the runs in [from, to).
func runs(s *Schedule, span [2]time.Time) []time.Time {
	from, to := span[0], span[1]
	var out []time.Time
	for t := s.Next(from.Add(-time.Nanosecond)); !t.IsZero() && t.Before(to); t = s.Next(t) {
		out = append(out, t)
	}
	return out
}

func TestNext(t *testing.T) {
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		expr, tz string
		after    string
		want     []string // successive runs
	}{
		{"@daily", "", "2027-01-30T10:00:00Z", []string{"2027-01-31T00:00:00Z", "2027-02-01T00:00:00Z"}},
		{"@hourly", "", "2027-12-31T23:10:00Z", []string{"2028-01-01T00:00:00Z", "2028-01-01T01:00:00Z"}},
		{"@weekly", "", "2027-06-01T00:00:00Z", []string{"2027-06-06T00:00:00Z", "2027-06-13T00:00:00Z"}}, // Sundays
		{"@monthly", "", "2027-01-31T12:00:00Z", []string{"2027-02-01T00:00:00Z", "2027-03-01T00:00:00Z"}},
		{"@yearly", "", "2027-06-01T00:00:00Z", []string{"2028-01-01T00:00:00Z"}},
		// Month ends: the 31st skips months that have none.
		{"0 3 31 * *", "", "2027-01-31T03:00:00Z", []string{"2027-03-31T03:00:00Z", "2027-05-31T03:00:00Z", "2027-07-31T03:00:00Z", "2027-08-31T03:00:00Z"}},
		// February 29 only in leap years; 2100 is not one.
		{"0 0 29 2 *", "", "2027-01-01T00:00:00Z", []string{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},
		{"0 0 29 2 *", "", "2096-03-01T00:00:00Z", []string{"2104-02-29T00:00:00Z"}},
		{"0 0 28-31 * *", "", "2027-02-27T00:00:00Z", []string{"2027-02-28T00:00:00Z", "2027-03-28T00:00:00Z"}},
		// Day of month OR day of week when both are restricted (crontab rule).
		{"0 9 1 * MON", "", "2027-03-01T09:00:00Z", []string{"2027-03-08T09:00:00Z", "2027-03-15T09:00:00Z", "2027-03-22T09:00:00Z", "2027-03-29T09:00:00Z", "2027-04-01T09:00:00Z"}},
		// Six fields: seconds first.
		{"*/20 * * * * *", "", "2027-01-01T00:00:59Z", []string{"2027-01-01T00:01:00Z", "2027-01-01T00:01:20Z", "2027-01-01T00:01:40Z"}},
		{"30 0 4 * * *", "", "2027-01-01T04:00:30Z", []string{"2027-01-02T04:00:30Z"}},
		// Intervals are aligned to the Unix epoch, whatever the zone.
		{"every 6h", "Europe/Berlin", "2027-01-01T05:59:59Z", []string{"2027-01-01T06:00:00Z", "2027-01-01T12:00:00Z"}},
		{"every 6h", "", "2027-01-01T06:00:00Z", []string{"2027-01-01T12:00:00Z"}},
		{"@every 90m", "", "2027-01-01T00:00:00Z", []string{"2027-01-01T01:30:00Z", "2027-01-01T03:00:00Z"}},
		{"every 1d", "", "2027-01-01T00:00:00Z", []string{"2027-01-02T00:00:00Z"}},
		// Zones: key and prefix.
		{"30 2 * * *", "Asia/Tokyo", "2027-01-01T00:00:00Z", []string{"2027-01-01T17:30:00Z"}},
		{"CRON_TZ=Asia/Tokyo 30 2 * * *", "", "2027-01-01T00:00:00Z", []string{"2027-01-01T17:30:00Z"}},
		{"TZ=Asia/Tokyo  30 2 * * *", "Asia/Tokyo", "2027-01-01T00:00:00Z", []string{"2027-01-01T17:30:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.expr+"@"+tt.after, func(t *testing.T) {
			s := mustParse(t, tt.expr, tt.tz)
			at := utc(tt.after)
			for i, w := range tt.want {
				got := s.Next(at)
				if !got.Equal(utc(w)) {
					t.Fatalf("run %d after %s: got %s, want %s", i, at, got.UTC().Format(time.RFC3339), w)
				}
				if p := s.Prev(got); !p.Equal(got) {
					t.Fatalf("Prev(%s) = %s, want the run itself", got, p)
				}
				if p := s.Prev(got.Add(-time.Nanosecond)); !p.Before(got) || !s.Next(p).Equal(got) {
					t.Fatalf("Prev just before %s = %s, whose Next is %s", got, p, s.Next(p))
				}
				at = got
			}
		})
	}
}

// TestDSTBerlin pins the DST policy of doc.go: on the spring-forward day a
// 02:30 job runs once, at 03:00 CEST; on the fall-back day it runs once, at
// the first 02:30 (CEST), not again an hour later.
func TestDSTBerlin(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	s := mustParse(t, "30 2 * * *", "Europe/Berlin")
	day := func(y int, m time.Month, d int) [2]time.Time {
		from := time.Date(y, m, d, 0, 0, 0, 0, berlin)
		return [2]time.Time{from, from.AddDate(0, 0, 1)}
	}

	// 2027-03-28: 02:00 CET jumps to 03:00 CEST.
	got := runs(s, day(2027, 3, 28))
	want := time.Date(2027, 3, 28, 1, 0, 0, 0, time.UTC) // 03:00 CEST
	if len(got) != 1 || !got[0].Equal(want) {
		t.Fatalf("spring forward: runs %v, want exactly [%s]", got, want.In(berlin))
	}
	if _, off := got[0].Zone(); off != 2*3600 {
		t.Fatalf("spring forward run %s is not in CEST", got[0])
	}
	// The days around it are normal.
	if n := s.Next(got[0]); !n.Equal(time.Date(2027, 3, 29, 2, 30, 0, 0, berlin)) {
		t.Fatalf("day after spring forward: %s", n)
	}
	if p := s.Prev(got[0].Add(-time.Second)); !p.Equal(time.Date(2027, 3, 27, 2, 30, 0, 0, berlin)) {
		t.Fatalf("day before spring forward: %s", p)
	}

	// 2027-10-31: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
	got = runs(s, day(2027, 10, 31))
	want = time.Date(2027, 10, 31, 0, 30, 0, 0, time.UTC) // 02:30 CEST
	if len(got) != 1 || !got[0].Equal(want) {
		t.Fatalf("fall back: runs %v, want exactly [%s]", got, want.In(berlin))
	}
	// At the second 02:30 (CET) the last run is still the first one.
	second := time.Date(2027, 10, 31, 1, 30, 0, 0, time.UTC)
	if p := s.Prev(second); !p.Equal(want) {
		t.Fatalf("Prev at second 02:30 = %s, want %s", p, want)
	}
	if n := s.Next(want); !n.Equal(time.Date(2027, 11, 1, 2, 30, 0, 0, berlin)) {
		t.Fatalf("after fall back: %s", n)
	}

	// An hourly job runs once per wall-clock hour: 23 runs on the short day
	// (02:00 merges into 03:00), 24 on the long one.
	hourly := mustParse(t, "0 * * * *", "Europe/Berlin")
	if n := len(runs(hourly, day(2027, 3, 28))); n != 23 {
		t.Fatalf("hourly on spring-forward day: %d runs, want 23", n)
	}
	if n := len(runs(hourly, day(2027, 10, 31))); n != 24 {
		t.Fatalf("hourly on fall-back day: %d runs, want 24", n)
	}
	// Several slots inside the gap still run once.
	quarter := mustParse(t, "*/15 2 * * *", "Europe/Berlin")
	if got := runs(quarter, day(2027, 3, 28)); len(got) != 1 {
		t.Fatalf("*/15 2 on spring-forward day: %v, want one run", got)
	}
	if got := runs(quarter, day(2027, 10, 31)); len(got) != 4 {
		t.Fatalf("*/15 2 on fall-back day: %v, want four runs", got)
	}
}

// TestDSTNewYork covers a zone west of UTC, where time.Date normalises a
// missing time to the other side of the gap.
func TestDSTNewYork(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	s := mustParse(t, "30 2 * * *", "America/New_York")
	got := runs(s, [2]time.Time{time.Date(2027, 3, 14, 0, 0, 0, 0, ny), time.Date(2027, 3, 15, 0, 0, 0, 0, ny)})
	if want := time.Date(2027, 3, 14, 3, 0, 0, 0, ny); len(got) != 1 || !got[0].Equal(want) {
		t.Fatalf("spring forward: %v, want [%s]", got, want)
	}
	// 01:00 EDT goes back to 01:00 EST: 01:30 happens twice.
	s = mustParse(t, "30 1 * * *", "America/New_York")
	got = runs(s, [2]time.Time{time.Date(2027, 11, 7, 0, 0, 0, 0, ny), time.Date(2027, 11, 8, 0, 0, 0, 0, ny)})
	if want := time.Date(2027, 11, 7, 5, 30, 0, 0, time.UTC); len(got) != 1 || !got[0].Equal(want) {
		t.Fatalf("fall back: %v, want [%s] (EDT)", got, want.In(ny))
	}
}

// TestPrevNextAgree checks, at many instants in a DST year, that there is no
// run between Prev(t) and t and that Next(Prev(t)) is Next(t).
func TestPrevNextAgree(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	exprs := []string{"30 2 * * *", "0 * * * *", "*/7 1-3 * * 0", "15 10 1,15 * *", "0 30 2 * * *", "every 45m", "@weekly"}
	for _, zone := range []string{"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"} {
		for _, expr := range exprs {
			s := mustParse(t, expr, zone)
			start := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
			for i := 0; i < 300; i++ {
				at := time.Unix(start+rnd.Int64N(365*24*3600), 0)
				if i%3 == 0 { // bias towards DST days
					at = time.Date(2027, []time.Month{3, 4, 10, 11}[i%4], 1+rnd.IntN(28), rnd.IntN(24), rnd.IntN(60), 0, 0, s.Location())
				}
				p, n := s.Prev(at), s.Next(at)
				if p.IsZero() || n.IsZero() || p.After(at) || !n.After(at) {
					t.Fatalf("%s in %s at %s: prev %s next %s", expr, zone, at, p, n)
				}
				if np := s.Next(p); !np.Equal(n) {
					t.Fatalf("%s in %s at %s: Next(Prev)=%s but Next=%s", expr, zone, at, np, n)
				}
			}
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		expr, tz  string
		field     string
		msgSubstr string
	}{
		{"", "", "schedule", "empty"},
		{"61 * * * *", "", "schedule", "above maximum (59)"},
		{"* * *", "", "schedule", "expected 5 to 6 fields"},
		{"@fortnightly", "", "schedule", "unrecognized descriptor"},
		{"0 0 30 2 *", "", "schedule", "never runs"},
		{"every", "", "schedule", "missing interval"},
		{"every soon", "", "schedule", "not a duration"},
		{"every 500ms", "", "schedule", "shorter than a second"},
		{"@daily", "Mars/Olympus", "timezone", `unknown time zone "Mars/Olympus"`},
		{"CRON_TZ=Mars/Olympus @daily", "", "schedule", "unknown time zone"},
		{"CRON_TZ=Europe/Berlin", "", "schedule", "no times"},
		{"CRON_TZ=Europe/Berlin @daily", "UTC", "schedule", "but timezone is"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.expr, tt.tz, time.UTC)
		var fe *config.FieldError
		if !errors.As(err, &fe) {
			t.Fatalf("Parse(%q, %q) = %v, want a *config.FieldError", tt.expr, tt.tz, err)
		}
		if fe.Field != tt.field || !strings.Contains(fe.Msg, tt.msgSubstr) || fe.Hint == "" {
			t.Errorf("Parse(%q, %q) = field %q msg %q hint %q; want field %q, msg containing %q and a hint",
				tt.expr, tt.tz, fe.Field, fe.Msg, fe.Hint, tt.field, tt.msgSubstr)
		}
	}
}

func TestDefaultZone(t *testing.T) {
	tokyo := mustLoc(t, "Asia/Tokyo")
	s, err := Parse("0 9 * * *", "", tokyo)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Next(time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC)); !got.Equal(time.Date(2027, 1, 1, 9, 0, 0, 0, tokyo)) {
		t.Fatalf("got %s", got)
	}
}

func TestJitterBounds(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 7))
	if j := Jitter(0, rnd); j != 0 {
		t.Fatalf("Jitter(0) = %s", j)
	}
	if j := Jitter(-time.Minute, rnd); j != 0 {
		t.Fatalf("Jitter(<0) = %s", j)
	}
	if j := Jitter(time.Nanosecond, rnd); j != 0 {
		t.Fatalf("Jitter(1ns) = %s", j)
	}
	const limit = 10 * time.Minute
	lo, hi := limit, time.Duration(0)
	for range 10000 {
		j := Jitter(limit, rnd)
		if j < 0 || j >= limit {
			t.Fatalf("Jitter(%s) = %s, outside [0, %s)", limit, j, limit)
		}
		lo, hi = min(lo, j), max(hi, j)
	}
	if lo > limit/100 || hi < limit-limit/100 {
		t.Fatalf("10000 draws spread only over [%s, %s]", lo, hi)
	}
	// Same seed, same delays: jitter is reproducible in tests.
	a, b := rand.New(rand.NewPCG(3, 4)), rand.New(rand.NewPCG(3, 4))
	for range 10 {
		if Jitter(limit, a) != Jitter(limit, b) {
			t.Fatal("same seed gave different jitter")
		}
	}
}

func TestCrontab(t *testing.T) {
	tests := []struct{ expr, want, err string }{
		{"30 2 * * *", "30 2 * * *", ""},
		{"CRON_TZ=Europe/Berlin 30 2 * * 1-5", "30 2 * * 1-5", ""},
		{"0 30 2 * * *", "30 2 * * *", ""},
		{"15 30 2 * * *", "", "no seconds field"},
		{"@daily", "@daily", ""},
		{"every 15m", "*/15 * * * *", ""},
		{"every 1h", "0 * * * *", ""},
		{"every 6h", "0 */6 * * *", ""},
		{"every 1d", "0 0 * * *", ""},
		{"every 7m", "", "cannot run at an interval"},
	}
	for _, tt := range tests {
		got, err := mustParse(t, tt.expr, "").Crontab()
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Crontab(%q) = %q, %v; want error %q", tt.expr, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Crontab(%q) = %q, %v; want %q", tt.expr, got, err, tt.want)
		}
	}
}

func TestOnCalendar(t *testing.T) {
	tests := []struct {
		expr, tz string
		want     []string
	}{
		{"30 2 * * *", "Europe/Berlin", []string{"*-*-* 02:30:00 Europe/Berlin"}},
		{"0 */6 * * *", "", []string{"*-*-* 00,06,12,18:00:00 UTC"}},
		{"@weekly", "", []string{"Sun *-*-* 00:00:00 UTC"}},
		{"0 3 1 1,7 *", "", []string{"*-01,07-01 03:00:00 UTC"}},
		{"0 9 1 * MON", "", []string{"*-*-01 09:00:00 UTC", "Mon *-*-* 09:00:00 UTC"}},
		{"every 6h", "", []string{"*-*-* 00/6:00:00 UTC"}},
		{"every 15m", "", []string{"*-*-* *:00/15:00 UTC"}},
		{"every 20s", "", []string{"*-*-* *:*:00/20 UTC"}},
	}
	for _, tt := range tests {
		got, err := mustParse(t, tt.expr, tt.tz).OnCalendar()
		if err != nil || strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("OnCalendar(%q) = %q, %v; want %q", tt.expr, got, err, tt.want)
		}
	}
	if _, err := mustParse(t, "every 7h", "").OnCalendar(); err == nil {
		t.Error("OnCalendar(every 7h) succeeded")
	}
}
