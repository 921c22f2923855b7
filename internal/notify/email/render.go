package email

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/notify"
	"github.com/lifeboat-backup/lifeboat/internal/report"
	"github.com/lifeboat-backup/lifeboat/internal/summary"
)

//go:embed event.html.tmpl
var eventHTML string

// view is an event with every value formatted, shared by the text and HTML
// bodies so they say the same thing.
type view struct {
	Title    string
	Severity string // ok, warning, failure
	Fields   []field
	Error    string
	Hint     string
	Items    []item
	Warnings []string
	Footer   string
}

type field struct{ Name, Value string }

type item struct {
	Name     string // "source" or "source/part"; empty for a one-item report
	Status   string
	Error    string
	Stderr   string
	Lines    []line // storages, checks, hooks, details
	Warnings []string
}

type line struct {
	What, Result, Detail string
	Bad                  bool
}

const timeLayout = "2006-01-02 15:04:05 MST"

func stamp(t time.Time) string { return t.UTC().Format(timeLayout) }

func newView(ev notify.Event) view {
	v := view{Title: ev.Title(), Severity: ev.Kind.Severity()}
	add := func(name, value string) {
		if value != "" {
			v.Fields = append(v.Fields, field{name, value})
		}
	}
	add("Source", ev.Source)
	add("Host", ev.Host)
	if ev.Kind == notify.Overdue {
		newest := "never"
		if !ev.Newest.IsZero() {
			newest = stamp(ev.Newest) + " (" + summary.Age(ev.Finished.Sub(ev.Newest)) + " ago)"
		}
		add("Newest good backup", newest)
		add("RPO", summary.Span(ev.RPO))
		add("Checked", stamp(ev.Finished))
		v.Hint = "check that scheduled backups run (the daemon's log, or the timer or cron job), " +
			"then back the source up now with `lifeboat backup " + ev.Source + "`"
	} else {
		if ev.RunID != "" {
			add("Run", ev.RunID+" ("+string(ev.RunKind)+")")
		}
		if !ev.Started.IsZero() {
			add("Started", stamp(ev.Started))
		}
		if !ev.Finished.IsZero() {
			add("Finished", stamp(ev.Finished)+", after "+ev.Duration().Round(time.Second).String())
		}
		if ev.Bytes > 0 {
			add("Stored", summary.Bytes(ev.Bytes))
		}
		add("Location", ev.Location)
	}
	if ev.Err != nil {
		msg, hint := notify.ErrorText(ev.Err)
		v.Error = msg
		if hint != "" {
			v.Hint = hint
		}
	}
	if r := ev.Report; r != nil {
		v.Warnings = r.Warnings
		for _, it := range r.Items {
			v.Items = append(v.Items, newItem(it, len(r.Items) > 1))
		}
	}
	v.Footer = "Sent by lifeboat"
	if ev.Host != "" {
		v.Footer += " on " + ev.Host
	}
	v.Footer += " at " + stamp(ev.Finished) + "."
	if ev.Finished.IsZero() {
		v.Footer = "Sent by lifeboat."
	}
	return v
}

