package status

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/checks"
)

// WriteTable prints the report for people: one line per source (or part),
// one per storage, then the problems.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tNEWEST GOOD\tAGE / RPO\tSIZE (CHANGE)\tLAST VERIFY\tLAST DRILL\tSTATE")
	for _, s := range r.Sources {
		good, age, size := "none", "-", "-"
		if b := s.NewestGood; b != nil {
			good = b.ID + " " + b.Started.UTC().Format("2006-01-02 15:04")
			age = dur(time.Duration(s.AgeSeconds * float64(time.Second)))
			size = checks.Bytes(b.StoredSize)
			if s.ChangePercent != nil {
				size += " (" + checks.Percent(*s.ChangePercent) + ")"
			}
		}
		if s.RPOSeconds > 0 {
			age += " / " + declared(time.Duration(s.RPOSeconds*float64(time.Second)))
		}
		drill := "never"
		if d := s.LastDrill; d != nil {
			drill = "failed"
			if d.OK {
				drill = "ok"
			}
			drill += fmt.Sprintf(" %s, RTO %s", d.When.UTC().Format("2006-01-02"), dur(time.Duration(d.RTOSeconds*float64(time.Second))))
			if d.RTOExceeded {
				drill += " (over rto)"
			}
		}
		verify := "never"
		if v := s.LastVerify; v != nil {
			verify = "FAILED"
			if v.OK {
				verify = "ok"
			}
			verify += " " + v.When.UTC().Format("2006-01-02")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name(), good, age, size, verify, drill, state(s))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Storages) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "STORAGE\tUSED\tFREE")
		for _, s := range r.Storages {
			line := fmt.Sprintf("%s\t%s\t%s", s.Name, amount(s.Used), amount(s.Free))
			if s.Error != "" {
				line += "\t(" + s.Error + ")"
			}
			fmt.Fprintln(tw, line)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if ps := r.Problems(); len(ps) > 0 {
		fmt.Fprintln(w)
		for _, p := range ps {
			fmt.Fprintln(w, "PROBLEM: "+p)
		}
	}
	return nil
}

func state(s SourceStatus) string {
	var st []string
	if s.Overdue {
		st = append(st, "OVERDUE")
	}
	if s.Suspect {
		st = append(st, "SUSPECT")
	}
	if s.LastDrill != nil && !s.LastDrill.OK {
		st = append(st, "DRILL FAILED")
	}
	if len(st) == 0 {
		if len(s.Problems) > 0 {
			return "PROBLEM"
		}
		return "ok"
	}
	return strings.Join(st, ", ")
}

func amount(n int64) string {
	if n < 0 {
		return "unknown"
	}
	return checks.Bytes(n)
}
