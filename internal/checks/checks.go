// Package checks evaluates a new backup against the previous committed backup
// of the same source, at backup time.
//
// # Checks
//
//   - min_size: the dump (plaintext, before compression and encryption) is at
//     least this big. An empty or truncated dump is usually tiny.
//   - max_shrink: neither the plaintext nor the stored size fell by more than
//     this percentage since the previous backup.
//   - max_growth: neither grew by more than this percentage (300% allows up
//     to four times the previous size).
//   - max_row_drop: no table lost more than this percentage of its rows since
//     the previous manifest's row counts. A table that disappeared counts as
//     a 100% drop.
//
// A zero threshold turns its check off. Comparisons are skipped when there is
// no previous backup, or when the previous one did not record the value.
//
// A failed check makes the backup suspect: it is still committed and kept (it
// may be the only copy), but the run fails with the check's detail.
package checks

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/config"
)

// Check names, as recorded in manifests.
const (
	MinSize    = "min_size"
	MaxShrink  = "max_shrink"
	MaxGrowth  = "max_growth"
	MaxRowDrop = "max_row_drop"
)

// Evaluate runs the configured checks on cur against prev, the previous
// committed backup of the same source and part (nil when there is none). It
// returns every check that ran, passed or not, in a stable order; nil when c
// is nil. It reads only cur's and prev's sizes and row counts.
func Evaluate(c *config.Checks, cur, prev *catalog.Manifest) []catalog.Check {
	if c == nil || cur == nil {
		return nil
	}
	var out []catalog.Check
	if c.MinSize > 0 {
		limit := int64(c.MinSize)
		out = append(out, catalog.Check{
			Name:   MinSize,
			OK:     cur.PlainSize >= limit,
			Detail: fmt.Sprintf("dump is %s, minimum %s", Bytes(cur.PlainSize), Bytes(limit)),
		})
	}
	if prev == nil {
		return out
	}
	if c.MaxShrink > 0 {
		out = append(out, sizeCheck(MaxShrink, float64(c.MaxShrink), cur, prev, func(change, limit float64) bool { return change >= -limit-epsilon }))
	}
	if c.MaxGrowth > 0 {
		out = append(out, sizeCheck(MaxGrowth, float64(c.MaxGrowth), cur, prev, func(change, limit float64) bool { return change <= limit+epsilon }))
	}
	if c.MaxRowDrop > 0 && len(prev.RowCounts) > 0 {
		out = append(out, rowDrops(float64(c.MaxRowDrop), cur.RowCounts, prev.RowCounts)...)
	}
	return out
}

// Failed returns the checks that did not pass.
func Failed(cs []catalog.Check) []catalog.Check {
	var out []catalog.Check
	for _, c := range cs {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// Summary joins the failed checks' details into one line for an error
// message ("max_shrink: stored size 10.0 MB -> 5.0 MB (-50%), limit -20%");
// empty when all passed.
func Summary(cs []catalog.Check) string {
	var parts []string
	for _, c := range Failed(cs) {
		parts = append(parts, c.Name+": "+c.Detail)
	}
	return strings.Join(parts, "; ")
}

// sizeCheck compares the plaintext and stored sizes; the check fails if
// either change is outside the limit. The detail names the size that failed,
// or both sizes when all is well.
func sizeCheck(name string, limit float64, cur, prev *catalog.Manifest, ok func(change, limit float64) bool) catalog.Check {
	type size struct {
		what      string
		cur, prev int64
	}
	sizes := []size{{"dump size", cur.PlainSize, prev.PlainSize}, {"stored size", cur.StoredSize, prev.StoredSize}}
	sign := "+"
	if name == MaxShrink {
		sign = "-"
	}
	var good, bad []string
	for _, s := range sizes {
		if s.prev <= 0 {
			continue
		}
		change := percent(s.cur, s.prev)
		d := fmt.Sprintf("%s %s -> %s (%s)", s.what, Bytes(s.prev), Bytes(s.cur), Percent(change))
		if ok(change, limit) {
			good = append(good, d)
		} else {
			bad = append(bad, d)
		}
	}
	if len(bad) > 0 {
		return catalog.Check{Name: name, Detail: fmt.Sprintf("%s, limit %s%s", strings.Join(bad, ", "), sign, trimFloat(limit)+"%")}
	}
	if len(good) == 0 {
		return catalog.Check{Name: name, OK: true, Detail: "previous backup recorded no size"}
	}
	return catalog.Check{Name: name, OK: true, Detail: fmt.Sprintf("%s, limit %s%s", strings.Join(good, ", "), sign, trimFloat(limit)+"%")}
}

// rowDrops returns one failed check per table that lost more than limit
// percent of its rows, or one passed check when none did.
func rowDrops(limit float64, cur, prev map[string]int64) []catalog.Check {
	tables := make([]string, 0, len(prev))
	for t := range prev {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	var out []catalog.Check
	compared := 0
	for _, t := range tables {
		p := prev[t]
		if p <= 0 {
			continue
		}
		compared++
		n, present := cur[t]
		if !present {
			out = append(out, catalog.Check{Name: MaxRowDrop,
				Detail: fmt.Sprintf("table %s: missing (had %d rows), limit -%s%%", t, p, trimFloat(limit))})
			continue
		}
		change := percent(n, p)
		if change < -limit-epsilon {
			out = append(out, catalog.Check{Name: MaxRowDrop,
				Detail: fmt.Sprintf("table %s: %d -> %d rows (%s), limit -%s%%", t, p, n, Percent(change), trimFloat(limit))})
		}
	}
	if len(out) > 0 {
		return out
	}
	return []catalog.Check{{Name: MaxRowDrop, OK: true,
		Detail: fmt.Sprintf("%d tables compared, none lost more than %s%% of its rows", compared, trimFloat(limit))}}
}

// epsilon absorbs float rounding, so that a change of exactly the limit passes.
const epsilon = 1e-9

// percent is the change from prev to cur in percent of prev.
func percent(cur, prev int64) float64 {
	return (float64(cur) - float64(prev)) / float64(prev) * 100
}

// Percent formats a change: "+12%", "-60%", "-0.5%".
func Percent(p float64) string {
	s := trimFloat(math.Abs(p))
	if p < 0 {
		return "-" + s + "%"
	}
	return "+" + s + "%"
}

func trimFloat(f float64) string {
	if f >= 10 || f == math.Trunc(f) {
		return fmt.Sprintf("%.0f", math.Round(f))
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.1f", f), "0"), ".")
}

// Bytes formats a size in decimal units ("1.5 MB", "512 B").
func Bytes(n int64) string {
	const unit = 1000
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"kB", "MB", "GB", "TB", "PB"} {
		f /= unit
		if math.Abs(f) < unit {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return fmt.Sprintf("%.1f EB", f/unit)
}
