package sftp

import (
	"errors"
	"strings"

	"github.com/lifeboat-backup/lifeboat/internal/config"
)

// Config is the `type: sftp` storage configuration.
//
//	storages:
//	  offsite:
//	    type: sftp
//	    host: backup.example.com
//	    port: 22                      # default
//	    user: lifeboat
//	    key_file: keys/id_ed25519     # relative to the config file
//	    key_passphrase: ${env:KEY_PASSPHRASE}
//	    known_hosts: ~/.ssh/known_hosts   # default
//	    path: backups/app
//	    prune_credentials:
//	      user: lifeboat-prune
//	      key_file: keys/id_prune
type Config struct {
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	User string `yaml:"user"`

	KeyFile       string        `yaml:"key_file"`
	KeyPassphrase config.Secret `yaml:"key_passphrase"`
	Password      config.Secret `yaml:"password"`
	UseAgent      bool          `yaml:"use_agent"`

	// KnownHosts is an OpenSSH known_hosts file; default ~/.ssh/known_hosts.
	KnownHosts string `yaml:"known_hosts"`
	// HostKey pins the server's key instead of known_hosts: a public key
	// line ("ssh-ed25519 AAAA...", a known_hosts line works too) or its
	// fingerprint ("SHA256:...", as `ssh-keygen -lf` prints it).
	HostKey string `yaml:"host_key"`

	// Path is the remote folder; relative paths start in the login folder.
	Path string `yaml:"path"`

	// PruneCredentials are used instead of the above by prune (the only
	// command that deletes), so that backup runs can use a login that
	// cannot delete. Empty fields keep the main value of user.
	PruneCredentials *Credentials `yaml:"prune_credentials"`
}

// Credentials are the login used by prune.
type Credentials struct {
	User          string        `yaml:"user"`
	KeyFile       string        `yaml:"key_file"`
	KeyPassphrase config.Secret `yaml:"key_passphrase"`
	Password      config.Secret `yaml:"password"`
}

// DefaultPort is the port used when the config has none.
const DefaultPort = 22

// DefaultConfig returns a Config with defaults filled in, for the registry.
func DefaultConfig() *Config { return &Config{Port: DefaultPort} }

// Validate implements config.Spec.
func (c *Config) Validate() error {
	var errs []error
	add := func(field, hint, format string, args ...any) {
		errs = append(errs, config.Errorf(field, hint, format, args...))
	}
	switch {
	case c.Host == "":
		add("host", "for example `host: backup.example.com`", "host is required")
	case strings.Contains(c.Host, "://"):
		add("host", "write the name only, for example `host: backup.example.com`, and the folder under path:", "host %q must not be a URL", c.Host)
	case strings.ContainsAny(c.Host, "/@ ") || (strings.Count(c.Host, ":") == 1):
		add("host", "write the name only: the user goes under user:, the port under port:, the folder under path:", "host %q is not a host name", c.Host)
	}
	if c.Port < 0 || c.Port > 65535 {
		add("port", "use a TCP port, 22 by default", "port %d is out of range", c.Port)
	}
	if c.User == "" {
		add("user", "the login name on the SFTP server, for example `user: backup`", "user is required")
	}
	if c.Path == "" {
		add("path", "the remote folder backups go to, for example `path: backups/app`", "path is required")
	}
	if c.KeyFile == "" && !c.Password.IsSet() && !c.UseAgent {
		add("key_file", "set key_file: (an SSH private key), password: ${env:NAME}, or use_agent: true", "no way to log in is configured")
	}
	if c.KeyPassphrase.IsSet() && c.KeyFile == "" {
		add("key_passphrase", "set key_file: to the key it unlocks, or remove key_passphrase", "key_passphrase is set without key_file")
	}
	if c.HostKey != "" {
		if _, err := parseHostKey(c.HostKey); err != nil {
			add("host_key", "use the server's public key line (`ssh-keyscan HOST`) or its SHA256:... fingerprint (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the server)", "%v", err)
		}
		if c.KnownHosts != "" {
			add("known_hosts", "keep one of host_key and known_hosts", "host_key and known_hosts are both set")
		}
	}
	if p := c.PruneCredentials; p != nil {
		if p.KeyFile == "" && !p.Password.IsSet() && !c.UseAgent {
			add("prune_credentials", "set prune_credentials.key_file or prune_credentials.password", "prune_credentials has no key_file or password")
		}
		if p.KeyPassphrase.IsSet() && p.KeyFile == "" {
			add("prune_credentials.key_passphrase", "set prune_credentials.key_file, or remove key_passphrase", "key_passphrase is set without key_file")
		}
	}
	return errors.Join(errs...)
}

// login is the set of credentials one connection uses.
type login struct {
	user       string
	keyFile    string
	passphrase config.Secret
	password   config.Secret
}

// loginFor picks the backup or the prune login.
func (c *Config) loginFor(prune bool) login {
	l := login{user: c.User, keyFile: c.KeyFile, passphrase: c.KeyPassphrase, password: c.Password}
	if p := c.PruneCredentials; prune && p != nil {
		l = login{user: c.User, keyFile: p.KeyFile, passphrase: p.KeyPassphrase, password: p.Password}
		if p.User != "" {
			l.user = p.User
		}
	}
	return l
}
