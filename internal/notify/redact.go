package notify

import (
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/report"
	"github.com/lifeboat-backup/lifeboat/internal/summary"
)

// Redacted replaces a secret in notification text.
const Redacted = "[redacted]"

// minSecretLen is the shortest secret value replaced in text: replacing
// "1" or "abc" everywhere would mangle messages and protect nothing.
const minSecretLen = 6

var (
	// scheme://user:password@ in DSNs and URLs that a tool echoed.
	urlPasswordRE = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*):[^/\s@]+@`)
	// key=value pairs whose key says they are secret (libpq DSNs, queries).
	kvSecretRE = regexp.MustCompile(`(?i)\b(password|passwd|pwd|secret|token|api_?key|access_?key|secret_?key|sig|signature)=("[^"]*"|'[^']*'|[^&\s]+)`)
)

// Redactor removes secrets from text bound for people.
type Redactor struct {
	secrets []string // longest first, so a secret containing another goes whole
}

// NewRedactor collects every resolved [config.Secret] of cfg (storages,
// sources, their drills, notifiers). A nil cfg gives a redactor that only
// masks URL passwords and secret-looking key=value pairs.
func NewRedactor(cfg *config.Config) *Redactor {
	r := &Redactor{}
	if cfg == nil {
		return r
	}
	seen := map[string]bool{}
	add := func(v any) {
		collectSecrets(reflect.ValueOf(v), func(s string) {
			if len(s) >= minSecretLen && !seen[s] {
				seen[s] = true
				r.secrets = append(r.secrets, s)
			}
		})
	}
	for _, s := range cfg.Storages {
		add(s.Spec)
	}
	for _, s := range cfg.Sources {
		add(s.Spec)
		add(s.Drill)
	}
	for _, n := range cfg.Notifiers {
		add(n.Spec)
	}
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
	return r
}

var secretType = reflect.TypeFor[config.Secret]()

func collectSecrets(v reflect.Value, fn func(string)) {
	for v.IsValid() && (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	if !v.IsValid() {
		return
	}
	switch {
	case v.Type() == secretType:
		fn(v.Interface().(config.Secret).Reveal())
	case v.Kind() == reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				collectSecrets(v.Field(i), fn)
			}
		}
	case v.Kind() == reflect.Slice || v.Kind() == reflect.Array:
		for i := 0; i < v.Len(); i++ {
			collectSecrets(v.Index(i), fn)
		}
	case v.Kind() == reflect.Map:
		for it := v.MapRange(); it.Next(); {
			collectSecrets(it.Value(), fn)
		}
	}
}

// String returns s with every known secret replaced by [Redacted] and
// passwords in URLs and key=value pairs masked.
func (r *Redactor) String(s string) string {
	if s == "" {
		return s
	}
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, Redacted)
	}
	s = urlPasswordRE.ReplaceAllString(s, "${1}:xxxxx@")
	return kvSecretRE.ReplaceAllString(s, "${1}=xxxxx")
}

func (r *Redactor) strings(ss []string) []string {
	if ss == nil {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = r.String(s)
	}
	return out
}

// Event returns a copy of ev whose texts are redacted. The report and
// summary are copied, never modified in place: the caller still owns them.
func (r *Redactor) Event(ev Event) Event {
	if ev.Err != nil {
		msg, hint := ErrorText(ev.Err)
		ev.Err = &hintError{msg: r.String(msg), hint: r.String(hint)}
	}
	ev.Location = r.String(ev.Location)
	if ev.Report != nil {
		ev.Report = r.run(ev.Report)
	}
	if ev.Summary != nil {
		ev.Summary = r.summary(ev.Summary)
	}
	return ev
}

func (r *Redactor) run(in *report.Run) *report.Run {
	run := *in
	run.Warnings = r.strings(in.Warnings)
	run.Items = make([]report.Item, len(in.Items))
	for i, it := range in.Items {
		it.Error = r.String(it.Error)
		it.StderrTail = r.String(it.StderrTail)
		it.Warnings = r.strings(it.Warnings)
		it.Details = r.strings(it.Details)
		it.Artifact = r.String(it.Artifact)
		if it.Storages != nil {
			sts := make([]report.StorageResult, len(it.Storages))
			for j, st := range it.Storages {
				st.Error = r.String(st.Error)
				sts[j] = st
			}
			it.Storages = sts
		}
		if it.Checks != nil {
			it.Checks = slices.Clone(it.Checks)
			for j := range it.Checks {
				it.Checks[j].Detail = r.String(it.Checks[j].Detail)
			}
		}
		if it.Hooks != nil {
			it.Hooks = slices.Clone(it.Hooks)
			for j := range it.Hooks {
				it.Hooks[j].Command = r.String(it.Hooks[j].Command)
				it.Hooks[j].Output = r.String(it.Hooks[j].Output)
			}
		}
		run.Items[i] = it
	}
	return &run
}

func (r *Redactor) summary(in *summary.Summary) *summary.Summary {
	s := *in
	s.Problems = r.strings(in.Problems)
	if in.Failures != nil {
		s.Failures = slices.Clone(in.Failures)
		for i := range s.Failures {
			s.Failures[i].Error = r.String(s.Failures[i].Error)
		}
	}
	if in.Storages != nil {
		s.Storages = slices.Clone(in.Storages)
		for i := range s.Storages {
			s.Storages[i].Error = r.String(s.Storages[i].Error)
		}
	}
	if in.Sources != nil {
		s.Sources = slices.Clone(in.Sources)
		for i := range s.Sources {
			if d := s.Sources[i].Drill; d != nil {
				dc := *d
				dc.Error = r.String(dc.Error)
				s.Sources[i].Drill = &dc
			}
		}
	}
	return &s
}
