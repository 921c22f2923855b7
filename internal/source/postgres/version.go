package postgres

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/lifeboat-backup/lifeboat/internal/source"
)

// clientPackage is the distribution package holding the client tools.
const clientPackage = "postgresql-client"

// VersionError says a client tool is too old: pg_dump refuses to dump a
// server of a newer major version, and pg_restore cannot read archives
// written by a newer pg_dump.
type VersionError struct {
	Tool        string // "pg_dump"
	ToolVersion string // "14.10"
	Path        string // where the tool was found
	Of          string // what it is too old for: "the server (PostgreSQL 15.8)"
	Verb        string // what it cannot do to that: "dump", "read"
	NeedMajor   int    // the major version needed
}

// Package is the distribution package that has a new enough tool.
func (e *VersionError) Package() string { return clientPackage + "-" + majorString(e.NeedMajor) }

func (e *VersionError) Error() string {
	return fmt.Sprintf("%s %s (%s) is older than %s and cannot %s it: install %s "+
		"(from apt.postgresql.org if your distribution does not have it), or set bin_dir to the bin directory of version %s or newer",
		e.Tool, e.ToolVersion, e.Path, e.Of, e.Verb, e.Package(), majorString(e.NeedMajor))
}

var versionRE = regexp.MustCompile(`(\d+)(?:\.(\d+))?`)

// parseVersion reads a version such as "15.8", "9.6.24", "17beta1" or a
// tool's `--version` line "pg_dump (PostgreSQL) 15.8 (Debian 15.8-1)". It
// returns the version and its major version as a comparable number: 1500 for
// 15, 906 for 9.6 (before PostgreSQL 10 the major version had two parts).
func parseVersion(s string) (string, int, bool) {
	if i := strings.Index(s, ") "); i >= 0 && strings.Contains(s[:i], "PostgreSQL") {
		s = s[i+2:]
	}
	s = strings.TrimSpace(s)
	m := versionRE.FindStringSubmatchIndex(s)
	if m == nil || m[0] != 0 {
		return "", 0, false
	}
	first, _ := strconv.Atoi(s[m[2]:m[3]])
	major := first * 100
	if first < 10 && m[4] >= 0 {
		second, _ := strconv.Atoi(s[m[4]:m[5]])
		major += second
	}
	v, _, _ := strings.Cut(s, " ")
	return v, major, true
}

// majorFromNum converts server_version_num (150008, 90624) to a major number
// as parseVersion returns it (1500, 906).
func majorFromNum(n int) int {
	if n >= 100000 {
		return n / 10000 * 100
	}
	return n / 100
}

// majorString writes a major number as PostgreSQL does: "15", "9.6".
func majorString(m int) string {
	if m >= 1000 {
		return strconv.Itoa(m / 100)
	}
	return fmt.Sprintf("%d.%d", m/100, m%100)
}

// checkVersion returns e when the tool's major version is below e.NeedMajor.
func checkVersion(toolMajor int, e VersionError) error {
	if toolMajor >= e.NeedMajor {
		return nil
	}
	return &e
}

// toolVersion runs `tool --version` and returns the version and its major.
func toolVersion(ctx context.Context, path string, env []string) (string, int, error) {
	out, err := source.Output(ctx, source.Command{Path: path, Args: []string{"--version"}, BaseEnv: env})
	if err != nil {
		return "", 0, fmt.Errorf("read version of %s: %w", path, err)
	}
	v, major, ok := parseVersion(out)
	if !ok {
		return "", 0, fmt.Errorf("read version of %s: unexpected output %q", path, out)
	}
	return v, major, nil
}

// findTool returns the path of a client tool: in binDir when set, else on
// PATH. Debian's /usr/bin/pg_dump is pg_wrapper, which picks a version by
// local cluster rather than by the server dumped; the newest installed
// version is taken instead, since it can dump every older server.
func findTool(name, binDir string) (string, error) {
	if binDir != "" {
		p := filepath.Join(binDir, name)
		if fi, err := os.Stat(p); err != nil || fi.IsDir() {
			return "", &source.MissingToolError{Tool: name + " (in bin_dir " + binDir + ")", Package: clientPackage}
		}
		return p, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", &source.MissingToolError{Tool: name, Package: clientPackage}
	}
	if real, err := filepath.EvalSymlinks(p); err == nil && filepath.Base(real) == "pg_wrapper" {
		if newest := newestDebianTool(name); newest != "" {
			return newest, nil
		}
	}
	return p, nil
}

func newestDebianTool(name string) string {
	paths, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	best, bestMajor := "", -1
	for _, p := range paths {
		_, major, ok := parseVersion(filepath.Base(filepath.Dir(filepath.Dir(p))))
		if ok && major > bestMajor {
			best, bestMajor = p, major
		}
	}
	return best
}
