package schedule

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Crontab returns the schedule as a 5-field crontab(5) expression or
// descriptor, without any CRON_TZ= prefix (the zone is [Schedule.Location]).
// It fails for what classic cron cannot express: a seconds field other than 0,
// or an interval that does not divide an hour or a day evenly.
func (s *Schedule) Crontab() (string, error) {
	if s.every > 0 {
		d := s.every
		switch {
		case d%time.Minute == 0 && time.Hour%d == 0 && d < time.Hour:
			return fmt.Sprintf("*/%d * * * *", d/time.Minute), nil
		case d == time.Hour:
			return "0 * * * *", nil
		case d%time.Hour == 0 && (24*time.Hour)%d == 0 && d < 24*time.Hour:
			return fmt.Sprintf("0 */%d * * *", d/time.Hour), nil
		case d == 24*time.Hour:
			return "0 0 * * *", nil
		}
		return "", fmt.Errorf("schedule %q: cron cannot run at an interval of %s (use one that divides an hour or a day)", s.text, d)
	}
	if strings.HasPrefix(s.body, "@") {
		return s.body, nil
	}
	f := strings.Fields(s.body)
	if len(f) == 6 {
		if s.spec.Second != 1 {
			return "", fmt.Errorf("schedule %q: cron has no seconds field (run at second 0, or use the daemon)", s.text)
		}
		f = f[1:]
	}
	return strings.Join(f, " "), nil
}

// OnCalendar returns the schedule as systemd.time(7) calendar events, one
// value per OnCalendar= line (a schedule restricting both day of month and day
// of week needs two, because cron ORs them). An interval that does not divide
// a day evenly cannot be written as a calendar event; the caller then uses
// OnUnitActiveSec=.
func (s *Schedule) OnCalendar() ([]string, error) {
	zone := ""
	if name := s.loc.String(); name != "Local" {
		zone = " " + name
	}
	if s.every > 0 {
		d := s.every
		switch {
		case d < time.Minute && time.Minute%d == 0:
			return []string{fmt.Sprintf("*-*-* *:*:00/%d%s", d/time.Second, zone)}, nil
		case d%time.Minute == 0 && d < time.Hour && time.Hour%d == 0:
			return []string{fmt.Sprintf("*-*-* *:00/%d:00%s", d/time.Minute, zone)}, nil
		case d%time.Hour == 0 && d <= 24*time.Hour && (24*time.Hour)%d == 0:
			return []string{fmt.Sprintf("*-*-* 00/%d:00:00%s", d/time.Hour, zone)}, nil
		}
		return nil, fmt.Errorf("schedule %q: an interval of %s does not divide a day", s.text, d)
	}
	sp := s.spec
	clock := fmt.Sprintf("%s:%s:%s", list(sp.Hour, 0, 23, nil), list(sp.Minute, 0, 59, nil), list(sp.Second, 0, 59, nil))
	month := list(sp.Month, 1, 12, nil)
	days := list(sp.Dom, 1, 31, nil)
	dows := list(sp.Dow, 0, 6, []string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"})
	domStar, dowStar := sp.Dom&starBit != 0, sp.Dow&starBit != 0
	date := func(dow, dom string) string {
		v := "*-" + month + "-" + dom + " " + clock + zone
		if dow != "*" {
			v = dow + " " + v
		}
		return v
	}
	switch {
	case domStar || dowStar:
		// cron ANDs the fields when either is *; systemd always ANDs.
		return []string{date(dows, days)}, nil
	default:
		return []string{date("*", days), date(dows, "*")}, nil
	}
}

// list writes the set bits of a cron field between lo and hi as "*" or a
// comma-separated list, two digits wide unless names are given.
func list(bits uint64, lo, hi int, names []string) string {
	var vals []string
	all := true
	for i := lo; i <= hi; i++ {
		if bits&(1<<uint(i)) == 0 {
			all = false
			continue
		}
		switch {
		case names != nil:
			vals = append(vals, names[i])
		case i < 10:
			vals = append(vals, "0"+strconv.Itoa(i))
		default:
			vals = append(vals, strconv.Itoa(i))
		}
	}
	if all {
		return "*"
	}
	return strings.Join(vals, ",")
}
