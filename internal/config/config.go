package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Spec is a backend's own typed configuration (a storage's, a source's or a
// notifier's). Validate reports problems with the values, ideally as
// [*FieldError] (or several joined with errors.Join) so they get positions.
type Spec interface {
	Validate() error
}

// Registry maps `type:` values to constructors of empty specs. It is built in
// one place (the CLI wiring) and passed in: there is no init() registration.
type Registry struct {
	Sources   map[string]func() Spec
	Storages  map[string]func() Spec
	Notifiers map[string]func() Spec
	// Recipient validates an encryption recipient; nil skips the check.
	Recipient func(string) error
}

// Config is a loaded, validated configuration file.
type Config struct {
	File string // path as given
	Dir  string // directory relative paths are resolved against

	Encryption Encryption
	Defaults   SourceCommon
	Summary    *Summary
	Daemon     Daemon

	Storages  map[string]*Storage
	Sources   map[string]*Source
	Notifiers map[string]*Notifier

	StorageNames  []string // in file order
	SourceNames   []string
	NotifierNames []string

	ast *ast.File
}

// Encryption configures age. The backup host needs only Recipients; Identity
// is read by restore, verify and drill, and may be absent on the backup host.
type Encryption struct {
	Recipients     []string `yaml:"recipients"`
	RecipientsFile string   `yaml:"recipients_file"`
	Identity       string   `yaml:"identity"`
}

// Storage is one entry of `storages:`.
type Storage struct {
	Name string
	Type string
	Pos  Position
	Spec Spec
}

// Source is one entry of `sources:` with defaults applied.
type Source struct {
	Name string
	Type string
	Pos  Position
	SourceCommon
	Spec Spec
}

// Notifier is one entry of `notifiers:`.
type Notifier struct {
	Name string
	Type string
	Pos  Position
	// On lists the events this notifier is told about: failure, success,
	// suspect, overdue, summary. Empty means failure, suspect and overdue.
	On   []string
	Spec Spec
}

// NotifierCommon holds keys every notifier accepts.
type NotifierCommon struct {
	On []string `yaml:"on"`
}

// Summary configures the daily summary.
type Summary struct {
	Schedule string   `yaml:"schedule"`
	Timezone string   `yaml:"timezone"`
	To       []string `yaml:"to"` // notifier names
}

// Daemon holds settings of `lifeboat daemon`.
type Daemon struct {
	MaxParallel   int      `yaml:"max_parallel"`
	LockTTL       Duration `yaml:"lock_ttl"`
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	MetricsListen string   `yaml:"metrics_listen"`
	StateDir      string   `yaml:"state_dir"`
}

type fileDoc struct {
	Encryption Encryption     `yaml:"encryption"`
	Defaults   map[string]any `yaml:"defaults"`
	Storages   map[string]any `yaml:"storages"`
	Sources    map[string]any `yaml:"sources"`
	Notifiers  map[string]any `yaml:"notifiers"`
	Summary    *Summary       `yaml:"summary"`
	Daemon     Daemon         `yaml:"daemon"`
}

