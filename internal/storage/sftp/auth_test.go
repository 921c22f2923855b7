package sftp_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/doctor"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
	"github.com/lifeboat-backup/lifeboat/internal/storage/sftp"
	"github.com/lifeboat-backup/lifeboat/internal/testutil/sftptest"
)

func sshFingerprint(srv *sftptest.Server) string { return ssh.FingerprintSHA256(srv.HostKey) }

func otherKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func hostKeyError(t *testing.T, err error) *sftp.HostKeyError {
	t.Helper()
	var he *sftp.HostKeyError
	if !errors.As(err, &he) {
		t.Fatalf("error is not a *HostKeyError: %v", err)
	}
	if !storage.IsPermanent(err) {
		t.Errorf("host key error is not permanent: %v", err)
	}
	return he
}

func TestHostKeyUnknown(t *testing.T) {
	srv := sftptest.Start(t)
	for name, kh := range map[string]string{
		"empty file":         writeFile(t, ""),
		"other hosts only":   writeFile(t, "example.com "+string(ssh.MarshalAuthorizedKey(srv.HostKey))),
		"missing file":       filepath.Join(t.TempDir(), "nope"),
		"same host, port 22": writeFile(t, "127.0.0.1 "+string(ssh.MarshalAuthorizedKey(srv.HostKey))),
	} {
		t.Run(name, func(t *testing.T) {
			cfg := baseConfig(srv, "p")
			cfg.KnownHosts = kh
			_, err := sftp.New(t.Context(), "test", cfg, options(t, nil))
			if err == nil {
				t.Fatal("New trusted an unknown host key")
			}
			he := hostKeyError(t, err)
			msg := err.Error()
			line := srv.KnownHostsLine(srv.HostKey)
			for _, want := range []string{srv.Addr, sshFingerprint(srv), line, kh, "unknown"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error lacks %q:\n%s", want, msg)
				}
			}
			if he.KnownHostsLine() != line {
				t.Errorf("KnownHostsLine = %q, want %q", he.KnownHostsLine(), line)
			}
			// The printed line, once added, is accepted.
			cfg.KnownHosts = writeFile(t, he.KnownHostsLine()+"\n")
			if _, err := sftp.New(t.Context(), "test", cfg, options(t, nil)); err != nil {
				t.Fatalf("with the suggested line added: %v", err)
			}
			f := sftp.ErrorFinding("storage test", err)
			if f.Level != doctor.Fail || !strings.Contains(f.Hint, line) || !strings.Contains(f.Msg, sshFingerprint(srv)) {
				t.Errorf("doctor finding: %+v", f)
			}
		})
	}
}

func TestHostKeyKnown(t *testing.T) {
	srv := sftptest.Start(t)
	// Explicit file.
	open(t, baseConfig(srv, "p"), options(t, nil))
	// Default ~/.ssh/known_hosts through HOME, with a relative key_file.
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	kh, _ := os.ReadFile(srv.KnownHosts)
	if err := os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), append([]byte("# comment\nexample.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"), kh...), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(srv, "p")
	cfg.KnownHosts = ""
	opt := options(t, map[string]string{"HOME": home})
	key, _ := os.ReadFile(srv.KeyFile)
	if err := os.WriteFile(filepath.Join(opt.Dir, "id"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.KeyFile = "id"
	open(t, cfg, opt)
	// ~/ in known_hosts.
	cfg.KnownHosts = "~/.ssh/known_hosts"
	open(t, cfg, opt)
}

func TestHostKeyMismatch(t *testing.T) {
	srv := sftptest.Start(t)
	other := otherKey(t)
	kh := writeFile(t, srv.KnownHostsLine(other)+"\n")
	cfg := baseConfig(srv, "p")
	cfg.KnownHosts = kh
	_, err := sftp.New(t.Context(), "test", cfg, options(t, nil))
	he := hostKeyError(t, err)
	if len(he.Want) != 1 || !strings.Contains(he.Want[0], ssh.FingerprintSHA256(other)) {
		t.Fatalf("Want = %v", he.Want)
	}
	msg := err.Error()
	for _, want := range []string{"does not match", sshFingerprint(srv), ssh.FingerprintSHA256(other), srv.KnownHostsLine(srv.HostKey), "intercepting"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}

	// @revoked
	kh = writeFile(t, "@revoked * "+string(ssh.MarshalAuthorizedKey(srv.HostKey))+srv.KnownHostsLine(srv.HostKey)+"\n")
	cfg.KnownHosts = kh
	_, err = sftp.New(t.Context(), "test", cfg, options(t, nil))
	if he := hostKeyError(t, err); !he.Revoked {
		t.Fatalf("revoked key accepted or not reported as revoked: %v", err)
	}
}

func TestHostKeyPinned(t *testing.T) {
	srv := sftptest.Start(t)
	for _, pin := range []string{
		sshFingerprint(srv),
		strings.TrimSpace(string(ssh.MarshalAuthorizedKey(srv.HostKey))),
		srv.KnownHostsLine(srv.HostKey),
	} {
		cfg := baseConfig(srv, "p")
		cfg.KnownHosts, cfg.HostKey = "", pin
		open(t, cfg, options(t, nil)) // no HOME needed either
	}
	for _, pin := range []string{
		ssh.FingerprintSHA256(otherKey(t)),
		strings.TrimSpace(string(ssh.MarshalAuthorizedKey(otherKey(t)))),
	} {
		cfg := baseConfig(srv, "p")
		cfg.KnownHosts, cfg.HostKey = "", pin
		_, err := sftp.New(t.Context(), "test", cfg, options(t, nil))
		if err == nil {
			t.Fatalf("wrong pinned key %q accepted", pin)
		}
		hostKeyError(t, err)
		if !strings.Contains(err.Error(), sshFingerprint(srv)) || !strings.Contains(err.Error(), pin[:20]) && !strings.HasPrefix(pin, "ssh-") {
			t.Errorf("error lacks fingerprints: %v", err)
		}
	}
}

// A server with an ECDSA and an ed25519 key: x/crypto prefers ECDSA, but
// the client must ask for the type known_hosts has.
func TestHostKeyAlgorithmFollowsKnownHosts(t *testing.T) {
	srv := sftptest.Start(t, sftptest.WithExtraHostKey())
	open(t, baseConfig(srv, "p"), options(t, nil)) // ed25519 only
	cfg := baseConfig(srv, "p")
	cfg.KnownHosts = writeFile(t, srv.KnownHostsLine(srv.HostKeys[1])+"\n") // ECDSA only
	open(t, cfg, options(t, nil))
	cfg.KnownHosts = ""
	cfg.HostKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(srv.HostKeys[0])))
	open(t, cfg, options(t, nil))
}

