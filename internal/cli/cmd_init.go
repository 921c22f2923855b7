package cli

import (
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/spf13/cobra"

	agestage "github.com/lifeboat-backup/lifeboat/internal/pipeline/age"
)

//go:embed init.yaml.tmpl
var initTemplate string

type initOptions struct {
	key   string
	force bool
}

func newInitCommand(app *App) *cobra.Command {
	var opts initOptions
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a starter lifeboat.yaml and a new encryption key",
		Long: `Init writes a commented starter config (the file named by --config) and a new
age key pair. The private key goes to a file readable only by you, outside the
config and, by default, outside the project folder so it is never committed;
the config gets only the public key. Keep a copy of the private key off this
machine: without it the backups cannot be read.`,
		Example: `  lifeboat init
  lifeboat init --key /root/lifeboat-key.txt
  lifeboat -c /etc/lifeboat/app.yaml init`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runInit(opts, app) },
	}
	cmd.Flags().StringVar(&opts.key, "key", "", "where to write the private key (default ~/.config/lifeboat/keys/NAME.txt)")
	cmd.Flags().BoolVar(&opts.force, "force", false, "overwrite an existing config file (never an existing key)")
	return cmd
}

func runInit(opts initOptions, app *App) error {
	cfgPath := app.ConfigPath
	if _, err := os.Stat(cfgPath); err == nil && !opts.force {
		return &UserError{Msg: cfgPath + " already exists", Hint: "edit it, or pass --force to replace it", Code: ExitUsage}
	}
	absCfg, err := filepath.Abs(cfgPath)
	if err != nil {
		return err
	}
	keyPath := opts.key
	if keyPath == "" {
		home, ok := app.Env("HOME")
		if !ok {
			return usageErr("pass --key FILE", "HOME is not set: cannot choose where to keep the key")
		}
		name := filepath.Base(filepath.Dir(absCfg))
		keyPath = filepath.Join(home, ".config", "lifeboat", "keys", name+".txt")
	}
	if _, err := os.Stat(keyPath); err == nil {
		return &UserError{Msg: "key file " + keyPath + " already exists; refusing to overwrite a key",
			Hint: "pass --key with a new path, or reuse it: put its public key under encryption.recipients", Code: ExitUsage}
	}
	content, recipient, err := agestage.Generate()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(keyPath), 0o700); err != nil {
		return fmt.Errorf("create key folder: %w", err)
	}
	f, err := os.OpenFile(keyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return fmt.Errorf("write key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	identity := keyPath
	if home, ok := app.Env("HOME"); ok && strings.HasPrefix(keyPath, home+"/") {
		identity = "~/" + strings.TrimPrefix(keyPath, home+"/")
	}
	var b strings.Builder
	t := template.Must(template.New("init").Parse(initTemplate))
	if err := t.Execute(&b, map[string]string{"Recipient": recipient, "Identity": identity}); err != nil {
		return err
	}
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o644); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return usageErr("create the folder first", "cannot write %s: %v", cfgPath, err)
		}
		return err
	}
	app.Printf("Wrote %s (no secrets in it: commit it beside your application).\n", cfgPath)
	app.Printf("Wrote a new private key to %s (mode 0600).\n", keyPath)
	app.Printf("\n  KEEP A COPY OF %s OFF THIS MACHINE.\n  Without it no backup can be restored. The backup host itself needs only the\n  public key %s, which is in the config.\n\n", keyPath, recipient)
	app.Printf("Next: add your sources to %s, check it with `lifeboat validate`, then run `lifeboat backup`.\n", cfgPath)
	return nil
}
