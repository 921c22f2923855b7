package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Config mistakes give file:line:column and what was expected. The inputs
// are testdata/config/*.yaml; the expected stderr of `lifeboat validate` is
// the .golden file beside each (go test -update rewrites them).
func TestConfigErrors(t *testing.T) {
	files, _ := filepath.Glob("testdata/config/*.yaml")
	if len(files) == 0 {
		t.Fatal("no config test files")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.vars["DB_PASSWORD"] = "hunter2-secret"
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			e.writeConfig(string(b))
			r := e.run("validate")
			got := strings.ReplaceAll(r.stderr+r.stdout, e.dir+"/", "")
			if strings.Contains(got, "hunter2") {
				t.Fatal("a secret value appeared in output")
			}
			if strings.HasPrefix(name, "ok-") {
				if r.code != 0 {
					t.Fatalf("valid config rejected: %s", got)
				}
			} else if r.code != 2 {
				t.Fatalf("exit %d, want 2 (config error); output:\n%s", r.code, got)
			}
			golden(t, "config/"+name+".golden", got)
		})
	}
}
