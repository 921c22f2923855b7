// Package retention decides which backups a keep policy keeps. It is pure:
// it reads no storage and no clock.
//
// # Rules
//
// The rules mean what restic's and borg's keep rules mean:
//
//   - last N keeps the N newest backups.
//   - hourly, daily, weekly, monthly and yearly N keep, for each of the N
//     newest periods (hours, days, ISO weeks, months, years) that have a
//     backup, the newest backup in that period. Periods without a backup do
//     not count: daily 7 over a timeline with gaps reaches back beyond seven
//     calendar days. A negative N means every period.
//   - within D keeps every backup younger than D, measured back from the
//     newest backup's time (not from now, so that a source that stopped
//     backing up does not lose its history as time passes).
//   - keep_tagged rules keep backups carrying a tag: the newest Last of them
//     and those younger than Within (measured like within); a rule with
//     neither keeps every backup with the tag.
//
// Each rule is applied to the whole timeline independently; a backup is kept
// when any rule keeps it, and the decision lists every rule that did.
//
// Periods are calendar periods in the policy's time zone (UTC when none). In
// a zone with daylight saving time, the repeated hour at the end of summer
// time is one period.
//
// # Order
//
// "Newest" follows the per-source sequence number first and the backup's
// time second, so that a clock that jumped backwards does not reorder the
// timeline. Period keys come from the backup's time.
//
// # Good backups
//
// Whatever the rules say, the newest good backup is kept. A backup is good
// when its backup-time checks passed (its manifest is not suspect) and its
// newest restore drill, if it has one, passed. See [Good].
package retention

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/config"
)

// Backup is what the rules look at.
type Backup struct {
	ID       string
	Time     time.Time
	Sequence int64
	Tags     []string
	// Good marks a backup that passed its checks (see [Good]).
	Good bool
}

// Policy is one source's keep rules.
type Policy struct {
	Keep   config.Keep
	Tagged []config.TagRule
	// Location is the time zone periods are counted in; nil means UTC.
	Location *time.Location
}

// NewPolicy builds a Policy from a source's config. timezone is an IANA name
// ("Europe/Berlin"); empty means UTC.
func NewPolicy(keep *config.Keep, tagged []config.TagRule, timezone string) (Policy, error) {
	p := Policy{Tagged: tagged, Location: time.UTC}
	if keep != nil {
		p.Keep = *keep
	}
	if timezone != "" {
		loc, err := time.LoadLocation(timezone)
		if err != nil {
			return Policy{}, fmt.Errorf("load time zone %q: %w", timezone, err)
		}
		p.Location = loc
	}
	return p, nil
}

// Empty reports whether the policy has no rules at all. An empty policy
// keeps everything.
func (p Policy) Empty() bool {
	return p.Keep == (config.Keep{}) && len(p.Tagged) == 0
}

// String describes the rules: "last 3, daily 7, weekly 4, tag pre-deploy".
func (p Policy) String() string {
	if p.Empty() {
		return "no keep rules"
	}
	var parts []string
	for _, r := range p.periodRules() {
		if r.n != 0 {
			parts = append(parts, r.name+" "+count(r.n))
		}
	}
	if p.Keep.Within > 0 {
		parts = append(parts, "within "+p.Keep.Within.String())
	}
	for _, t := range p.Tagged {
		parts = append(parts, tagRuleName(t))
	}
	s := strings.Join(parts, ", ")
	if loc := p.loc(); loc != time.UTC {
		s += " (" + loc.String() + ")"
	}
	return s
}

func count(n int) string {
	if n < 0 {
		return "all"
	}
	return strconv.Itoa(n)
}

// Decision is the verdict on one backup.
type Decision struct {
	Backup
	Keep bool
	// Reasons name every rule that keeps the backup ("daily 2026-11-20",
	// "last 3", "tag pre-deploy", "newest good backup"); empty for a
	// backup to delete.
	Reasons []string
}

type periodRule struct {
	name string
	n    int
	key  func(time.Time) string
}

