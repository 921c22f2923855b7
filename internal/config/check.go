package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

var compressionRE = regexp.MustCompile(`^(none|zstd(:([1-9]|1[0-9]|2[0-2]))?)$`)

// check runs the cross-reference checks and resolves secrets.
func (cfg *Config) check(c *collector, env Env) {
	at := func(path, hint, format string, args ...any) {
		c.ps = append(c.ps, Problem{Pos: cfg.Pos(path), Msg: fmt.Sprintf(format, args...), Hint: hint})
	}
	if len(cfg.Encryption.Recipients) == 0 && cfg.Encryption.RecipientsFile == "" {
		at("encryption", "run `lifeboat init` to make a key pair, or add an age public key (age1...) under encryption.recipients",
			"encryption.recipients is empty: backups are always encrypted")
	}
	for _, name := range cfg.StorageNames {
		resolveSecrets(cfg, c, env, "storages."+name, cfg.Storages[name].Spec)
	}
	for _, name := range cfg.NotifierNames {
		resolveSecrets(cfg, c, env, "notifiers."+name, cfg.Notifiers[name].Spec)
	}
	if cfg.Summary != nil {
		for i, n := range cfg.Summary.To {
			if _, ok := cfg.Notifiers[n]; !ok {
				at(fmt.Sprintf("summary.to[%d]", i), "define it under notifiers:, or fix the name", "summary.to: unknown notifier %q", n)
			}
		}
	}
	for i, s := range cfg.Defaults.Storages {
		if _, ok := cfg.Storages[s]; !ok {
			at(fmt.Sprintf("defaults.storages[%d]", i), cfg.storageHint(), "defaults.storages: unknown storage %q", s)
		}
	}
	for _, name := range cfg.SourceNames {
		src := cfg.Sources[name]
		base := "sources." + name
		resolveSecrets(cfg, c, env, base, src.Spec)
		if src.Drill != nil {
			resolveSecrets(cfg, c, env, base+".drill", src.Drill)
		}
		if len(src.Storages) == 0 {
			c.ps = append(c.ps, Problem{Pos: src.Pos, Msg: fmt.Sprintf("source %q has no storages: add `storages: [NAME]` to it or to defaults", name), Hint: cfg.storageHint()})
		}
		for i, s := range src.Storages {
			if _, ok := cfg.Storages[s]; !ok {
				// The source's own list or the defaults'; point at whichever exists.
				p := fmt.Sprintf("%s.storages[%d]", base, i)
				if cfg.Pos(p).Line == 0 {
					continue // reported under defaults
				}
				at(p, cfg.storageHint(), "source %q: unknown storage %q", name, s)
			}
		}
		if src.Compression != "" && !compressionRE.MatchString(src.Compression) {
			at(base+".compression", "use zstd, zstd:LEVEL with LEVEL 1-22, or none", "source %q: unknown compression %q", name, src.Compression)
		}
		for i, n := range src.Notify {
			if _, ok := cfg.Notifiers[n]; !ok {
				p := fmt.Sprintf("%s.notify[%d]", base, i)
				if cfg.Pos(p).Line == 0 {
					p = fmt.Sprintf("defaults.notify[%d]", i)
				}
				at(p, "define it under notifiers:, or fix the name", "source %q: unknown notifier %q", name, n)
			}
		}
		for i, t := range src.Tags {
			if !nameRE.MatchString(t) {
				at(fmt.Sprintf("%s.tags[%d]", base, i), "use lowercase letters, digits, - and _", "tag %q is not allowed", t)
			}
		}
	}
}

func (cfg *Config) storageHint() string {
	if len(cfg.StorageNames) == 0 {
		return "define one under storages:"
	}
	return "defined storages: " + strings.Join(cfg.StorageNames, ", ")
}

var secretType = reflect.TypeOf(Secret{})

// resolveSecrets finds every Secret field below v and resolves it, reporting
// failures at the field's own position.
func resolveSecrets(cfg *Config, c *collector, env Env, path string, v any) {
	if v == nil {
		return
	}
	var walk func(rv reflect.Value, path string)
	walk = func(rv reflect.Value, path string) {
		for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
			if rv.IsNil() {
				return
			}
			rv = rv.Elem()
		}
		switch {
		case rv.Type() == secretType:
			s := rv.Addr().Interface().(*Secret)
			if err := s.resolve(env, cfg.Dir); err != nil {
				c.ps = append(c.ps, Problem{Pos: cfg.Pos(path), Msg: err.Error(),
					Hint: "set it before running lifeboat, or change the reference"})
			}
		case rv.Kind() == reflect.Struct:
			for i := 0; i < rv.NumField(); i++ {
				f := rv.Type().Field(i)
				if !f.IsExported() {
					continue
				}
				name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
				p := path
				if opts != "inline" {
					if name == "" {
						name = strings.ToLower(f.Name)
					}
					p = path + "." + name
				}
				walk(rv.Field(i), p)
			}
		case rv.Kind() == reflect.Slice:
			for i := 0; i < rv.Len(); i++ {
				walk(rv.Index(i), path+"["+strconv.Itoa(i)+"]")
			}
		case rv.Kind() == reflect.Map:
			for _, k := range rv.MapKeys() {
				e := reflect.New(rv.Type().Elem()).Elem()
				e.Set(rv.MapIndex(k))
				walk(e, path+"."+fmt.Sprint(k.Interface()))
				rv.SetMapIndex(k, e)
			}
		}
	}
	walk(reflect.ValueOf(v), path)
}
