package config

import (
	"bufio"
	"bytes"
	"fmt"
	"github.com/goccy/go-yaml/ast"
	"log/slog"
	"os"
	"strings"
)

// Secret is a credential given in the config file as a reference:
//
//	${env:NAME}            an environment variable
//	${file:PATH}           the content of a file (one trailing newline removed)
//	${dotenv:PATH:NAME}    the key NAME in the application's own .env file
//
// It is resolved while loading. Its value never appears in String, GoString,
// LogValue or MarshalJSON output, so it cannot leak through logs, manifests or
// reports by accident. Use [Secret.Reveal] at the single place that needs it.
type Secret struct {
	ref   string
	value string
}

// NewSecret returns a resolved secret; for tests and programmatic configs.
func NewSecret(value string) Secret { return Secret{ref: "(given)", value: value} }

func (s *Secret) UnmarshalYAML(n ast.Node) error {
	ref, err := scalar(n)
	if err != nil {
		return err
	}
	ref = strings.TrimSpace(ref)
	if !strings.HasPrefix(ref, "${") || !strings.HasSuffix(ref, "}") {
		return positioned(n, fmt.Errorf("secrets are not written in the config file: use ${env:NAME}, ${file:PATH} or ${dotenv:PATH:NAME}"))
	}
	s.ref = ref
	return nil
}

// IsSet reports whether the secret was given at all.
func (s Secret) IsSet() bool { return s.ref != "" }

// Ref returns the reference as written ("${env:PGPASSWORD}"); safe to print.
func (s Secret) Ref() string { return s.ref }

// Reveal returns the secret value. Call it only where the value is handed to
// the thing that needs it (an environment variable of a child, a client).
func (s Secret) Reveal() string { return s.value }

func (s Secret) String() string {
	if s.ref == "" {
		return ""
	}
	return "[redacted " + s.ref + "]"
}
func (s Secret) GoString() string             { return s.String() }
func (s Secret) LogValue() slog.Value         { return slog.StringValue(s.String()) }
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }
func (s Secret) MarshalYAML() (any, error)    { return s.String(), nil }

// Env is the process environment, injected so libraries never call os.Getenv.
type Env func(name string) (string, bool)

// resolve fills s.value from its reference. baseDir resolves relative paths.
func (s *Secret) resolve(env Env, baseDir string) error {
	if s.ref == "" {
		return nil
	}
	inner := strings.TrimSuffix(strings.TrimPrefix(s.ref, "${"), "}")
	kind, arg, _ := strings.Cut(inner, ":")
	switch kind {
	case "env":
		if arg == "" {
			return fmt.Errorf("empty variable name in %s", s.ref)
		}
		v, ok := env(arg)
		if !ok {
			return fmt.Errorf("environment variable %s is not set (needed by %s)", arg, s.ref)
		}
		s.value = v
	case "file":
		b, err := os.ReadFile(Abs(baseDir, arg))
		if err != nil {
			return fmt.Errorf("read secret file: %w", err)
		}
		s.value = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	case "dotenv":
		i := strings.LastIndex(arg, ":")
		if i <= 0 {
			return fmt.Errorf("%s: expected ${dotenv:PATH:NAME}", s.ref)
		}
		path, name := arg[:i], arg[i+1:]
		b, err := os.ReadFile(Abs(baseDir, path))
		if err != nil {
			return fmt.Errorf("read .env file: %w", err)
		}
		v, ok := lookupDotenv(b, name)
		if !ok {
			return fmt.Errorf("%s has no key %s", path, name)
		}
		s.value = v
	default:
		return fmt.Errorf("unknown secret reference %q: use ${env:NAME}, ${file:PATH} or ${dotenv:PATH:NAME}", s.ref)
	}
	return nil
}

// lookupDotenv reads KEY=VALUE lines the way common .env loaders do: comments,
// optional "export ", single or double quotes.
func lookupDotenv(b []byte, name string) (string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) != name {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			q := v[0]
			v = v[1 : len(v)-1]
			if q == '"' {
				v = strings.NewReplacer(`\n`, "\n", `\"`, `"`, `\\`, `\`).Replace(v)
			}
		} else if i := strings.Index(v, " #"); i >= 0 {
			v = strings.TrimSpace(v[:i])
		}
		return v, true
	}
	return "", false
}