func (p Policy) loc() *time.Location {
	if p.Location == nil {
		return time.UTC
	}
	return p.Location
}

func (p Policy) periodRules() []periodRule {
	return []periodRule{
		{"last", p.Keep.Last, nil},
		{"hourly", p.Keep.Hourly, func(t time.Time) string { return t.Format("2006-01-02T15") }},
		{"daily", p.Keep.Daily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{"weekly", p.Keep.Weekly, func(t time.Time) string {
			y, w := t.ISOWeek()
			return fmt.Sprintf("%d-W%02d", y, w)
		}},
		{"monthly", p.Keep.Monthly, func(t time.Time) string { return t.Format("2006-01") }},
		{"yearly", p.Keep.Yearly, func(t time.Time) string { return t.Format("2006") }},
	}
}

// Newer orders backups newest first: by sequence, then time, then id.
func Newer(a, b Backup) int {
	if c := cmp.Compare(b.Sequence, a.Sequence); c != 0 {
		return c
	}
	if c := b.Time.Compare(a.Time); c != 0 {
		return c
	}
	return strings.Compare(b.ID, a.ID)
}

// Apply decides every backup's fate under p. The result is ordered newest
// first (see [Newer]) and has one decision per backup given.
func Apply(backups []Backup, p Policy) []Decision {
	ds := make([]Decision, len(backups))
	for i, b := range backups {
		ds[i] = Decision{Backup: b}
	}
	slices.SortStableFunc(ds, func(a, b Decision) int { return Newer(a.Backup, b.Backup) })
	if len(ds) == 0 {
		return ds
	}
	keep := func(i int, reason string) {
		ds[i].Keep = true
		ds[i].Reasons = append(ds[i].Reasons, reason)
	}
	if p.Empty() {
		for i := range ds {
			keep(i, "no keep rules")
		}
	}
	loc := p.loc()
	for _, r := range p.periodRules() {
		if r.n == 0 {
			continue
		}
		if r.key == nil { // last N
			for i := range ds {
				if r.n > 0 && i >= r.n {
					break
				}
				keep(i, "last "+count(r.n))
			}
			continue
		}
		seen := map[string]bool{}
		for i := range ds {
			if r.n > 0 && len(seen) >= r.n {
				break
			}
			k := r.key(ds[i].Time.In(loc))
			if seen[k] {
				continue
			}
			seen[k] = true
			keep(i, r.name+" "+k)
		}
	}
	ref := ds[0].Time // the newest backup's time
	if w := p.Keep.Within.D(); w > 0 {
		for i := range ds {
			if ref.Sub(ds[i].Time) < w {
				keep(i, "within "+p.Keep.Within.String())
			}
		}
	}
	for _, t := range p.Tagged {
		name := tagRuleName(t)
		n := 0
		for i := range ds {
			if !slices.Contains(ds[i].Tags, t.Tag) {
				continue
			}
			n++
			all := t.Last == 0 && t.Within == 0
			byLast := t.Last > 0 && n <= t.Last
			byAge := t.Within > 0 && ref.Sub(ds[i].Time) < t.Within.D()
			if all || byLast || byAge {
				keep(i, name)
			}
		}
	}
	for i := range ds {
		if ds[i].Good {
			keep(i, "newest good backup")
			break
		}
	}
	return ds
}

func tagRuleName(t config.TagRule) string {
	s := "tag " + t.Tag
	if t.Last > 0 {
		s += " last " + strconv.Itoa(t.Last)
	}
	if t.Within > 0 {
		s += " within " + t.Within.String()
	}
	return s
}

// Good reports whether a backup counts as good: its manifest is not suspect
// (every backup-time check passed) and its newest drill, when there is one,
// passed. A backup that was never drilled is good on its checks alone: most
// backups are never drilled, and retention must still protect the newest.
func Good(m *catalog.Manifest, drill *catalog.DrillReport) bool {
	if m == nil || m.Suspect {
		return false
	}
	return drill == nil || drill.OK
}
