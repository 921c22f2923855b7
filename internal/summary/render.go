package summary

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/lifeboat-backup/lifeboat/internal/config"
)

//go:embed summary.html.tmpl
var htmlSource string

// view is the summary with every value already formatted, shared by the
// text and HTML renderings so they cannot drift apart.
type view struct {
	Title    string
	Counts   string
	Sources  []sourceRow
	Failures []failureRow
	Drills   []drillRow
	Storages []storageRow
	Problems []string
}

type sourceRow struct {
	Name, Status, Backups, Size, Change, Newest string
	Bad, Idle                                   bool
}

type failureRow struct{ When, Source, What string }

type drillRow struct {
	Source, Result, When, Detail string
	Bad                          bool
}

type storageRow struct {
	Name, Backups, Used, Free, Error string
}

// Subject is a one-line title for the summary, for an email subject.
func (s *Summary) Subject() string {
	t := "daily summary"
	if s.Host != "" {
		t += " from " + s.Host
	}
	return t + ": " + s.counts()
}

func (s *Summary) counts() string {
	if len(s.Sources) == 0 {
		return "no sources"
	}
	var parts []string
	for _, st := range []Status{OK, Failed, Overdue, Suspect, Idle, Never} {
		if n := s.Count(st); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, st))
		}
	}
	noun := "sources"
	if len(s.Sources) == 1 {
		noun = "source"
	}
	return fmt.Sprintf("%d %s: %s", len(s.Sources), noun, strings.Join(parts, ", "))
}

func (s *Summary) view() view {
	loc := s.Location
	if loc == nil {
		loc = time.UTC
	}
	at := func(t time.Time) string { return t.In(loc).Format("2006-01-02 15:04 MST") }
	v := view{Counts: s.counts(), Problems: s.Problems}
	v.Title = "Lifeboat summary"
	if s.Host != "" {
		v.Title += ", " + s.Host
	}
	v.Title += fmt.Sprintf(": the %s up to %s", period(s.Until.Sub(s.From)), at(s.Until))
	for i := range s.Sources {
		src := &s.Sources[i]
		row := sourceRow{Name: src.Name, Status: string(src.Status), Backups: fmt.Sprint(src.Backups),
			Size: "-", Change: "-", Newest: "never"}
		if !src.Configured {
			row.Name += " (not in config)"
		}
		if src.Status != OK && src.Status != Idle {
			row.Status = strings.ToUpper(row.Status)
			row.Bad = true
		}
		row.Idle = src.Status == Idle
		if src.Size > 0 {
			row.Size = Bytes(src.Size)
			row.Change = change(src.Size, src.PrevSize)
		}
		if src.Newest != nil {
			row.Newest = at(src.Newest.Finished) + " (" + Age(s.Age(src)) + " ago"
			if src.RPO > 0 {
				row.Newest += ", RPO " + Span(src.RPO)
			}
			row.Newest += ")"
		} else if src.RPO > 0 {
			row.Newest += " (RPO " + Span(src.RPO) + ")"
		}
		v.Sources = append(v.Sources, row)

		d := drillRow{Source: src.Name, Result: "none", When: "-", Detail: "never drilled"}
		if dr := src.Drill; dr != nil {
			d.When = at(dr.Finished)
			d.Result, d.Detail = "ok", "restored in "+exact(dr.RTO)
			if dr.RTOTarget > 0 {
				d.Detail += " (RTO " + exact(dr.RTOTarget) + ")"
			}
			if dr.OverTarget {
				d.Result, d.Bad = "SLOW", true
				d.Detail += ": slower than the RTO"
			}
			if !dr.OK {
				d.Result, d.Bad = "FAILED", true
				d.Detail = firstLine(dr.Error)
			}
		}
		v.Drills = append(v.Drills, d)
	}
	for _, f := range s.Failures {
		v.Failures = append(v.Failures, failureRow{When: at(f.When), Source: f.Source, What: string(f.Kind) + ": " + f.Error})
	}
	for _, st := range s.Storages {
		row := storageRow{Name: st.Name, Backups: fmt.Sprintf("%d backups", st.Backups), Used: "? used", Free: "free space unknown"}
		if st.Used >= 0 {
			row.Used = Bytes(st.Used) + " used"
		}
		if st.Free >= 0 {
			row.Free = Bytes(st.Free) + " free"
		}
		row.Error = st.Error
		v.Storages = append(v.Storages, row)
	}
	return v
}

