package schedule

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/lifeboat-backup/lifeboat/internal/config"
)

// Schedule is a parsed schedule. The zero value is not usable; use [Parse].
type Schedule struct {
	text  string // as written
	body  string // without a CRON_TZ= prefix
	loc   *time.Location
	every time.Duration // > 0 for "every D"
	spec  *cron.SpecSchedule
}

const (
	// starBit marks a day-of-month or day-of-week field written as * or ?
	// (robfig/cron's convention), which switches day matching from OR to AND.
	starBit = 1 << 63
	// searchDays bounds the search for the next or previous run: nine years
	// cover February 29 across a skipped leap year (2096 -> 2104).
	searchDays = 9 * 366
)

var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

const exampleHint = `for example "30 2 * * *", "0 0 */6 * * *" (with seconds), "@daily" or "every 6h"`

// Parse parses expr in timezone (an IANA name; empty means local, or the
// expression's own CRON_TZ= prefix). Errors are *config.FieldError values
// whose Field is "schedule" or "timezone", so the caller can prefix the
// YAML path ("sources.db." + fe.Field) and point at the right key.
func Parse(expr, timezone string, local *time.Location) (*Schedule, error) {
	text := strings.TrimSpace(expr)
	if text == "" {
		return nil, config.Errorf("schedule", exampleHint, "schedule is empty")
	}
	loc := local
	if loc == nil {
		loc = time.UTC
	}
	if timezone != "" {
		l, err := time.LoadLocation(timezone)
		if err != nil {
			return nil, config.Errorf("timezone", "use an IANA zone name such as Europe/Berlin, America/New_York or UTC",
				"unknown time zone %q", timezone)
		}
		loc = l
	}
	body := text
	if strings.HasPrefix(body, "CRON_TZ=") || strings.HasPrefix(body, "TZ=") {
		_, rest, _ := strings.Cut(body, "=")
		name := rest
		body = ""
		if i := strings.IndexAny(rest, " \t"); i >= 0 {
			name, body = rest[:i], strings.TrimSpace(rest[i:])
		}
		if body == "" {
			return nil, config.Errorf("schedule", exampleHint, "schedule %q has a time zone but no times", text)
		}
		l, err := time.LoadLocation(name)
		if err != nil || name == "" {
			return nil, config.Errorf("schedule", "use an IANA zone name such as Europe/Berlin or UTC",
				"unknown time zone %q in schedule %q", name, text)
		}
		if timezone != "" && l.String() != loc.String() {
			return nil, config.Errorf("schedule", "keep the zone in one place: remove CRON_TZ= or the timezone key",
				"schedule says CRON_TZ=%s but timezone is %q", name, timezone)
		}
		loc = l
	}
	s := &Schedule{text: text, body: body, loc: loc}

	if d, ok, err := parseEvery(body); ok {
		if err != nil {
			return nil, config.Errorf("schedule", `for example "every 6h", "every 90m" or "every 1d"`, "schedule %q: %v", text, err)
		}
		s.every, s.loc = d, time.UTC
		return s, nil
	}
	sch, err := parser.Parse(body)
	if err != nil {
		return nil, config.Errorf("schedule", exampleHint, "schedule %q is not valid: %v", text, err)
	}
	spec, ok := sch.(*cron.SpecSchedule)
	if !ok {
		return nil, config.Errorf("schedule", exampleHint, "schedule %q is not valid", text)
	}
	s.spec = spec
	if s.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, config.Errorf("schedule", "check the day-of-month and month fields (February has no 30th)",
			"schedule %q never runs", text)
	}
	return s, nil
}

// parseEvery recognises "every D" and "@every D". ok is false for anything
// else; err is set when it is an interval but D is bad.
func parseEvery(body string) (time.Duration, bool, error) {
	lower := strings.ToLower(body)
	var rest string
	switch {
	case strings.HasPrefix(lower, "every "):
		rest = body[len("every "):]
	case strings.HasPrefix(lower, "@every "):
		rest = body[len("@every "):]
	case lower == "every" || lower == "@every":
		return 0, true, fmt.Errorf("missing interval")
	default:
		return 0, false, nil
	}
	d, err := config.ParseDuration(rest)
	if err != nil {
		return 0, true, err
	}
	if d < time.Second {
		return 0, true, fmt.Errorf("interval %s is shorter than a second", d)
	}
	if d%time.Second != 0 {
		return 0, true, fmt.Errorf("interval %s is not a whole number of seconds", d)
	}
	return d, true, nil
}

// String returns the schedule as written.
func (s *Schedule) String() string { return s.text }

// Location is the zone the schedule's wall-clock times are in (UTC for
// intervals).
func (s *Schedule) Location() *time.Location { return s.loc }

// Every returns the interval of an "every D" schedule, or 0 for cron.
func (s *Schedule) Every() time.Duration { return s.every }

