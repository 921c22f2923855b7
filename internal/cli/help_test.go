package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// Every command's --help shows at least one example.
func TestEveryCommandHasAnExample(t *testing.T) {
	var out bytes.Buffer
	app := &App{Stdout: &out, Stderr: &out, Env: func(string) (string, bool) { return "", false }, Now: time.Now}
	root := NewRoot(app)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" || strings.HasPrefix(c.Name(), "__") {
			return
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q has no Example in its help", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	out.Reset()
	root.SetArgs([]string{"--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "EXIT STATUS") {
		t.Error("lifeboat --help does not document exit codes")
	}
}