// Text renders the summary as plain text.
func (s *Summary) Text() string {
	v := s.view()
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\n%s\n", v.Title, v.Counts)
	if len(v.Sources) > 0 {
		b.WriteString("\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SOURCE\tSTATUS\tBACKUPS\tSIZE\tCHANGE\tNEWEST GOOD BACKUP")
		for _, r := range v.Sources {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Status, r.Backups, r.Size, r.Change, r.Newest)
		}
		_ = tw.Flush()
	}
	if len(v.Failures) > 0 {
		b.WriteString("\nFailures:\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, f := range v.Failures {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", f.When, f.Source, f.What)
		}
		_ = tw.Flush()
	}
	if len(v.Drills) > 0 {
		b.WriteString("\nDrills:\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, d := range v.Drills {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", d.Source, d.Result, d.When, d.Detail)
		}
		_ = tw.Flush()
	}
	if len(v.Storages) > 0 {
		b.WriteString("\nStorages:\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, st := range v.Storages {
			if st.Error != "" {
				fmt.Fprintf(tw, "  %s\tUNREADABLE: %s\n", st.Name, st.Error)
				continue
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", st.Name, st.Backups, st.Used, st.Free)
		}
		_ = tw.Flush()
	}
	if len(v.Problems) > 0 {
		b.WriteString("\nProblems:\n")
		for _, p := range v.Problems {
			fmt.Fprintf(&b, "  %s\n", p)
		}
	}
	// tabwriter pads the last column's neighbours; trailing spaces only make
	// diffs noisy.
	lines := strings.Split(b.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

// HTML renders the summary as an HTML document (for email: inline styles,
// no scripts, no external resources). Every value is escaped.
func (s *Summary) HTML() (string, error) {
	t, err := template.New("summary").Parse(htmlSource)
	if err != nil {
		return "", fmt.Errorf("parse summary template: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, s.view()); err != nil {
		return "", fmt.Errorf("render summary: %w", err)
	}
	return b.String(), nil
}

// Bytes prints a byte count the way people read it ("12 MB").
func Bytes(n int64) string {
	if n < 0 {
		return "?"
	}
	return humanize.Bytes(uint64(n))
}

// Age prints a duration rounded for people: seconds under a minute, minutes
// under an hour, then hours and days ("45s", "12m", "5h10m", "2d5h").
func Age(d time.Duration) string {
	switch {
	case d < 0:
		return "?"
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Round(time.Minute)/time.Minute))
	case d < 24*time.Hour:
		d = d.Round(time.Minute)
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	}
	return config.FormatDuration(d.Round(time.Hour))
}

// Span prints a configured or measured duration exactly but short: days
// for whole hours of a day or more ("1d", "1d12h"), else to the second
// without zero units ("1h", "90m" as "1h30m", "1m3s").
func Span(d time.Duration) string {
	if d >= 24*time.Hour && d%time.Hour == 0 {
		return config.FormatDuration(d)
	}
	return exact(d)
}

// exact prints a measured duration to the second ("1m3s", "15m", "2h").
func exact(d time.Duration) string {
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// period prints the summary's length: hours up to three days ("24h"), then
// days ("7d").
func period(d time.Duration) string {
	if d <= 72*time.Hour && d%time.Hour == 0 {
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return config.FormatDuration(d)
}

// change prints the relative change from prev to cur.
func change(cur, prev int64) string {
	if prev <= 0 {
		return "new"
	}
	pct := float64(cur-prev) / float64(prev) * 100
	if pct > -0.05 && pct < 0.05 {
		return "±0%"
	}
	return fmt.Sprintf("%+.1f%%", pct)
}