func TestPasswordLogin(t *testing.T) {
	srv := sftptest.Start(t, sftptest.WithPassword("s3cret"))
	cfg := baseConfig(srv, "p")
	cfg.KeyFile, cfg.Password = "", config.NewSecret("s3cret")
	open(t, cfg, options(t, nil))

	cfg.Password = config.NewSecret("wrong")
	_, err := sftp.New(t.Context(), "test", cfg, options(t, nil))
	if err == nil || !strings.Contains(err.Error(), "log in") || !storage.IsPermanent(err) {
		t.Fatalf("wrong password: %v", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("error shows the password: %v", err)
	}
}

func TestEncryptedKey(t *testing.T) {
	srv := sftptest.Start(t, sftptest.WithKeyPassphrase("horse battery"))
	cfg := baseConfig(srv, "p")
	_, err := sftp.New(t.Context(), "test", cfg, options(t, nil))
	if err == nil || !strings.Contains(err.Error(), "key_passphrase") {
		t.Fatalf("encrypted key without passphrase: %v", err)
	}
	cfg.KeyPassphrase = config.NewSecret("nope")
	_, err = sftp.New(t.Context(), "test", cfg, options(t, nil))
	if err == nil || !strings.Contains(err.Error(), "wrong") {
		t.Fatalf("wrong passphrase: %v", err)
	}
	cfg.KeyPassphrase = config.NewSecret("horse battery")
	open(t, cfg, options(t, nil))
}

func TestAgentLogin(t *testing.T) {
	srv := sftptest.Start(t)
	pem, _ := os.ReadFile(srv.KeyFile)
	raw, err := ssh.ParseRawPrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: raw}); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "agent") // short path: unix socket names are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = agent.ServeAgent(keyring, c); _ = c.Close() }()
		}
	}()
	cfg := baseConfig(srv, "p")
	cfg.KeyFile, cfg.UseAgent = "", true
	st := open(t, cfg, options(t, map[string]string{"SSH_AUTH_SOCK": sock}))
	if _, err := st.Put(t.Context(), "a", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	_, err = sftp.New(t.Context(), "test", cfg, options(t, nil))
	if err == nil || !strings.Contains(err.Error(), "SSH_AUTH_SOCK") {
		t.Fatalf("use_agent without SSH_AUTH_SOCK: %v", err)
	}
}

func TestPruneCredentials(t *testing.T) {
	srv := sftptest.Start(t, sftptest.WithPassword("prune-pw"))
	cfg := baseConfig(srv, "p")
	cfg.PruneCredentials = &sftp.Credentials{Password: config.NewSecret("bad")}
	open(t, cfg, options(t, nil)) // backup login: the key

	opt := options(t, nil)
	opt.Prune = true
	if _, err := sftp.New(t.Context(), "test", cfg, opt); err == nil {
		t.Fatal("prune login used the backup key instead of prune_credentials")
	}
	cfg.PruneCredentials.Password = config.NewSecret("prune-pw")
	st := open(t, cfg, opt)
	if err := st.Delete(t.Context(), "nothing"); err != nil {
		t.Fatal(err)
	}
}