// Load reads and validates the file at path.
func Load(path string, reg Registry, env Env) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, Problems{{Pos: Position{File: path}, Msg: "config file not found",
				Hint: "create one with `lifeboat init`, or name it with -c FILE"}}
		}
		return nil, fmt.Errorf("read config: %w", err)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, dir, data, reg, env)
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Parse is Load on bytes already read. name is used in positions, dir for
// relative paths.
func Parse(name, dir string, data []byte, reg Registry, env Env) (*Config, error) {
	c := &collector{file: name}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		c.yamlErr(err, nil)
		return nil, c.ps
	}
	cfg := &Config{File: name, Dir: dir, ast: f,
		Storages: map[string]*Storage{}, Sources: map[string]*Source{}, Notifiers: map[string]*Notifier{}}
	if len(f.Docs) == 0 || f.Docs[0].Body == nil {
		c.at(nil, "start from `lifeboat init`", "the file is empty")
		return nil, c.ps
	}
	root := f.Docs[0].Body
	var doc fileDoc
	if err := yaml.NodeToValue(root, &doc, yaml.Strict()); err != nil {
		c.yamlErr(err, root)
		return nil, c.ps
	}
	cfg.Encryption, cfg.Summary, cfg.Daemon = doc.Encryption, doc.Summary, doc.Daemon
	if n := sectionNode(root, "defaults"); n != nil {
		if err := yaml.NodeToValue(n, &cfg.Defaults, yaml.Strict()); err != nil {
			c.yamlErr(err, n)
		}
	}
	if reg.Recipient != nil {
		for i, r := range cfg.Encryption.Recipients {
			if err := reg.Recipient(r); err != nil {
				c.node(lookup(root, fmt.Sprintf("encryption.recipients[%d]", i)), "a recipient is an age public key (age1...) or an ssh public key line", "%v", err)
			}
		}
	}
	cfg.Encryption.Identity = expandHome(cfg.Encryption.Identity, env)

	for _, kv := range section(root, "storages") {
		st := &Storage{Name: kv.Key.String(), Pos: c.pos(kv.Key)}
		typ, spec := decodeEntry(c, kv, "storage", reg.Storages, nil)
		if spec == nil {
			continue
		}
		st.Type, st.Spec = typ, spec
		cfg.Storages[st.Name] = st
		cfg.StorageNames = append(cfg.StorageNames, st.Name)
	}
	for _, kv := range section(root, "notifiers") {
		n := &Notifier{Name: kv.Key.String(), Pos: c.pos(kv.Key)}
		var common NotifierCommon
		typ, spec := decodeEntry(c, kv, "notifier", reg.Notifiers, &common)
		if spec == nil {
			continue
		}
		n.Type, n.Spec, n.On = typ, spec, common.On
		for i, ev := range n.On {
			if !slices.Contains([]string{"failure", "success", "suspect", "overdue", "summary", "drill"}, ev) {
				c.node(kv.Value, "use failure, success, suspect, overdue, drill or summary",
					"notifier %q: unknown event %q in on[%d]", n.Name, ev, i)
			}
		}
		cfg.Notifiers[n.Name] = n
		cfg.NotifierNames = append(cfg.NotifierNames, n.Name)
	}
	for _, kv := range section(root, "sources") {
		src := &Source{Name: kv.Key.String(), Pos: c.pos(kv.Key)}
		typ, spec := decodeEntry(c, kv, "source", reg.Sources, &src.SourceCommon)
		if spec == nil {
			continue
		}
		src.Type, src.Spec = typ, spec
		applyDefaults(&src.SourceCommon, &cfg.Defaults)
		cfg.Sources[src.Name] = src
		cfg.SourceNames = append(cfg.SourceNames, src.Name)
	}

	cfg.check(c, env)
	if len(c.ps) > 0 {
		slices.SortStableFunc(c.ps, func(a, b Problem) int {
			if a.Pos.Line != b.Pos.Line {
				return a.Pos.Line - b.Pos.Line
			}
			return a.Pos.Column - b.Pos.Column
		})
		return nil, c.ps
	}
	return cfg, nil
}

func (c *collector) pos(n ast.Node) Position {
	p := Position{File: c.file}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		p.Line, p.Column = tk.Position.Line, tk.Position.Column
	}
	return p
}

// sectionNode returns the value node of a top-level key.
func sectionNode(root ast.Node, key string) ast.Node {
	m, ok := root.(*ast.MappingNode)
	if !ok {
		return nil
	}
	for _, kv := range m.Values {
		if kv.Key.String() == key {
			return kv.Value
		}
	}
	return nil
}

// section returns the entries of a top-level mapping such as `sources:`.
func section(root ast.Node, key string) []*ast.MappingValueNode {
	m, ok := root.(*ast.MappingNode)
	if !ok {
		return nil
	}
	for _, kv := range m.Values {
		if kv.Key.String() == key {
			if mm, ok := kv.Value.(*ast.MappingNode); ok {
				return mm.Values
			}
		}
	}
	return nil
}

