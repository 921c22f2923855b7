package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// Position is a place in a config file. Line and Column are 1-based; zero
// means unknown.
type Position struct {
	File   string
	Line   int
	Column int
}

func (p Position) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Column == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// Problem is one thing wrong with a config file.
type Problem struct {
	Pos  Position
	Msg  string // what is wrong
	Hint string // what to do; may be empty
}

func (p Problem) Error() string {
	s := p.Pos.String() + ": " + p.Msg
	if p.Hint != "" {
		s += " (" + p.Hint + ")"
	}
	return s
}

// Problems is every problem found in one file. It is returned as an error by
// [Load] when it is not empty.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// FieldError is returned by a backend's Validate to point at one of its own
// fields. Field is a dotted path relative to the backend's node, such as
// "paths[1]" or "object_lock.days"; the loader turns it into a file position.
type FieldError struct {
	Field string
	Msg   string
	Hint  string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Errorf returns a *FieldError for field.
func Errorf(field, hint, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...), Hint: hint}
}

// collector accumulates problems against one file.
type collector struct {
	file string
	ps   Problems
}

func (c *collector) at(tk *token.Token, hint, format string, args ...any) {
	pos := Position{File: c.file}
	if tk != nil && tk.Position != nil {
		pos.Line, pos.Column = tk.Position.Line, tk.Position.Column
	}
	c.ps = append(c.ps, Problem{Pos: pos, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

func (c *collector) node(n ast.Node, hint, format string, args ...any) {
	var tk *token.Token
	if n != nil {
		tk = n.GetToken()
	}
	c.at(tk, hint, format, args...)
}

// yamlErr records a goccy decode error, keeping its position and rewording the
// message so that it names the YAML key rather than Go types.
func (c *collector) yamlErr(err error, fallback ast.Node) {
	var ye interface {
		GetToken() *token.Token
		GetMessage() string
	}
	if errors.As(err, &ye) {
		msg := ye.GetMessage()
		hint := ""
		switch {
		case strings.HasPrefix(msg, "unknown field"):
			hint = "check the spelling; `lifeboat init` writes a commented example of every key"
		case strings.Contains(msg, "cannot unmarshal"):
			msg, hint = rewordTypeError(msg)
		case strings.Contains(msg, "where sequence is expected"):
			msg, hint = "wrong type: expected a list", "write [a, b] or one `- item` per line"
		case strings.Contains(msg, "where mapping is expected"):
			msg, hint = "wrong type: expected a mapping of keys", "write `key: value` lines indented below it"
		case strings.HasPrefix(msg, "secrets are not written"):
			hint = "for example password: ${env:DB_PASSWORD}"
		}
		c.at(ye.GetToken(), hint, "%s", msg)
		return
	}
	c.node(fallback, "", "%s", yaml.FormatError(err, false, false))
}

// rewordTypeError turns goccy's "cannot unmarshal string into Go struct field
// Doc.Spec.Level of type int" into words about YAML.
func rewordTypeError(msg string) (string, string) {
	var got, want string
	if i := strings.Index(msg, "cannot unmarshal "); i >= 0 {
		rest := msg[i+len("cannot unmarshal "):]
		got, _, _ = strings.Cut(rest, " ")
	}
	if i := strings.LastIndex(msg, " of type "); i >= 0 {
		want = msg[i+len(" of type "):]
	}
	if got == "" || want == "" {
		return msg, ""
	}
	return fmt.Sprintf("wrong type: got a %s, expected %s", yamlKind(got), goTypeWords(want)), ""
}

func yamlKind(goKind string) string {
	switch goKind {
	case "[]interface", "[]interface {}":
		return "list"
	case "map[string]interface", "map[string]interface {}":
		return "mapping"
	case "uint64", "int64", "int":
		return "number"
	}
	return goKind
}

func goTypeWords(t string) string {
	switch {
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "a whole number"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	case strings.HasSuffix(t, "Duration"):
		return "a duration such as 90s, 6h or 30d"
	case strings.HasSuffix(t, "Size"):
		return "a size such as 1MB or 512KiB"
	}
	return "a " + t
}
