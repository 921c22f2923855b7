package config

import (
	"fmt"
	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that also accepts days and weeks ("30d", "2w").
type Duration time.Duration

// ParseDuration parses Go durations ("90s", "6h30m") plus "d" (24h) and "w"
// (7d) suffixes, alone or in front of a Go duration ("1d12h").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var total time.Duration
	for _, u := range []struct {
		suffix string
		d      time.Duration
	}{{"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour}} {
		if i := strings.Index(s, u.suffix); i > 0 {
			n, err := strconv.Atoi(s[:i])
			if err != nil {
				return 0, fmt.Errorf("%q is not a duration such as 90s, 6h or 30d", s)
			}
			total += time.Duration(n) * u.d
			s = s[i+1:]
		}
	}
	if s == "" {
		return total, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as 90s, 6h or 30d", s)
	}
	return total + d, nil
}

func (d *Duration) UnmarshalYAML(n ast.Node) error {
	s, err := scalar(n)
	if err != nil {
		return err
	}
	v, err := ParseDuration(s)
	if err != nil {
		return positioned(n, err)
	}
	*d = Duration(v)
	return nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return FormatDuration(time.Duration(d)) }

// FormatDuration prints d briefly: "2d", "1d12h", "6h", "1h30m", "90s".
func FormatDuration(d time.Duration) string {
	if d < 0 {
		return "-" + FormatDuration(-d)
	}
	if d < time.Minute {
		return strings.TrimSuffix(d.Round(time.Millisecond).String(), "0s")
	}
	d = d.Round(time.Second)
	units := []struct {
		n    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}}
	var b strings.Builder
	for _, u := range units {
		if d >= u.n {
			fmt.Fprintf(&b, "%d%s", d/u.n, u.name)
			d %= u.n
		}
	}
	return b.String()
}

// Size is a byte count written as "1MB", "512KiB", "2GB" or a plain number.
type Size int64

// ParseSize parses decimal (kB, MB, GB, TB) and binary (KiB, MiB, GiB, TiB) units.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := len(s)
	for i > 0 && (s[i-1] < '0' || s[i-1] > '9') && s[i-1] != '.' {
		i--
	}
	num, unit := strings.TrimSpace(s[:i]), strings.ToLower(strings.TrimSpace(s[i:]))
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("%q is not a size such as 1MB or 512KiB", s)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("%q has an unknown unit %q (use B, kB, MB, GB, KiB, MiB, GiB)", s, s[i:])
	}
	return int64(f * mult), nil
}

func (z *Size) UnmarshalYAML(n ast.Node) error {
	s, err := scalar(n)
	if err != nil {
		return err
	}
	v, err := ParseSize(s)
	if err != nil {
		return positioned(n, err)
	}
	*z = Size(v)
	return nil
}

// Percent is a percentage written as "20%" (or 20). It holds 20 for "20%".
type Percent float64

func (p *Percent) UnmarshalYAML(n ast.Node) error {
	s, err := scalar(n)
	if err != nil {
		return err
	}
	f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || f < 0 {
		return positioned(n, fmt.Errorf("%q is not a percentage such as 20%%", s))
	}
	*p = Percent(f)
	return nil
}

// scalar returns the text of a scalar node, or a positioned error for a
// list or mapping.
func scalar(n ast.Node) (string, error) {
	switch n.Type() {
	case ast.MappingType, ast.SequenceType:
		return "", positioned(n, fmt.Errorf("expected a single value, got a %s", strings.ToLower(strings.TrimSuffix(n.Type().String(), "Type"))))
	}
	var s string
	if err := yaml.NodeToValue(n, &s); err != nil {
		return strings.TrimSpace(n.String()), nil
	}
	return s, nil
}

// positioned attaches n's position to err, so the loader reports it at the
// value rather than at the enclosing section.
func positioned(n ast.Node, err error) error {
	return &yaml.SyntaxError{Message: err.Error(), Token: n.GetToken()}
}