// decodeEntry decodes one named entry: `type:` picks the spec, keys known to
// common go to common, the rest strictly to the spec, so a typo anywhere is an
// "unknown field" error at its own position.
func decodeEntry(c *collector, kv *ast.MappingValueNode, what string, types map[string]func() Spec, common any) (string, Spec) {
	name := kv.Key.String()
	if !nameRE.MatchString(name) {
		c.node(kv.Key, "use lowercase letters, digits, - and _ (it becomes part of file names)",
			"%s name %q is not allowed", what, name)
		return "", nil
	}
	if what == "source" && name == "locks" {
		// Sources are stored under NAME/; locks/ holds the run locks.
		c.node(kv.Key, "choose another name", "source name %q is reserved", name)
		return "", nil
	}
	m, ok := kv.Value.(*ast.MappingNode)
	if !ok {
		c.node(kv.Value, "", "%s %q: expected a mapping of settings with at least `type:`", what, name)
		return "", nil
	}
	var typ string
	var typeNode ast.Node
	var commonVals, specVals []*ast.MappingValueNode
	commonKeys := yamlKeys(common)
	for _, v := range m.Values {
		k := v.Key.String()
		switch {
		case k == "type":
			typ, typeNode = strings.TrimSpace(v.Value.String()), v.Value
		case slices.Contains(commonKeys, k):
			commonVals = append(commonVals, v)
		default:
			specVals = append(specVals, v)
		}
	}
	known := sortedKeys(types)
	if typeNode == nil {
		c.node(kv.Key, "add `type:` with one of: "+strings.Join(known, ", "), "%s %q has no type", what, name)
		return "", nil
	}
	newSpec, ok := types[typ]
	if !ok {
		c.node(typeNode, "use one of: "+strings.Join(known, ", "), "%s %q: unknown type %q", what, name, typ)
		return "", nil
	}
	if common != nil && len(commonVals) > 0 {
		if err := yaml.NodeToValue(ast.Mapping(m.GetToken(), false, commonVals...), common, yaml.Strict()); err != nil {
			c.yamlErr(err, kv.Value)
		}
	}
	spec := newSpec()
	if len(specVals) > 0 {
		if err := yaml.NodeToValue(ast.Mapping(m.GetToken(), false, specVals...), spec, yaml.Strict()); err != nil {
			c.yamlErr(err, kv.Value)
			return typ, nil
		}
	}
	if err := spec.Validate(); err != nil {
		reportValidation(c, kv, what, name, err)
	}
	return typ, spec
}

// reportValidation turns a spec's Validate error into positioned problems.
func reportValidation(c *collector, kv *ast.MappingValueNode, what, name string, err error) {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var fe *FieldError
		if errors.As(e, &fe) {
			n := lookup(kv.Value, fe.Field)
			if n == nil {
				n = kv.Key
			}
			c.node(n, fe.Hint, "%s %q: %s: %s", what, name, fe.Field, fe.Msg)
			continue
		}
		c.node(kv.Key, "", "%s %q: %v", what, name, e)
	}
}

// lookup finds the node at a dotted path ("paths[1]", "object_lock.days")
// below n; for a missing key it returns n's own node.
func lookup(n ast.Node, field string) ast.Node {
	if field == "" {
		return n
	}
	p, err := yaml.PathString("$." + field)
	if err != nil {
		return nil
	}
	found, err := p.FilterNode(n)
	if err != nil || found == nil {
		return nil
	}
	if mv, ok := found.(*ast.MappingValueNode); ok {
		return mv.Value
	}
	return found
}

// Pos returns the position of a YAML path such as "sources.db.storages[0]",
// for problems found after loading (by the wiring, say).
func (cfg *Config) Pos(path string) Position {
	p := Position{File: cfg.File}
	if cfg.ast == nil || len(cfg.ast.Docs) == 0 {
		return p
	}
	if n := lookup(cfg.ast.Docs[0].Body, path); n != nil {
		if tk := n.GetToken(); tk != nil && tk.Position != nil {
			p.Line, p.Column = tk.Position.Line, tk.Position.Column
		}
	}
	return p
}

// Abs resolves p against dir unless it is absolute. "~/" is not expanded here.
func Abs(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// Path resolves a path from the file relative to the file's directory.
func (cfg *Config) Path(p string) string { return Abs(cfg.Dir, p) }

func expandHome(p string, env Env) string {
	if strings.HasPrefix(p, "~/") {
		if home, ok := env("HOME"); ok {
			return filepath.Join(home, p[2:])
		}
	}
	return p
}

func yamlKeys(v any) []string {
	if v == nil {
		return nil
	}
	var keys []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			name, opts, _ := strings.Cut(tag, ",")
			if opts == "inline" {
				walk(f.Type)
				continue
			}
			if name != "" && name != "-" {
				keys = append(keys, name)
			}
		}
	}
	walk(reflect.TypeOf(v))
	return keys
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// applyDefaults copies each zero-valued field of s from d.
func applyDefaults(s, d *SourceCommon) {
	sv, dv := reflect.ValueOf(s).Elem(), reflect.ValueOf(d).Elem()
	for i := 0; i < sv.NumField(); i++ {
		if sv.Field(i).IsZero() {
			sv.Field(i).Set(dv.Field(i))
		}
	}
}