func newItem(it report.Item, named bool) item {
	out := item{Status: string(it.Status), Error: it.Error, Stderr: it.StderrTail, Warnings: it.Warnings}
	if named {
		out.Name = it.Source
		if it.Part != "" {
			out.Name += "/" + it.Part
		}
	}
	if it.BackupID != "" {
		size := ""
		if it.StoredSize > 0 {
			size = summary.Bytes(it.StoredSize) + " stored"
			if it.PlainSize > 0 {
				size += " (" + summary.Bytes(it.PlainSize) + " before compression)"
			}
			if it.PrevStoredSize > 0 {
				size += fmt.Sprintf(", %+.1f%% against the previous backup",
					float64(it.StoredSize-it.PrevStoredSize)/float64(it.PrevStoredSize)*100)
			}
		}
		out.Lines = append(out.Lines, line{What: "backup " + it.BackupID, Result: "", Detail: size})
	}
	for _, st := range it.Storages {
		l := line{What: "storage " + st.Storage, Result: "ok", Detail: st.Key}
		if !st.OK {
			l.Result, l.Detail, l.Bad = "FAILED", st.Error, true
		}
		out.Lines = append(out.Lines, l)
	}
	for _, c := range it.Checks {
		l := line{What: "check " + c.Name, Result: "ok", Detail: c.Detail}
		if !c.OK {
			l.Result, l.Bad = "FAILED", true
		}
		out.Lines = append(out.Lines, l)
	}
	for _, h := range it.Hooks {
		l := line{What: h.Phase + " hook", Result: "ok", Detail: h.Command}
		if h.ExitCode != 0 {
			l.Result, l.Bad = fmt.Sprintf("exit %d", h.ExitCode), true
			if h.Output != "" {
				l.Detail += ": " + lastLine(h.Output)
			}
		}
		out.Lines = append(out.Lines, l)
	}
	if it.RTOSeconds > 0 {
		out.Lines = append(out.Lines, line{What: "restore time", Detail: time.Duration(it.RTOSeconds * float64(time.Second)).Round(time.Second).String()})
	}
	for _, d := range it.Details {
		out.Lines = append(out.Lines, line{Detail: d})
	}
	return out
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// Render returns the plain text and HTML bodies for ev.
func Render(ev notify.Event) (text, html string, err error) {
	if ev.Kind == notify.Summary && ev.Summary != nil {
		h, err := ev.Summary.HTML()
		if err != nil {
			return "", "", err
		}
		return ev.Summary.Text(), h, nil
	}
	v := newView(ev)
	t, err := template.New("event").Parse(eventHTML)
	if err != nil {
		return "", "", fmt.Errorf("parse email template: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, v); err != nil {
		return "", "", fmt.Errorf("render email: %w", err)
	}
	return renderText(v), b.String(), nil
}

func renderText(v view) string {
	var b strings.Builder
	b.WriteString(v.Title + "\n\n")
	width := 0
	for _, f := range v.Fields {
		width = max(width, len(f.Name)+1)
	}
	for _, f := range v.Fields {
		fmt.Fprintf(&b, "%-*s  %s\n", width, f.Name+":", f.Value)
	}
	if v.Error != "" {
		fmt.Fprintf(&b, "\nError: %s\n", v.Error)
	}
	if v.Hint != "" {
		if v.Error == "" {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "Hint: %s\n", v.Hint)
	}
	for _, it := range v.Items {
		b.WriteString("\n")
		indent := ""
		if it.Name != "" {
			fmt.Fprintf(&b, "%s: %s\n", it.Name, it.Status)
			indent = "  "
			if it.Error != "" {
				fmt.Fprintf(&b, "%serror: %s\n", indent, it.Error)
			}
		}
		for _, l := range it.Lines {
			fmt.Fprintf(&b, "%s%s\n", indent, l.text())
		}
		if it.Stderr != "" {
			fmt.Fprintf(&b, "%sstderr (last lines):\n", indent)
			for _, l := range strings.Split(it.Stderr, "\n") {
				fmt.Fprintf(&b, "%s  %s\n", indent, l)
			}
		}
		for _, w := range it.Warnings {
			fmt.Fprintf(&b, "%swarning: %s\n", indent, w)
		}
	}
	for _, w := range v.Warnings {
		fmt.Fprintf(&b, "\nwarning: %s\n", w)
	}
	fmt.Fprintf(&b, "\n-- \n%s\n", v.Footer)
	return b.String()
}

// text is "storage local: ok (key)", "backup ID: 12 MB stored", or the
// detail alone.
func (l line) text() string {
	switch {
	case l.What == "":
		return l.Detail
	case l.Result != "" && l.Detail != "":
		return l.What + ": " + l.Result + " (" + l.Detail + ")"
	case l.Result != "":
		return l.What + ": " + l.Result
	case l.Detail != "":
		return l.What + ": " + l.Detail
	}
	return l.What
}