// Next returns the first run strictly after after, in the schedule's zone,
// or the zero time if there is none within nine years.
func (s *Schedule) Next(after time.Time) time.Time {
	if s.every > 0 {
		k := floorDiv(after.UnixNano(), int64(s.every)) + 1
		return time.Unix(0, k*int64(s.every)).In(s.loc)
	}
	a := after.In(s.loc)
	day := civil(a)
	for i := 0; i < searchDays; i, day = i+1, day.AddDate(0, 0, 1) {
		if !s.dayMatches(day) {
			continue
		}
		h0 := 0
		if i == 0 {
			// Wall times map to instants in non-decreasing order under the
			// DST policy, so hours before after's own cannot come after it.
			h0 = a.Hour()
		}
		for h := h0; h < 24; h++ {
			if s.spec.Hour&(1<<uint(h)) == 0 {
				continue
			}
			for m := 0; m < 60; m++ {
				if s.spec.Minute&(1<<uint(m)) == 0 {
					continue
				}
				for sec := 0; sec < 60; sec++ {
					if s.spec.Second&(1<<uint(sec)) == 0 {
						continue
					}
					if t := resolve(day, h, m, sec, s.loc); t.After(after) {
						return t
					}
				}
			}
		}
	}
	return time.Time{}
}

// Prev returns the latest run at or before at, or the zero time if there is
// none within nine years. The daemon compares it with the last run it
// recorded to detect runs missed while it was down.
func (s *Schedule) Prev(at time.Time) time.Time {
	if s.every > 0 {
		k := floorDiv(at.UnixNano(), int64(s.every))
		return time.Unix(0, k*int64(s.every)).In(s.loc)
	}
	a := at.In(s.loc)
	day := civil(a)
	for i := 0; i < searchDays; i, day = i+1, day.AddDate(0, 0, -1) {
		if !s.dayMatches(day) {
			continue
		}
		h0 := 23
		if i == 0 {
			// On a fall-back day a later wall time can map to an earlier
			// instant than at's own (first occurrence), by at most the
			// size of the shift; no zone shifts by more than two hours.
			h0 = min(23, a.Hour()+3)
		}
		for h := h0; h >= 0; h-- {
			if s.spec.Hour&(1<<uint(h)) == 0 {
				continue
			}
			for m := 59; m >= 0; m-- {
				if s.spec.Minute&(1<<uint(m)) == 0 {
					continue
				}
				for sec := 59; sec >= 0; sec-- {
					if s.spec.Second&(1<<uint(sec)) == 0 {
						continue
					}
					if t := resolve(day, h, m, sec, s.loc); !t.After(at) {
						return t
					}
				}
			}
		}
	}
	return time.Time{}
}

// dayMatches applies the month, day-of-month and day-of-week fields to a
// civil date (noon UTC).
func (s *Schedule) dayMatches(day time.Time) bool {
	if s.spec.Month&(1<<uint(day.Month())) == 0 {
		return false
	}
	dom := s.spec.Dom&(1<<uint(day.Day())) != 0
	dow := s.spec.Dow&(1<<uint(day.Weekday())) != 0
	if s.spec.Dom&starBit != 0 || s.spec.Dow&starBit != 0 {
		return dom && dow
	}
	return dom || dow
}

// civil returns t's calendar date as noon UTC, so that adding days is plain
// calendar arithmetic untouched by DST.
func civil(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 12, 0, 0, 0, time.UTC)
}

// resolve turns a wall-clock time on a civil date into an instant under the
// package's DST policy: a time that occurs twice resolves to its first
// occurrence; a time skipped by a forward shift resolves to the first instant
// after the gap.
func resolve(day time.Time, h, m, sec int, loc *time.Location) time.Time {
	y, mo, d := day.Date()
	want := time.Date(y, mo, d, h, m, sec, 0, time.UTC)
	t := time.Date(y, mo, d, h, m, sec, 0, loc)
	if naive(t).Equal(want) {
		start, _ := t.ZoneBounds()
		if !start.IsZero() {
			_, off := t.Zone()
			_, prevOff := start.Add(-time.Nanosecond).Zone()
			if prevOff > off {
				// The clocks went back at start: the same wall time may
				// have happened before, in the previous offset.
				earlier := t.Add(-time.Duration(prevOff-off) * time.Second)
				if earlier.Before(start) && naive(earlier).Equal(want) {
					return earlier
				}
			}
		}
		return t
	}
	// The wall time does not exist; time.Date normalised it to one side of
	// the gap. The gap lies at the boundary of t's zone period.
	start, end := t.ZoneBounds()
	if naive(t).Before(want) {
		return end
	}
	return start
}

// naive returns t's wall clock reading as if it were UTC.
func naive(t time.Time) time.Time {
	y, mo, d := t.Date()
	return time.Date(y, mo, d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// Jitter returns a random delay in [0, max) drawn from rnd, or 0 when max is
// not positive. rnd is not safe for concurrent use; the caller serialises.
func Jitter(max time.Duration, rnd *rand.Rand) time.Duration {
	if max <= 0 {
		return 0
	}
	return time.Duration(rnd.Int64N(int64(max)))
}
