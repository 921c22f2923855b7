package sftp_test

import (
	"strings"
	"testing"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/storage/sftp"
)

func registry() config.Registry {
	return config.Registry{
		Sources:   map[string]func() config.Spec{},
		Storages:  map[string]func() config.Spec{"sftp": func() config.Spec { return sftp.DefaultConfig() }},
		Notifiers: map[string]func() config.Spec{},
	}
}

// The YAML keys decode through the real loader, secrets resolve (also inside
// prune_credentials), and the port defaults to 22.
func TestConfigFromYAML(t *testing.T) {
	doc := `
encryption:
  recipients: [age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq]
storages:
  offsite:
    type: sftp
    host: backup.example.com
    user: lifeboat
    key_file: keys/id_ed25519
    key_passphrase: ${env:KEY_PW}
    use_agent: true
    known_hosts: ~/.ssh/known_hosts
    path: backups/app
    prune_credentials:
      user: pruner
      password: ${env:PRUNE_PW}
`
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"KEY_PW": "kpw", "PRUNE_PW": "ppw"}[k]
		return v, ok
	}
	cfg, err := config.Parse("lifeboat.yaml", t.TempDir(), []byte(doc), registry(), env)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Storages["offsite"].Spec.(*sftp.Config)
	if c.Port != 22 || c.Host != "backup.example.com" || c.Path != "backups/app" || !c.UseAgent || c.KnownHosts != "~/.ssh/known_hosts" {
		t.Fatalf("decoded %+v", c)
	}
	if c.KeyPassphrase.Reveal() != "kpw" || c.PruneCredentials.Password.Reveal() != "ppw" || c.PruneCredentials.User != "pruner" {
		t.Fatal("secrets not resolved")
	}
}

func TestConfigProblemsHavePositions(t *testing.T) {
	head := `
encryption:
  recipients: [age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq]
storages:
  offsite:
    type: sftp
    user: lifeboat
    key_file: id
    path: x
`
	for _, tc := range []struct{ extra, want string }{
		{"    hostkey: SHA256:x\n", "lifeboat.yaml:10:5"},                    // unknown key (typo of host_key)
		{"    host: sftp://backup.example.com\n", "lifeboat.yaml:10:11"},     // a URL, not a host
		{"    host: h\n    host_key: SHA256:short\n", "lifeboat.yaml:11:15"}, // bad fingerprint
	} {
		_, err := config.Parse("lifeboat.yaml", t.TempDir(), []byte(head+tc.extra), registry(), func(string) (string, bool) { return "", false })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want a problem at %s", tc.extra, err, tc.want)
		}
	}
}
